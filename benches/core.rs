//! Micro-benchmarks of the hot paths: parsing stored lines, planning and
//! filtering queries over the in-memory index, statistics, serialising a
//! page, and loading a file.
//!
//!     cargo bench --bench core

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pipeline_service::domain::{FlexDateTime, PipelineInfo};
use pipeline_service::repository::jsonl::{parse_line, JsonlRepository};
use pipeline_service::repository::{PipelineInfoRepository, Position, RunFilter};

fn generated(records: u64) -> Vec<u8> {
    let mut buffer = Vec::new();
    pipeline_service::generate::generate(&mut buffer, records, 42).expect("generate");
    buffer
}

fn parsing(c: &mut Criterion) {
    let data = generated(10_000);
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function(
        "line parser (usual-shape fast path, validating fallback), 10k lines",
        |b| b.iter(|| lines.iter().filter(|l| parse_line(l).is_ok()).count()),
    );
    group.finish();
    c.bench_function("parse/datetime", |b| {
        b.iter(|| FlexDateTime::parse(black_box("2025-08-14T22:49:07.250000+05:30")))
    });
    datetimes(c);
}

/// The forms stored lines hold (Python's `isoformat()`, aware and naive,
/// with and without a fraction), a timestamp, and two that fail.
const DATETIME_FORMS: &[&str] = &[
    "2025-09-02T12:07:02+00:00",
    "2025-09-02T05:07:02",
    "2025-08-14T22:49:07.250000+05:30",
    "2025-08-14T22:49:07Z",
    "1755211747",
    "2025-08-14",
    "2025/08/14",
    "2025-08-14T25:00:00",
];

/// The datetime parser (speedate, as pydantic uses it) over the usual
/// forms, and over a start-up's mix (four datetimes per stored line).
fn datetimes(c: &mut Criterion) {
    let mut group = c.benchmark_group("datetime");
    group.throughput(Throughput::Elements(DATETIME_FORMS.len() as u64));
    group.bench_function("8 forms", |b| {
        b.iter(|| {
            for text in DATETIME_FORMS {
                let _ = black_box(FlexDateTime::parse(black_box(text)));
            }
        })
    });
    group.finish();
    let data = generated(10_000);
    let stored: Vec<String> = data
        .split(|&b| b == b'\n')
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .flat_map(|record| {
            ["start_local", "end_local", "start_utc", "end_utc"]
                .map(|field| record[field].as_str().map(str::to_owned))
        })
        .flatten()
        .collect();
    let mut group = c.benchmark_group("datetime, generated file");
    group.throughput(Throughput::Elements(stored.len() as u64));
    group.bench_function("every stored datetime", |b| {
        b.iter(|| {
            stored
                .iter()
                .filter(|t| FlexDateTime::parse(t).is_ok())
                .count()
        })
    });
    group.finish();
}

fn loaded(records: u64) -> (JsonlRepository, tempfile::TempDir, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("runs.jsonl");
    std::fs::write(&path, generated(records)).expect("write data");
    let repository = runtime
        .block_on(JsonlRepository::open(&path))
        .expect("open");
    (repository, dir, runtime)
}

fn querying(c: &mut Criterion) {
    let (repository, _dir, runtime) = loaded(100_000);
    let mut group = c.benchmark_group("query 100k");
    let newest = RunFilter::default();
    let selective = RunFilter {
        pipeline_name: Some("ingest_orders".into()),
        start_utc: Some(FlexDateTime::parse("2025-06-01T00:00:00Z").expect("date")),
        ..RunFilter::default()
    };
    let scanning = RunFilter {
        min_rowcount: Some(1000),
        environment: Some("prod".into()),
        ..RunFilter::default()
    };
    let rowcounts = RunFilter {
        min_rowcount: Some(1000),
        max_rowcount: Some(20_000),
        ..RunFilter::default()
    };
    for (name, filter) in [
        ("newest 100", &newest),
        ("name + window", &selective),
        ("rowcount + env", &scanning),
        ("rowcount range alone", &rowcounts),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime
                    .block_on(repository.query(black_box(filter), Position::Offset(0), 100, true))
                    .expect("page")
            })
        });
    }
    group.bench_function("summaries", |b| {
        b.iter(|| runtime.block_on(repository.summaries()).expect("summary"))
    });
    group.bench_function("statistics digests, all pipelines", |b| {
        b.iter(|| {
            runtime
                .block_on(repository.stats(&newest, 31))
                .expect("stats")
        })
    });
    group.finish();
    let records: Vec<Arc<PipelineInfo>> = runtime
        .block_on(repository.query(&newest, Position::Offset(0), 100, false))
        .expect("records")
        .records;
    let mut group = c.benchmark_group("serialise");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("100 records to JSON (serde)", |b| {
        b.iter(|| serde_json::to_vec(black_box(&records)).expect("json"))
    });
    group.bench_function(
        "100 records to JSON (write_json, as pages are written)",
        |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(records.len() * 700);
                for record in black_box(&records) {
                    record.write_json(&mut out);
                }
                out
            })
        },
    );
    group.finish();
}

fn loading(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("runs.jsonl");
    std::fs::write(&path, generated(100_000)).expect("write data");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    group.throughput(Throughput::Elements(100_000));
    group.bench_function("100k lines (read, scan, index)", |b| {
        b.iter(|| {
            runtime
                .block_on(JsonlRepository::open(&path))
                .expect("open")
        })
    });
    group.finish();
}

criterion_group!(benches, parsing, querying, loading);
criterion_main!(benches);
