//! `pipeline-service gen`: realistic data files for benchmarks and tests —
//! 200 pipelines (50 names in 4 environments; `--pipelines` sets another
//! number) over a year, log-normal durations
//! and row counts, zero-row runs, legacy lines without classification
//! fields, and a few corrupt lines, written the way the Python service
//! writes (`json.dumps` spacing, `+00:00` offsets, naive local times).

use std::io::Write;

use chrono::{DateTime, Duration, NaiveDateTime};

const WORDS: [&str; 10] = [
    "orders",
    "billing",
    "inventory",
    "customers",
    "shipments",
    "payments",
    "clicks",
    "ledger",
    "returns",
    "pricing",
];
const STAGES: [&str; 5] = ["ingest", "clean", "aggregate", "export", "reconcile"];
const ENVIRONMENTS: [(&str, i64); 4] = [("prod", -7), ("staging", -7), ("dev", 1), ("qa", 9)];
const TYPES: [&str; 3] = ["batch", "stream", "backfill"];
/// 2025-01-01T00:00:00Z.
const YEAR_START: i64 = 1_735_689_600;
const YEAR_SECONDS: i64 = 365 * 86_400;

/// xorshift64*: small, fast, reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Log-normal with the given median and shape (Box–Muller).
    pub fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        median * (sigma * normal).exp()
    }
}

/// What was written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Generated {
    pub lines: u64,
    pub valid: u64,
    pub legacy: u64,
    pub corrupt: u64,
    pub bytes: u64,
}

fn python_time(value: NaiveDateTime) -> String {
    value.format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn human(seconds: f64) -> String {
    let total = seconds as u64;
    match (total / 3600, total % 3600 / 60, total % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, m, s) => format!("{h}h {m}m {s}s"),
    }
}

/// Pipelines (name and environment pairs) when none is asked for.
pub const DEFAULT_PIPELINES: u64 = 200;

/// Writes `records` lines over `DEFAULT_PIPELINES` pipelines.
pub fn generate(out: &mut impl Write, records: u64, seed: u64) -> std::io::Result<Generated> {
    generate_pipelines(out, records, DEFAULT_PIPELINES, seed)
}

/// The name of pipeline number `name_index`: a stage and a word, and from
/// the 51st name on a number, so any count of names stays distinct.
fn pipeline_name(name_index: usize) -> String {
    let names = STAGES.len() * WORDS.len();
    let base = format!(
        "{}_{}",
        STAGES[name_index % STAGES.len()],
        WORDS[name_index % names / STAGES.len()]
    );
    match name_index / names {
        0 => base,
        round => format!("{base}_{}", round + 1),
    }
}

/// Writes `records` lines to `out`, spread over `pipelines` distinct
/// (pipeline_name, script_name, pipeline_type, environment) signatures —
/// pipeline `s` is name `s / 4` in environment `s % 4` — reproducibly for a
/// given `seed`. (Legacy lines, without classification fields, add a group
/// per inferred name on top.)
pub fn generate_pipelines(
    out: &mut impl Write,
    records: u64,
    pipelines: u64,
    seed: u64,
) -> std::io::Result<Generated> {
    let mut rng = Rng::new(seed);
    let mut summary = Generated::default();
    let step = (YEAR_SECONDS as f64 / records.max(1) as f64).max(1.0);
    for i in 0..records {
        let signature = rng.below(pipelines) as usize;
        let name_index = signature / ENVIRONMENTS.len();
        let name = pipeline_name(name_index);
        let (environment, hours) = ENVIRONMENTS[signature % ENVIRONMENTS.len()];
        let pipeline_type = TYPES[name_index % TYPES.len()];
        // Roughly chronological, as a file that is appended to over time.
        let jitter = rng.below(3600) as i64 - 1800;
        let start_seconds = YEAR_START + (i as f64 * step) as i64 + jitter;
        let start = DateTime::from_timestamp(start_seconds, 0)
            .unwrap_or_default()
            .naive_utc();
        let elapsed = (rng.log_normal(300.0, 1.0) * 1000.0).round() / 1000.0;
        let end = start + Duration::milliseconds((elapsed * 1000.0) as i64);
        let local = Duration::hours(hours);
        let rowcount = if rng.below(20) == 0 {
            0
        } else {
            rng.log_normal(10_000.0, 1.5) as u64
        };
        let date_code = (start + local).format("%Y%m%d_%H%M%S").to_string();
        let pid = 1000 + rng.below(60_000);
        let legacy = rng.below(50) == 0;
        let classification = if legacy {
            summary.legacy += 1;
            String::new()
        } else {
            format!(
                r#", "pipeline_name": "{name}", "script_name": "{name}.py", "pipeline_type": "{pipeline_type}", "environment": "{environment}", "archived_file": null"#
            )
        };
        let mut line = format!(
            r#"{{"start_local": "{}", "end_local": "{}", "start_utc": "{}+00:00", "end_utc": "{}+00:00", "elapsed_seconds": {elapsed:?}, "elapsed_human": "{}", "output_file": "/srv/data/pipeline/{name}/{environment}/output-{date_code}.csv", "rowcount": {rowcount}, "log_file": "/srv/data/logs/{name}-{environment}-{date_code}.log", "pid": {pid}, "date_code": "{date_code}"{classification}}}"#,
            python_time(start + local),
            python_time(end + local),
            python_time(start),
            python_time(end),
            human(elapsed),
        );
        if rng.below(10_000) == 0 {
            // A torn write or a stray array, as real files occasionally hold.
            summary.corrupt += 1;
            line = if rng.below(2) == 0 {
                line[..line.len() / 2].to_owned()
            } else {
                "[1, 2, 3]".to_owned()
            };
        } else {
            summary.valid += 1;
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
        summary.lines += 1;
        summary.bytes += line.len() as u64;
    }
    Ok(summary)
}

/// The valid records of `records` generated lines (for tests).
#[cfg(test)]
pub(crate) fn parsed(records: u64, seed: u64) -> Vec<crate::domain::PipelineInfo> {
    let mut buffer = Vec::new();
    generate(&mut buffer, records, seed).unwrap_or_default();
    buffer
        .split(|&b| b == b'\n')
        .filter_map(|l| crate::repository::jsonl::parse_line(l).ok().flatten())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::jsonl::parse_line;

    #[test]
    fn generated_lines_parse_as_the_summary_says() {
        let mut buffer = Vec::new();
        let summary = generate(&mut buffer, 20_000, 7).unwrap();
        let text = String::from_utf8(buffer.clone()).unwrap();
        let mut valid = 0;
        let mut inferred = 0;
        for line in text.lines() {
            if let Ok(Some(record)) = parse_line(line.as_bytes()) {
                valid += 1;
                if record.script_name().is_none() {
                    inferred += 1;
                    assert!(record.pipeline_name().is_some_and(|n| n.contains('_')));
                }
            }
        }
        assert_eq!(valid, summary.valid);
        assert_eq!(inferred, summary.legacy);
        assert!(summary.corrupt < 20 && summary.legacy > 200);
        let average = summary.bytes / summary.lines;
        assert!(
            (450..700).contains(&average),
            "about 560 bytes a line, got {average}"
        );
        let mut again = Vec::new();
        generate(&mut again, 20_000, 7).unwrap();
        assert_eq!(buffer, again, "reproducible from the seed");
    }

    #[test]
    fn the_pipeline_count_is_the_number_of_signatures() {
        for pipelines in [1u64, 7, 200, 1000] {
            let mut buffer = Vec::new();
            generate_pipelines(&mut buffer, 20_000, pipelines, 3).unwrap();
            let text = String::from_utf8(buffer).unwrap();
            let signatures: std::collections::HashSet<_> = text
                .lines()
                .filter_map(|line| parse_line(line.as_bytes()).ok().flatten())
                .filter(|record| record.script_name().is_some())
                .map(|record| record.classes().clone())
                .collect();
            assert_eq!(signatures.len() as u64, pipelines);
        }
        assert_eq!(pipeline_name(0), "ingest_orders");
        assert_eq!(pipeline_name(49), "reconcile_pricing");
        assert_eq!(pipeline_name(50), "ingest_orders_2");
    }
}
