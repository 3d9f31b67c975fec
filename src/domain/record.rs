//! The run record and its summary. A `PipelineInfo` can only be obtained by
//! parsing, so every value in the system has passed the contract's rules.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::datetime::schema::DateTime;
use super::datetime::FlexDateTime;
use super::numbers::{lenient_float, lenient_int};
use super::validation::{FieldError, LocItem, ValidationErrors};

/// The record's fields in the model's declaration order: the order they
/// are validated (so `missing` errors come in it) and written everywhere
/// (responses, stored lines, CSV columns, the OpenAPI document).
pub const FIELD_NAMES: [&str; 16] = [
    "start_local",
    "end_local",
    "start_utc",
    "end_utc",
    "elapsed_seconds",
    "elapsed_human",
    "output_file",
    "rowcount",
    "log_file",
    "pid",
    "date_code",
    "pipeline_name",
    "script_name",
    "pipeline_type",
    "environment",
    "archived_file",
];

/// The wire shape of a run record, for the OpenAPI document only: the
/// record itself is stored compactly (see `PipelineInfo`).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(example = json!({
    "start_local": "2025-08-08T05:07:01",
    "end_local": "2025-08-08T05:29:06",
    "start_utc": "2025-08-08T12:07:01Z",
    "end_utc": "2025-08-08T12:29:06Z",
    "elapsed_seconds": 1325.0,
    "elapsed_human": "22m 5s",
    "output_file": "/data/pipeline/sales_daily/output-20250808.csv",
    "rowcount": 8543,
    "log_file": "/data/logs/sales_daily-20250808_050701.log",
    "pid": 48213,
    "date_code": "20250808_050701",
    "pipeline_name": "sales_daily",
    "script_name": "sales_daily.py",
    "pipeline_type": "batch",
    "environment": "prod",
    "archived_file": null
}))]
struct PipelineInfoSchema {
    /// Local wall-clock start time, usually naive (`2025-08-08T05:07:01`).
    #[schema(value_type = DateTime)]
    start_local: FlexDateTime,
    /// Local wall-clock end time.
    #[schema(value_type = DateTime)]
    end_local: FlexDateTime,
    /// Start time in UTC, usually aware (`…Z` or `…+00:00`).
    #[schema(value_type = DateTime)]
    start_utc: FlexDateTime,
    /// End time in UTC.
    #[schema(value_type = DateTime)]
    end_utc: FlexDateTime,
    /// Run duration in seconds (finite).
    #[schema(example = 1325.0)]
    elapsed_seconds: f64,
    /// Run duration for people, e.g. `22m 5s`.
    #[schema(example = "22m 5s")]
    #[schema(max_length = 4096)]
    elapsed_human: String,
    /// Path of the file the run produced.
    #[schema(max_length = 4096)]
    output_file: String,
    /// Rows the run produced.
    #[schema(example = 8543)]
    rowcount: i64,
    /// Path of the run's log file.
    #[schema(max_length = 4096)]
    log_file: String,
    /// Operating-system process id of the run.
    #[schema(example = 48213)]
    pid: i64,
    /// Run identifier derived from the start time, e.g. `20250808_050701`.
    #[schema(example = "20250808_050701")]
    #[schema(max_length = 4096)]
    date_code: String,
    /// Pipeline name (inferred for legacy file lines that lack it).
    #[schema(max_length = 4096)]
    pipeline_name: Option<String>,
    /// Script that ran the pipeline.
    #[schema(max_length = 4096)]
    script_name: Option<String>,
    /// Kind of pipeline, e.g. `batch`.
    #[schema(max_length = 4096)]
    pipeline_type: Option<String>,
    /// Environment, e.g. `prod`.
    #[schema(max_length = 4096)]
    environment: Option<String>,
    /// Path of the compressed output, when archived.
    #[schema(max_length = 4096)]
    archived_file: Option<String>,
}

/// Metadata about one finished pipeline run.
///
/// Stored compactly because a store may hold millions: the five free-text
/// values share one allocation, and the four classification values are
/// shared strings that a store can intern.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineInfo {
    start_local: FlexDateTime,
    end_local: FlexDateTime,
    start_utc: FlexDateTime,
    end_utc: FlexDateTime,
    elapsed_seconds: f64,
    rowcount: i64,
    pid: i64,
    /// elapsed_human, output_file, log_file, date_code and archived_file,
    /// back to back.
    text: Box<str>,
    /// Where each of the first four ends in `text`.
    ends: [u32; 4],
    has_archived_file: bool,
    /// pipeline_name, script_name, pipeline_type, environment.
    classes: [Option<Arc<str>>; 4],
}

/// A run record as a request body: the record's schema, with the lenient
/// inputs `PipelineInfo::parse` accepts for datetimes and numbers.
pub struct PipelineInfoInput;

/// The fields read leniently, and the schema of what each accepts.
const LENIENT_FIELDS: [(&str, &str); 7] = [
    ("start_local", "DateTimeInput"),
    ("end_local", "DateTimeInput"),
    ("start_utc", "DateTimeInput"),
    ("end_utc", "DateTimeInput"),
    ("elapsed_seconds", "NumberInput"),
    ("rowcount", "IntegerInput"),
    ("pid", "IntegerInput"),
];

impl utoipa::PartialSchema for PipelineInfoInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::Schema;
        use utoipa::openapi::{Ref, RefOr};
        let mut schema = PipelineInfoSchema::schema();
        if let RefOr::T(Schema::Object(record)) = &mut schema {
            record.description = Some(
                "A finished run. Unknown members are ignored (refused with \
PIPELINE_STRICT_VALIDATION=true)."
                    .to_owned(),
            );
            for (field, lenient) in LENIENT_FIELDS {
                if let Some(property) = record.properties.get_mut(field) {
                    let description = match property {
                        RefOr::Ref(reference) => reference.description.clone(),
                        RefOr::T(Schema::Object(object)) => {
                            object.description.clone().unwrap_or_default()
                        }
                        RefOr::T(_) => String::new(),
                    };
                    let mut reference = Ref::from_schema_name(lenient);
                    reference.description = description;
                    *property = RefOr::Ref(reference);
                }
            }
        }
        schema
    }
}

impl ToSchema for PipelineInfoInput {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("PipelineInfoInput")
    }
}

impl utoipa::PartialSchema for PipelineInfo {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        PipelineInfoSchema::schema()
    }
}

impl ToSchema for PipelineInfo {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("PipelineInfo")
    }
}

impl Serialize for PipelineInfo {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("PipelineInfo", FIELD_NAMES.len())?;
        out.serialize_field("start_local", &self.start_local)?;
        out.serialize_field("end_local", &self.end_local)?;
        out.serialize_field("start_utc", &self.start_utc)?;
        out.serialize_field("end_utc", &self.end_utc)?;
        out.serialize_field("elapsed_seconds", &self.elapsed_seconds)?;
        out.serialize_field("elapsed_human", self.elapsed_human())?;
        out.serialize_field("output_file", self.output_file())?;
        out.serialize_field("rowcount", &self.rowcount)?;
        out.serialize_field("log_file", self.log_file())?;
        out.serialize_field("pid", &self.pid)?;
        out.serialize_field("date_code", self.date_code())?;
        out.serialize_field("pipeline_name", &self.pipeline_name())?;
        out.serialize_field("script_name", &self.script_name())?;
        out.serialize_field("pipeline_type", &self.pipeline_type())?;
        out.serialize_field("environment", &self.environment())?;
        out.serialize_field("archived_file", &self.archived_file())?;
        out.end()
    }
}

impl PipelineInfo {
    /// Appends the record's JSON — the same bytes as `serde_json` writes
    /// through `Serialize` — without going through a serializer: strings
    /// that need no escaping (nearly all) are copied as they are. Pages of
    /// runs are mostly this, so it is the hottest code of a query.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        fn text(out: &mut Vec<u8>, value: &str) {
            // A fold without early exit vectorises; most strings are short.
            let needs_escape = value.bytes().fold(false, |seen, b| {
                seen | (b < 0x20) | (b == b'"') | (b == b'\\')
            });
            let clean = !needs_escape;
            if clean {
                out.push(b'"');
                out.extend_from_slice(value.as_bytes());
                out.push(b'"');
            } else if serde_json::to_writer(&mut *out, value).is_err() {
                out.extend_from_slice(b"null");
            }
        }
        fn optional(out: &mut Vec<u8>, value: Option<&str>) {
            match value {
                Some(value) => text(out, value),
                None => out.extend_from_slice(b"null"),
            }
        }
        let mut integer = itoa::Buffer::new();
        out.extend_from_slice(b"{\"start_local\":");
        self.start_local.write_json(out);
        out.extend_from_slice(b",\"end_local\":");
        self.end_local.write_json(out);
        out.extend_from_slice(b",\"start_utc\":");
        self.start_utc.write_json(out);
        out.extend_from_slice(b",\"end_utc\":");
        self.end_utc.write_json(out);
        out.extend_from_slice(b",\"elapsed_seconds\":");
        // Finite by construction; serde_json's float text for equality.
        if serde_json::to_writer(&mut *out, &self.elapsed_seconds).is_err() {
            out.extend_from_slice(b"null");
        }
        out.extend_from_slice(b",\"elapsed_human\":");
        text(out, self.elapsed_human());
        out.extend_from_slice(b",\"output_file\":");
        text(out, self.output_file());
        out.extend_from_slice(b",\"rowcount\":");
        out.extend_from_slice(integer.format(self.rowcount).as_bytes());
        out.extend_from_slice(b",\"log_file\":");
        text(out, self.log_file());
        out.extend_from_slice(b",\"pid\":");
        out.extend_from_slice(integer.format(self.pid).as_bytes());
        out.extend_from_slice(b",\"date_code\":");
        text(out, self.date_code());
        out.extend_from_slice(b",\"pipeline_name\":");
        optional(out, self.pipeline_name());
        out.extend_from_slice(b",\"script_name\":");
        optional(out, self.script_name());
        out.extend_from_slice(b",\"pipeline_type\":");
        optional(out, self.pipeline_type());
        out.extend_from_slice(b",\"environment\":");
        optional(out, self.environment());
        out.extend_from_slice(b",\"archived_file\":");
        optional(out, self.archived_file());
        out.push(b'}');
    }
}

/// A record's values already typed, for the fast loading path of stored
/// lines (which has checked each one the way `parse_stored` would).
pub struct RecordParts<'a> {
    pub start_local: FlexDateTime,
    pub end_local: FlexDateTime,
    pub start_utc: FlexDateTime,
    pub end_utc: FlexDateTime,
    pub elapsed_seconds: f64,
    pub elapsed_human: &'a str,
    pub output_file: &'a str,
    pub log_file: &'a str,
    pub rowcount: i64,
    pub pid: i64,
    pub date_code: &'a str,
    /// pipeline_name, script_name, pipeline_type, environment.
    pub classes: [Option<Arc<str>>; 4],
    pub archived_file: Option<&'a str>,
}

/// Collects per-field problems while reading one JSON object.
struct FieldReader<'a> {
    root: &'static str,
    /// Longest string accepted, for input from clients.
    max_chars: Option<usize>,
    whole: &'a Value,
    fields: &'a Map<String, Value>,
    errors: ValidationErrors,
}

impl<'a> FieldReader<'a> {
    fn loc(&self, name: &str) -> Vec<LocItem> {
        vec![LocItem::from(self.root), LocItem::from(name)]
    }

    fn required<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&Value) -> Result<T, FieldError>,
    ) -> Option<T> {
        match self.fields.get(name) {
            None => {
                let error = FieldError::missing().at(self.loc(name), self.whole.clone());
                self.errors.push(error);
                None
            }
            Some(value) => match parse(value) {
                Ok(parsed) => Some(parsed),
                Err(error) => {
                    let error = error.at(self.loc(name), value.clone());
                    self.errors.push(error);
                    None
                }
            },
        }
    }

    fn optional_string(&mut self, name: &str) -> Option<Option<String>> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Some(None),
            Some(_) => self.string(name).map(Some),
        }
    }

    fn string(&mut self, name: &str) -> Option<String> {
        let max_chars = self.max_chars;
        self.required(name, |value| {
            let text = string(value)?;
            if let Some(max) = max_chars {
                check_length(&text, max)?;
            }
            Ok(text)
        })
    }
}

/// Longest accepted string, in characters: far above any real path or
/// name, low enough that one record cannot carry megabytes of text.
pub const MAX_STRING_CHARS: usize = 4096;

fn string(value: &Value) -> Result<String, FieldError> {
    match value {
        Value::String(text) => Ok(text.clone()),
        _ => Err(FieldError::string_type()),
    }
}

/// pydantic's `string_too_long` for text over `max` characters.
pub fn check_length(text: &str, max: usize) -> Result<(), FieldError> {
    if text.len() > max && text.chars().count() > max {
        return Err(FieldError::new(
            "string_too_long",
            format!("String should have at most {max} characters"),
        )
        .with_ctx("max_length", max));
    }
    Ok(())
}

impl PipelineInfo {
    /// Validates client input, collecting every problem. `root` is the first
    /// element of each error location (`"body"` for request bodies).
    pub fn parse(value: &Value, root: &'static str) -> Result<Self, ValidationErrors> {
        Self::parse_with(value, root, Some(MAX_STRING_CHARS))
    }

    /// Validates a stored record. Strings of any length are kept: the
    /// length limit guards the API, and must not hide runs already on file.
    pub fn parse_stored(value: &Value) -> Result<Self, ValidationErrors> {
        Self::parse_with(value, "line", None)
    }

    fn parse_with(
        value: &Value,
        root: &'static str,
        max_chars: Option<usize>,
    ) -> Result<Self, ValidationErrors> {
        let Value::Object(fields) = value else {
            let error = FieldError::new(
                "model_attributes_type",
                "Input should be a valid dictionary or object to extract fields from",
            )
            .at(vec![LocItem::from(root)], value.clone());
            return Err(ValidationErrors::single(error));
        };
        let mut r = FieldReader {
            root,
            max_chars,
            whole: value,
            fields,
            errors: ValidationErrors::default(),
        };
        let start_local = r.required("start_local", FlexDateTime::from_json);
        let end_local = r.required("end_local", FlexDateTime::from_json);
        let start_utc = r.required("start_utc", FlexDateTime::from_json);
        let end_utc = r.required("end_utc", FlexDateTime::from_json);
        let elapsed_seconds = r.required("elapsed_seconds", lenient_float);
        let elapsed_human = r.string("elapsed_human");
        let output_file = r.string("output_file");
        let rowcount = r.required("rowcount", lenient_int);
        let log_file = r.string("log_file");
        let pid = r.required("pid", lenient_int);
        let date_code = r.string("date_code");
        let pipeline_name = r.optional_string("pipeline_name");
        let script_name = r.optional_string("script_name");
        let pipeline_type = r.optional_string("pipeline_type");
        let environment = r.optional_string("environment");
        let archived_file = r.optional_string("archived_file");
        match (
            (start_local, end_local, start_utc, end_utc),
            (elapsed_seconds, elapsed_human, output_file, log_file),
            (rowcount, pid, date_code),
            (
                pipeline_name,
                script_name,
                pipeline_type,
                environment,
                archived_file,
            ),
        ) {
            (
                (Some(start_local), Some(end_local), Some(start_utc), Some(end_utc)),
                (Some(elapsed_seconds), Some(elapsed_human), Some(output_file), Some(log_file)),
                (Some(rowcount), Some(pid), Some(date_code)),
                (
                    Some(pipeline_name),
                    Some(script_name),
                    Some(pipeline_type),
                    Some(environment),
                    Some(archived_file),
                ),
            ) if r.errors.is_empty() => Self::from_parts(RecordParts {
                start_local,
                end_local,
                start_utc,
                end_utc,
                elapsed_seconds,
                elapsed_human: &elapsed_human,
                output_file: &output_file,
                log_file: &log_file,
                rowcount,
                pid,
                date_code: &date_code,
                classes: [pipeline_name, script_name, pipeline_type, environment]
                    .map(|value| value.map(Arc::from)),
                archived_file: archived_file.as_deref(),
            })
            .ok_or_else(|| {
                // Unreachable in practice: lenient_float already refuses
                // non-finite values and no text is near 4 GiB.
                let error = FieldError::new("finite_number", "Input should be a finite number").at(
                    vec![LocItem::from(root), LocItem::from("elapsed_seconds")],
                    Value::Null,
                );
                ValidationErrors::single(error)
            }),
            _ => Err(r.errors),
        }
    }

    /// Assembles a record from typed parts; `None` when the duration is not
    /// finite (the one rule the types do not already carry) or the text is
    /// too large to index with 32-bit offsets.
    pub(crate) fn from_parts(p: RecordParts) -> Option<Self> {
        if !p.elapsed_seconds.is_finite() {
            return None;
        }
        let pieces = [p.elapsed_human, p.output_file, p.log_file, p.date_code];
        let archived = p.archived_file.unwrap_or("");
        let mut text =
            String::with_capacity(pieces.iter().map(|t| t.len()).sum::<usize>() + archived.len());
        let mut ends = [0u32; 4];
        for (end, piece) in ends.iter_mut().zip(pieces) {
            text.push_str(piece);
            *end = u32::try_from(text.len()).ok()?;
        }
        text.push_str(archived);
        u32::try_from(text.len()).ok()?;
        Some(Self {
            start_local: p.start_local,
            end_local: p.end_local,
            start_utc: p.start_utc,
            end_utc: p.end_utc,
            elapsed_seconds: p.elapsed_seconds,
            rowcount: p.rowcount,
            pid: p.pid,
            text: text.into_boxed_str(),
            ends,
            has_archived_file: p.archived_file.is_some(),
            classes: p.classes,
        })
    }

    /// pipeline_name, script_name, pipeline_type and environment, so a store
    /// can replace them with shared copies (`intern_classes`).
    pub fn classes(&self) -> &[Option<Arc<str>>; 4] {
        &self.classes
    }

    /// Replaces each classification value by `intern(value)`, an equal string
    /// shared with other records.
    pub fn intern_classes(&mut self, mut intern: impl FnMut(&str) -> Arc<str>) {
        for value in self.classes.iter_mut().flatten() {
            *value = intern(value);
        }
    }

    pub fn start_local(&self) -> FlexDateTime {
        self.start_local
    }
    /// The same run with other times (start_local, end_local, start_utc,
    /// end_utc): what a store answers when it keeps less than was written.
    pub fn with_times(&self, times: [FlexDateTime; 4]) -> Self {
        let [start_local, end_local, start_utc, end_utc] = times;
        Self {
            start_local,
            end_local,
            start_utc,
            end_utc,
            ..self.clone()
        }
    }
    pub fn end_local(&self) -> FlexDateTime {
        self.end_local
    }
    pub fn start_utc(&self) -> FlexDateTime {
        self.start_utc
    }
    pub fn end_utc(&self) -> FlexDateTime {
        self.end_utc
    }
    pub fn elapsed_seconds(&self) -> f64 {
        self.elapsed_seconds
    }
    fn piece(&self, index: usize) -> &str {
        let start = if index == 0 {
            0
        } else {
            self.ends[index - 1] as usize
        };
        &self.text[start..self.ends[index] as usize]
    }
    pub fn elapsed_human(&self) -> &str {
        self.piece(0)
    }
    pub fn output_file(&self) -> &str {
        self.piece(1)
    }
    pub fn log_file(&self) -> &str {
        self.piece(2)
    }
    pub fn rowcount(&self) -> i64 {
        self.rowcount
    }
    pub fn pid(&self) -> i64 {
        self.pid
    }
    pub fn date_code(&self) -> &str {
        self.piece(3)
    }
    pub fn pipeline_name(&self) -> Option<&str> {
        self.classes[0].as_deref()
    }
    pub fn script_name(&self) -> Option<&str> {
        self.classes[1].as_deref()
    }
    pub fn pipeline_type(&self) -> Option<&str> {
        self.classes[2].as_deref()
    }
    pub fn environment(&self) -> Option<&str> {
        self.classes[3].as_deref()
    }
    pub fn archived_file(&self) -> Option<&str> {
        self.has_archived_file
            .then(|| &self.text[self.ends[3] as usize..])
    }

    /// Every text field with its value (None: null), in `FIELD_NAMES`
    /// order: what a store checks against the limits of its columns.
    pub fn text_fields(&self) -> [(&'static str, Option<&str>); 9] {
        [
            ("elapsed_human", Some(self.elapsed_human())),
            ("output_file", Some(self.output_file())),
            ("log_file", Some(self.log_file())),
            ("date_code", Some(self.date_code())),
            ("pipeline_name", self.pipeline_name()),
            ("script_name", self.script_name()),
            ("pipeline_type", self.pipeline_type()),
            ("environment", self.environment()),
            ("archived_file", self.archived_file()),
        ]
    }
}

/// Aggregate over every run of one (pipeline_name, script_name,
/// pipeline_type, environment) combination.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PipelineSummary {
    /// Pipeline name (null groups the runs that have none).
    pub pipeline_name: Option<String>,
    /// Script name.
    pub script_name: Option<String>,
    /// Pipeline type.
    pub pipeline_type: Option<String>,
    /// Environment.
    pub environment: Option<String>,
    /// Number of runs in the group.
    #[schema(example = 42)]
    pub total_runs: u64,
    /// The greatest `start_utc` of the group, in the zone it was stored with.
    #[schema(value_type = Option<DateTime>)]
    pub last_run: Option<FlexDateTime>,
    /// Mean `elapsed_seconds` over the runs where it is above zero; null if none.
    #[schema(example = 1290.5)]
    pub avg_duration: Option<f64>,
    /// Mean `rowcount` over the runs where it is above zero; null if none.
    #[schema(example = 8120.0)]
    pub avg_rowcount: Option<f64>,
}

/// The latest state of one pipeline, for per-pipeline metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineActivity {
    /// (pipeline_name, script_name, pipeline_type, environment).
    pub key: [Option<String>; 4],
    pub total_runs: u64,
    /// `start_utc` of the latest run.
    pub last_run: FlexDateTime,
    pub last_elapsed_seconds: f64,
    pub last_rowcount: i64,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_direct_writer_writes_what_serde_writes() {
        let mut records = crate::generate::parsed(500, 3);
        let mut odd = sample();
        odd["output_file"] = json!("C:\\data\\\"quoted\"\n\u{1}\u{7f}é😀");
        odd["pipeline_name"] = json!(null);
        odd["archived_file"] = json!("/a\tb");
        odd["elapsed_seconds"] = json!(1e-7);
        odd["rowcount"] = json!(-9_223_372_036_854_775_807_i64);
        records.push(PipelineInfo::parse(&odd, "body").unwrap());
        assert!(records.len() > 450);
        for record in &records {
            let mut direct = Vec::new();
            record.write_json(&mut direct);
            assert_eq!(
                String::from_utf8(direct).unwrap(),
                serde_json::to_string(record).unwrap()
            );
        }
    }

    pub(crate) fn sample() -> Value {
        json!({
            "start_local": "2025-08-08T05:07:01",
            "end_local": "2025-08-08T05:29:06",
            "start_utc": "2025-08-08T12:07:01+00:00",
            "end_utc": "2025-08-08T12:29:06Z",
            "elapsed_seconds": "1325",
            "elapsed_human": "22m 5s",
            "output_file": "/data/out.csv",
            "log_file": "/data/run.log",
            "rowcount": 8543.0,
            "pid": "48213",
            "date_code": "20250808_050701",
            "extra": "ignored"
        })
    }

    #[test]
    fn a_lenient_body_is_normalised() {
        let record = PipelineInfo::parse(&sample(), "body").unwrap();
        let out = serde_json::to_value(&record).unwrap();
        assert_eq!(out["start_utc"], "2025-08-08T12:07:01Z");
        assert_eq!(out["start_local"], "2025-08-08T05:07:01");
        assert_eq!(out["elapsed_seconds"], json!(1325.0));
        assert_eq!(out["rowcount"], json!(8543));
        assert_eq!(out["pipeline_name"], Value::Null);
        assert!(out.get("extra").is_none());
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), FIELD_NAMES.len());
    }

    #[test]
    fn every_problem_is_reported_in_field_order() {
        let mut body = sample();
        let map = body.as_object_mut().unwrap();
        map.remove("start_local");
        map.insert("rowcount".into(), json!("many"));
        map.insert("environment".into(), json!(5));
        let errors = PipelineInfo::parse(&body, "body").unwrap_err().detail;
        let kinds: Vec<(&str, String)> = errors
            .iter()
            .map(|e| (e.kind, serde_json::to_string(&e.loc).unwrap()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("missing", r#"["body","start_local"]"#.to_string()),
                ("int_parsing", r#"["body","rowcount"]"#.to_string()),
                ("string_type", r#"["body","environment"]"#.to_string()),
            ]
        );
        assert_eq!(errors[0].input, body);
        assert_eq!(errors[1].input, json!("many"));
    }

    #[test]
    fn a_record_survives_a_write_and_read_unchanged() {
        // Found by fuzzing: long float literals must parse correctly rounded.
        let mut body = sample();
        body["elapsed_seconds"] =
            serde_json::from_str("3999999999999999999999999999999999999999999999999999999999900.0")
                .unwrap();
        let record = PipelineInfo::parse_stored(&body).unwrap();
        let line = serde_json::to_string(&record).unwrap();
        let again = PipelineInfo::parse_stored(&serde_json::from_str(&line).unwrap()).unwrap();
        assert_eq!(again, record);
    }

    #[test]
    fn a_non_object_is_a_model_attributes_type_error() {
        let errors = PipelineInfo::parse(&json!([1, 2]), "body")
            .unwrap_err()
            .detail;
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].kind, "model_attributes_type");
        assert_eq!(errors[0].loc, vec![LocItem::from("body")]);
    }
}
