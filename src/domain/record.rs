//! The run record and its summary. A `PipelineInfo` can only be obtained by
//! parsing, so every value in the system has passed the contract's rules.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::datetime::FlexDateTime;
use super::numbers::{lenient_float, lenient_int};
use super::validation::{FieldError, LocItem, ValidationErrors};

/// The record's fields, in the order they are validated and serialised.
pub const FIELD_NAMES: [&str; 16] = [
    "start_local",
    "end_local",
    "start_utc",
    "end_utc",
    "elapsed_seconds",
    "elapsed_human",
    "output_file",
    "log_file",
    "rowcount",
    "pid",
    "date_code",
    "pipeline_name",
    "script_name",
    "pipeline_type",
    "environment",
    "archived_file",
];

/// Metadata about one finished pipeline run.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "start_local": "2025-08-08T05:07:01",
    "end_local": "2025-08-08T05:29:06",
    "start_utc": "2025-08-08T12:07:01Z",
    "end_utc": "2025-08-08T12:29:06Z",
    "elapsed_seconds": 1325.0,
    "elapsed_human": "22m 5s",
    "output_file": "/data/pipeline/sales_daily/output-20250808.csv",
    "log_file": "/data/logs/sales_daily-20250808_050701.log",
    "rowcount": 8543,
    "pid": 48213,
    "date_code": "20250808_050701",
    "pipeline_name": "sales_daily",
    "script_name": "sales_daily.py",
    "pipeline_type": "batch",
    "environment": "prod",
    "archived_file": null
}))]
pub struct PipelineInfo {
    /// Local wall-clock start time, usually naive (`2025-08-08T05:07:01`).
    /// Accepts ISO 8601 with `T`, `t`, space or `_` between date and time, an
    /// optional `Z`/`±HH:MM` zone, a bare date, or a Unix timestamp.
    #[schema(value_type = String, format = DateTime, pattern = r"^(1[6-9]|[2-9][0-9])[0-9]{2}-", example = "2025-08-08T05:07:01")]
    start_local: FlexDateTime,
    /// Local wall-clock end time.
    #[schema(value_type = String, format = DateTime, pattern = r"^(1[6-9]|[2-9][0-9])[0-9]{2}-", example = "2025-08-08T05:29:06")]
    end_local: FlexDateTime,
    /// Start time in UTC, usually aware (`…Z` or `…+00:00`).
    #[schema(value_type = String, format = DateTime, pattern = r"^(1[6-9]|[2-9][0-9])[0-9]{2}-", example = "2025-08-08T12:07:01Z")]
    start_utc: FlexDateTime,
    /// End time in UTC.
    #[schema(value_type = String, format = DateTime, pattern = r"^(1[6-9]|[2-9][0-9])[0-9]{2}-", example = "2025-08-08T12:29:06Z")]
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
    /// Path of the run's log file.
    #[schema(max_length = 4096)]
    log_file: String,
    /// Rows the run produced.
    #[schema(example = 8543)]
    rowcount: i64,
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

/// A record's values already typed, for the fast loading path of stored
/// lines (which has checked each one the way `parse_stored` would).
pub struct RecordParts {
    pub start_local: FlexDateTime,
    pub end_local: FlexDateTime,
    pub start_utc: FlexDateTime,
    pub end_utc: FlexDateTime,
    pub elapsed_seconds: f64,
    pub elapsed_human: String,
    pub output_file: String,
    pub log_file: String,
    pub rowcount: i64,
    pub pid: i64,
    pub date_code: String,
    pub pipeline_name: Option<String>,
    pub script_name: Option<String>,
    pub pipeline_type: Option<String>,
    pub environment: Option<String>,
    pub archived_file: Option<String>,
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
        let log_file = r.string("log_file");
        let rowcount = r.required("rowcount", lenient_int);
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
            ) if r.errors.is_empty() => Ok(Self {
                start_local,
                end_local,
                start_utc,
                end_utc,
                elapsed_seconds,
                elapsed_human,
                output_file,
                log_file,
                rowcount,
                pid,
                date_code,
                pipeline_name,
                script_name,
                pipeline_type,
                environment,
                archived_file,
            }),
            _ => Err(r.errors),
        }
    }

    /// Assembles a stored record from typed parts; `None` when the duration
    /// is not finite (the one rule the types do not already carry).
    pub(crate) fn from_parts(p: RecordParts) -> Option<Self> {
        p.elapsed_seconds.is_finite().then_some(Self {
            start_local: p.start_local,
            end_local: p.end_local,
            start_utc: p.start_utc,
            end_utc: p.end_utc,
            elapsed_seconds: p.elapsed_seconds,
            elapsed_human: p.elapsed_human,
            output_file: p.output_file,
            log_file: p.log_file,
            rowcount: p.rowcount,
            pid: p.pid,
            date_code: p.date_code,
            pipeline_name: p.pipeline_name,
            script_name: p.script_name,
            pipeline_type: p.pipeline_type,
            environment: p.environment,
            archived_file: p.archived_file,
        })
    }

    pub fn start_local(&self) -> FlexDateTime {
        self.start_local
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
    pub fn elapsed_human(&self) -> &str {
        &self.elapsed_human
    }
    pub fn output_file(&self) -> &str {
        &self.output_file
    }
    pub fn log_file(&self) -> &str {
        &self.log_file
    }
    pub fn rowcount(&self) -> i64 {
        self.rowcount
    }
    pub fn pid(&self) -> i64 {
        self.pid
    }
    pub fn date_code(&self) -> &str {
        &self.date_code
    }
    pub fn pipeline_name(&self) -> Option<&str> {
        self.pipeline_name.as_deref()
    }
    pub fn script_name(&self) -> Option<&str> {
        self.script_name.as_deref()
    }
    pub fn pipeline_type(&self) -> Option<&str> {
        self.pipeline_type.as_deref()
    }
    pub fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }
    pub fn archived_file(&self) -> Option<&str> {
        self.archived_file.as_deref()
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
    #[schema(value_type = Option<String>, format = DateTime, pattern = r"^(1[6-9]|[2-9][0-9])[0-9]{2}-", example = "2025-08-08T12:07:01Z")]
    pub last_run: Option<FlexDateTime>,
    /// Mean `elapsed_seconds` over the runs where it is above zero; null if none.
    #[schema(example = 1290.5)]
    pub avg_duration: Option<f64>,
    /// Mean `rowcount` over the runs where it is above zero; null if none.
    #[schema(example = 8120.0)]
    pub avg_rowcount: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
