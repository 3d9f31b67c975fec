//! A strict reader of the Prometheus text exposition format (0.0.4) and the
//! naming conventions a scrape must follow. Strict where scrapers are
//! lenient: every family declares HELP and TYPE before its samples, a
//! family's samples are contiguous, label values are properly escaped,
//! histograms are complete and cumulative. Anything else is an error.

use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub families: Vec<Family>,
}

impl Exposition {
    /// Every sample of every family.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.families.iter().flat_map(|f| &f.samples)
    }

    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    /// The value of the first sample named `name` having `labels` (and
    /// perhaps others).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn value_of(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if text.starts_with(['+', '-', '.'])
            || text.starts_with(|c: char| c.is_ascii_digit()) =>
        {
            text.parse()
                .map_err(|_| format!("{text:?} is not a sample value"))
        }
        _ => Err(format!("{text:?} is not a sample value")),
    }
}

/// Unescapes a HELP text (`\\` and `\n` only).
fn help_text(raw: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                other => return Err(format!("bad escape \\{other:?} in HELP")),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

/// `{name="value",…}` at the start of `rest`: the labels and what follows.
fn labels(rest: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let Some(mut rest) = rest.strip_prefix('{') else {
        return Ok((labels, rest));
    };
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| format!("label without =\" in {rest:?}"))?;
        if !is_name(name) || name.contains(':') {
            return Err(format!("{name:?} is not a label name"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape in label value: {other:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) | None => return Err("unterminated label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} given twice"));
        }
        rest = &after[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected , or }} in {rest:?}"));
        }
    }
}

/// The family a sample name belongs to, given the family being read.
fn belongs(sample: &str, family: &Family) -> bool {
    match family.kind {
        Kind::Histogram => ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| sample.strip_suffix(s) == Some(&family.name)),
        Kind::Summary => {
            sample == family.name
                || ["_sum", "_count"]
                    .iter()
                    .any(|s| sample.strip_suffix(s) == Some(&family.name))
        }
        _ => sample == family.name,
    }
}

/// Reads a whole exposition, refusing anything the format does not allow
/// or that leaves a family ambiguous.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut exposition = Exposition::default();
    let mut declared = HashSet::new();
    let mut help: Option<(String, String)> = None;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the exposition does not end with a newline".into());
    }
    for (number, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", number + 1);
        if line.is_empty() {
            return Err(at("empty line".into()));
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, doc) = rest.split_once(' ').unwrap_or((rest, ""));
            if help.is_some() {
                return Err(at("HELP without a TYPE after it".into()));
            }
            help = Some((name.to_owned(), help_text(doc).map_err(at)?));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| at("TYPE without a type".into()))?;
            let kind = match kind {
                "counter" => Kind::Counter,
                "gauge" => Kind::Gauge,
                "histogram" => Kind::Histogram,
                "summary" => Kind::Summary,
                "untyped" => Kind::Untyped,
                other => return Err(at(format!("unknown type {other}"))),
            };
            let help = match help.take() {
                Some((named, help)) if named == name => help,
                _ => return Err(at("TYPE not right after its family's HELP".into())),
            };
            if !is_name(name) || !declared.insert(name.to_owned()) {
                return Err(at(format!("family {name} is not a new, valid name")));
            }
            exposition.families.push(Family {
                name: name.to_owned(),
                help,
                kind,
                samples: Vec::new(),
            });
            continue;
        }
        if line.starts_with('#') {
            return Err(at("a comment that is neither HELP nor TYPE".into()));
        }
        let end = line
            .find(['{', ' '])
            .ok_or_else(|| at("a sample without a value".into()))?;
        let name = &line[..end];
        let (labels, rest) = labels(&line[end..]).map_err(at)?;
        let fields: Vec<&str> = rest.trim_start_matches(' ').split(' ').collect();
        if !rest.starts_with(' ') || fields.is_empty() || fields.len() > 2 {
            return Err(at("expected one value and perhaps a timestamp".into()));
        }
        let value = value_of(fields[0]).map_err(at)?;
        let family = exposition
            .families
            .last_mut()
            .filter(|f| help.is_none() && belongs(name, f))
            .ok_or_else(|| at(format!("{name} is not of the family declared last")))?;
        family.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    if help.is_some() {
        return Err("a HELP without its TYPE at the end".into());
    }
    Ok(exposition)
}

/// Units that are not base units, as name parts.
const NON_BASE_UNITS: &[&str] = &[
    "milliseconds",
    "millis",
    "ms",
    "microseconds",
    "us",
    "nanoseconds",
    "ns",
    "sec",
    "secs",
    "minutes",
    "mins",
    "hours",
    "days",
    "kilobytes",
    "kb",
    "kib",
    "megabytes",
    "mb",
    "mib",
    "gigabytes",
    "gb",
    "gib",
    "bits",
    "percent",
];
/// Name parts that say the value is a time or duration.
const TIME_WORDS: &[&str] = &[
    "duration",
    "latency",
    "elapsed",
    "age",
    "uptime",
    "time",
    "timestamp",
    "timeout",
    "interval",
    "delay",
];
/// Name parts that say the value is an amount of data.
const SIZE_WORDS: &[&str] = &["size", "memory", "length"];

/// Every way the exposition departs from the Prometheus naming and
/// structure conventions; empty when it follows them.
pub fn findings(exposition: &Exposition) -> Vec<String> {
    let mut found = Vec::new();
    for family in &exposition.families {
        let name = family.name.as_str();
        let mut say = |what: &str| found.push(format!("{name}: {what}"));
        if family.help.trim().is_empty() {
            say("no HELP text");
        }
        if name.contains(':') || name.chars().any(|c| c.is_ascii_uppercase()) {
            say("names are snake_case without colons");
        }
        let is_counter = family.kind == Kind::Counter;
        if is_counter != name.ends_with("_total") {
            say("`_total` marks counters, and only counters");
        }
        if family.kind == Kind::Untyped {
            say("every family declares its type");
        }
        // The name without the counter suffix ends in its unit.
        let base = name.strip_suffix("_total").unwrap_or(name);
        let parts: Vec<&str> = base.split('_').collect();
        if let Some(unit) = parts.iter().find(|p| NON_BASE_UNITS.contains(p)) {
            say(&format!(
                "`{unit}` is not a base unit (use seconds or bytes)"
            ));
        }
        // A name ending in what it measures lacks its unit
        // (`sync_duration`); one about it is fine (`duration_anomaly`).
        let last = parts.last().copied().unwrap_or_default();
        if TIME_WORDS.contains(&last) {
            say("a time or duration ends in `_seconds`");
        }
        if SIZE_WORDS.contains(&last) {
            say("a size ends in `_bytes`");
        }
        for reserved in ["_bucket", "_sum", "_count"] {
            if name.ends_with(reserved) {
                say(&format!(
                    "`{reserved}` is reserved for histogram and summary samples"
                ));
            }
        }
        for kind in ["counter", "gauge", "histogram", "summary"] {
            if parts.contains(&kind) {
                say("the name repeats the type");
            }
        }
        if name.ends_with("_info")
            && (family.kind != Kind::Gauge || family.samples.iter().any(|s| s.value != 1.0))
        {
            say("an `_info` family is a gauge whose value is 1");
        }
        let mut series = HashSet::new();
        for sample in &family.samples {
            let labels = format!("{}{:?}", sample.name, sample.labels);
            if !series.insert(labels.clone()) {
                found.push(format!("{name}: series {labels} given twice"));
            }
            for label in sample.labels.keys() {
                if label.starts_with("__") || label.chars().any(|c| c.is_ascii_uppercase()) {
                    found.push(format!(
                        "{name}: label {label} is reserved or not snake_case"
                    ));
                }
                let le_ok = family.kind == Kind::Histogram && sample.name.ends_with("_bucket");
                let quantile_ok = family.kind == Kind::Summary && sample.name == family.name;
                if (label == "le" && !le_ok) || (label == "quantile" && !quantile_ok) {
                    found.push(format!("{name}: label {label} is reserved"));
                }
            }
            if !sample.value.is_finite() && !(sample.labels.contains_key("le")) {
                found.push(format!("{name}: value {} is not finite", sample.value));
            }
            if is_counter && sample.value < 0.0 {
                found.push(format!("{name}: a counter is negative"));
            }
        }
        if family.kind == Kind::Histogram {
            found.extend(histogram_findings(family));
        }
    }
    found
}

/// One labelled series of a histogram: `(le, count)` buckets, `_sum`, `_count`.
#[derive(Default)]
struct HistogramSeries {
    buckets: Vec<(f64, f64)>,
    sum: Option<f64>,
    count: Option<f64>,
}

/// Each series of a histogram has cumulative buckets ending at `+Inf`,
/// whose count is the series' `_count`, and a `_sum`.
fn histogram_findings(family: &Family) -> Vec<String> {
    let mut found = Vec::new();
    let mut series: BTreeMap<String, HistogramSeries> = BTreeMap::new();
    for sample in &family.samples {
        let mut labels = sample.labels.clone();
        let le = labels.remove("le");
        let entry = series.entry(format!("{labels:?}")).or_default();
        match sample.name.strip_prefix(family.name.as_str()) {
            Some("_bucket") => match le.as_deref().map(value_of) {
                Some(Ok(bound)) => entry.buckets.push((bound, sample.value)),
                _ => found.push(format!("{}: a bucket without a valid le", family.name)),
            },
            Some("_sum") => entry.sum = Some(sample.value),
            Some("_count") => entry.count = Some(sample.value),
            _ => found.push(format!("{}: stray sample {}", family.name, sample.name)),
        }
    }
    for (
        labels,
        HistogramSeries {
            buckets,
            sum,
            count,
        },
    ) in series
    {
        let ordered = buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
        let last = buckets.last().copied();
        if !ordered
            || last.map(|b| b.0) != Some(f64::INFINITY)
            || last.map(|b| b.1) != count
            || sum.is_none()
        {
            found.push(format!(
                "{}{labels}: buckets not cumulative up to +Inf = _count, or no _sum",
                family.name
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(exposition) => findings(&exposition),
            Err(error) => vec![error],
        }
    }

    #[test]
    fn a_conventional_exposition_passes() {
        let text = "# HELP app_requests_total Requests.\n# TYPE app_requests_total counter\n\
            app_requests_total{route=\"/a\\\\b\",code=\"200\"} 3\n\
            # HELP app_latency_seconds Latency.\n# TYPE app_latency_seconds histogram\n\
            app_latency_seconds_bucket{le=\"0.1\"} 1\napp_latency_seconds_bucket{le=\"+Inf\"} 2\n\
            app_latency_seconds_sum 0.3\napp_latency_seconds_count 2\n\
            # HELP app_build_info Build.\n# TYPE app_build_info gauge\napp_build_info{version=\"1\"} 1\n";
        assert_eq!(problems(text), Vec::<String>::new());
        let parsed = parse(text).unwrap();
        assert_eq!(
            parsed.value("app_requests_total", &[("route", "/a\\b")]),
            Some(3.0)
        );
    }

    #[test]
    fn each_departure_is_found() {
        let gauge = |name: &str, sample: &str| {
            format!("# HELP {name} Help.\n# TYPE {name} gauge\n{sample}\n")
        };
        for (text, why) in [
            (gauge("runs_total", "runs_total 1"), "_total on a gauge"),
            (
                "# HELP runs Help.\n# TYPE runs counter\nruns 1\n".to_owned(),
                "a counter without _total",
            ),
            (
                gauge("sync_duration_ms", "sync_duration_ms 1"),
                "not a base unit",
            ),
            (
                gauge("sync_duration", "sync_duration 1"),
                "a duration without a unit",
            ),
            (gauge("heap_size", "heap_size 1"), "a size without _bytes"),
            (gauge("queue_count", "queue_count 1"), "reserved suffix"),
            (gauge("x_info", "x_info 2"), "an info gauge that is not 1"),
            (gauge("camelCase", "camelCase 1"), "camel case"),
            (
                gauge("dup", "dup{a=\"1\"} 1\ndup{a=\"1\"} 2"),
                "a series twice",
            ),
            ("# TYPE x gauge\nx 1\n".to_owned(), "no HELP"),
            ("# HELP x Help.\nx 1\n".to_owned(), "no TYPE"),
            (
                gauge("x", "x{a=\"1\"} 1") + &gauge("y", "y 1") + "x 2\n",
                "interleaved",
            ),
            (gauge("x", "x{a=\"b\\q\"} 1"), "a bad escape"),
            (gauge("x", "x{a=\"1\"} one"), "a value that is not a number"),
            (gauge("x", "x 1").trim_end().to_owned(), "no final newline"),
            (
                "# HELP h_seconds H.\n# TYPE h_seconds histogram\nh_seconds_bucket{le=\"1\"} 3\n\
                 h_seconds_bucket{le=\"+Inf\"} 2\nh_seconds_sum 1\nh_seconds_count 2\n"
                    .to_owned(),
                "buckets that are not cumulative",
            ),
        ] {
            assert!(
                !problems(&text).is_empty(),
                "{why} was not found in {text:?}"
            );
        }
    }
}
