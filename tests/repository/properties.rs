//! Properties of filtering and pagination over generated files: loosening a
//! filter never shrinks the answer, pages tile the full ordered answer, the
//! answer equals a plain reference model, and the store's statistics equal
//! those computed from the runs it answers.

use std::io::Write;
use std::sync::Arc;

use pipeline_service::domain::{FlexDateTime, PipelineInfo};
use pipeline_service::repository::jsonl::JsonlRepository;
use pipeline_service::repository::{PipelineInfoRepository, Position, RunFilter};
use proptest::prelude::*;
use serde_json::json;

use crate::backends::{record, Shortcuts};

#[derive(Debug, Clone)]
struct Spec {
    minutes: i64,
    naive: bool,
    /// Ends an hour before it starts (lenient mode allows it).
    reversed: bool,
    name: Option<&'static str>,
    environment: &'static str,
    rowcount: i64,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0i64..60,
        any::<bool>(),
        prop::sample::select(vec![None, Some("a"), Some("b")]),
        prop::sample::select(vec!["prod", "dev"]),
        0i64..50,
        prop::bool::weighted(0.02),
    )
        .prop_map(
            |(minutes, naive, name, environment, rowcount, reversed)| Spec {
                minutes,
                naive,
                reversed,
                name,
                environment,
                rowcount,
            },
        )
}

fn build(index: usize, spec: &Spec) -> PipelineInfo {
    let mut changes = json!({
        "date_code": format!("r{index}"),
        "pipeline_name": spec.name,
        "environment": spec.environment,
        "rowcount": spec.rowcount,
    });
    if spec.naive {
        let start = record(spec.minutes, json!({})).start_utc().wall_clock();
        changes["start_utc"] = json!(start.format("%Y-%m-%dT%H:%M:%S").to_string());
    }
    if spec.reversed {
        let end = record(spec.minutes - 60, json!({})).start_utc();
        changes["end_utc"] = json!(end.to_string());
    }
    record(spec.minutes, changes)
}

/// Filter conditions as optional parts, so one can be dropped at a time.
#[derive(Debug, Clone)]
struct FilterSpec {
    start_minutes: Option<i64>,
    end_minutes: Option<i64>,
    min_rowcount: Option<i64>,
    max_rowcount: Option<i64>,
    name: Option<&'static str>,
    environment: Option<&'static str>,
}

fn filter_spec() -> impl Strategy<Value = FilterSpec> {
    (
        prop::option::of(0i64..60),
        prop::option::of(0i64..62),
        prop::option::of(0i64..50),
        prop::option::of(0i64..50),
        prop::option::of(prop::sample::select(vec!["a", "b"])),
        prop::option::of(prop::sample::select(vec!["prod", "dev"])),
    )
        .prop_map(|(s, e, lo, hi, name, environment)| FilterSpec {
            start_minutes: s,
            end_minutes: e,
            min_rowcount: lo,
            max_rowcount: hi,
            name,
            environment,
        })
}

fn instant(minutes: i64) -> FlexDateTime {
    record(minutes, json!({})).start_utc()
}

impl FilterSpec {
    fn to_filter(&self) -> RunFilter {
        RunFilter {
            start_utc: self.start_minutes.map(instant),
            end_utc: self.end_minutes.map(instant),
            min_rowcount: self.min_rowcount,
            max_rowcount: self.max_rowcount,
            pipeline_name: self.name.map(str::to_owned),
            environment: self.environment.map(str::to_owned),
            ..RunFilter::default()
        }
    }

    /// Every filter obtained by dropping one condition.
    fn loosened(&self) -> Vec<FilterSpec> {
        let mut out = Vec::new();
        for i in 0..6 {
            let mut f = self.clone();
            match i {
                0 => f.start_minutes = None,
                1 => f.end_minutes = None,
                2 => f.min_rowcount = None,
                3 => f.max_rowcount = None,
                4 => f.name = None,
                _ => f.environment = None,
            }
            out.push(f);
        }
        out
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn load(records: &[PipelineInfo]) -> (JsonlRepository, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    for r in records {
        writeln!(file, "{}", serde_json::to_string(r).unwrap()).unwrap();
    }
    (JsonlRepository::open(path).await.unwrap(), dir)
}

/// A store of the generated records, the filter, and its full answer.
async fn answered(
    specs: &[Spec],
    f: &FilterSpec,
) -> (JsonlRepository, tempfile::TempDir, RunFilter, Vec<String>) {
    let records: Vec<PipelineInfo> = specs.iter().enumerate().map(|(i, s)| build(i, s)).collect();
    let (repo, dir) = load(&records).await;
    let filter = f.to_filter();
    let full = codes(&repo.all(&filter).await.unwrap());
    (repo, dir, filter, full)
}

fn codes(records: &[Arc<PipelineInfo>]) -> Vec<String> {
    records.iter().map(|r| r.date_code().to_owned()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn answers_equal_the_reference_model(specs in prop::collection::vec(spec(), 0..150), f in filter_spec()) {
        let records: Vec<PipelineInfo> = specs.iter().enumerate().map(|(i, s)| build(i, s)).collect();
        let filter = f.to_filter();
        let mut expected: Vec<(usize, &PipelineInfo)> =
            records.iter().enumerate().filter(|(_, r)| filter.matches(r)).collect();
        expected.sort_by_key(|(i, r)| (std::cmp::Reverse(r.start_utc().instant_micros()), *i));
        let expected: Vec<String> = expected.iter().map(|(_, r)| r.date_code().to_owned()).collect();
        let got = runtime().block_on(async {
            let (repo, _dir) = load(&records).await;
            repo.all(&filter).await.unwrap()
        });
        prop_assert_eq!(codes(&got), expected);
    }

    #[test]
    fn loosening_a_filter_never_shrinks_the_answer(specs in prop::collection::vec(spec(), 0..150), f in filter_spec()) {
        let records: Vec<PipelineInfo> = specs.iter().enumerate().map(|(i, s)| build(i, s)).collect();
        runtime().block_on(async {
            let (repo, _dir) = load(&records).await;
            let strict = codes(&repo.all(&f.to_filter()).await.unwrap());
            let strict_count = repo.count(&f.to_filter()).await.unwrap();
            assert_eq!(strict_count as usize, strict.len());
            for loose in f.loosened() {
                let looser = codes(&repo.all(&loose.to_filter()).await.unwrap());
                assert!(looser.len() >= strict.len(), "{loose:?}");
                assert!(strict.iter().all(|c| looser.contains(c)), "{loose:?}");
            }
        });
    }

    #[test]
    fn offset_pages_tile_the_full_answer(specs in prop::collection::vec(spec(), 0..150), f in filter_spec(), size in 1usize..8) {
        runtime().block_on(async {
            let (repo, _dir, filter, full) = answered(&specs, &f).await;
            let mut tiled = Vec::new();
            let mut offset = 0;
            loop {
                let page = repo.query(&filter, Position::Offset(offset), size, true).await.unwrap();
                assert_eq!(page.total, Some(full.len() as u64));
                assert!(page.records.len() <= size);
                if page.records.is_empty() {
                    break;
                }
                tiled.extend(codes(&page.records));
                offset += size;
            }
            assert_eq!(tiled, full);
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Keyset pages also tile the answer, and `next` is absent exactly on
    /// the last page.
    #[test]
    fn keyset_pages_tile_the_full_answer(specs in prop::collection::vec(spec(), 0..150), f in filter_spec(), size in 1usize..8) {
        runtime().block_on(async {
            let (repo, _dir, filter, full) = answered(&specs, &f).await;
            let mut tiled = Vec::new();
            let mut after = None;
            loop {
                let page = repo.query(&filter, after.into(), size, false).await.unwrap();
                assert!(page.records.len() <= size);
                tiled.extend(codes(&page.records));
                match page.next {
                    Some(key) => {
                        assert_eq!(page.records.len(), size, "a short page has no next");
                        after = Some(key);
                    }
                    None => break,
                }
            }
            assert_eq!(tiled, full);
        });
    }
}

/// Digests by group, to compare regardless of order.
fn by_group(
    digests: Vec<pipeline_service::domain::digest::GroupDigest>,
) -> std::collections::HashMap<Vec<Option<String>>, pipeline_service::domain::digest::GroupDigest> {
    digests
        .into_iter()
        .map(|d| {
            let key = d
                .key
                .iter()
                .map(|v| v.as_deref().map(str::to_owned))
                .collect();
            (key, d)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The store's statistics — kept up to date per group, or gathered from
    /// the matching runs under other filters — equal those computed from
    /// the runs the store answers.
    #[test]
    fn statistics_equal_those_of_the_matching_runs(specs in prop::collection::vec(spec(), 1..150), f in filter_spec(), latest in 1usize..40) {
        runtime().block_on(async {
            let records: Vec<PipelineInfo> = specs.iter().enumerate().map(|(i, s)| build(i, s)).collect();
            let (repo, _dir) = load(&records).await;
            for filter in [f.to_filter(), RunFilter { pipeline_name: f.name.map(str::to_owned), ..RunFilter::default() }] {
                let mut builder = pipeline_service::domain::digest::StatsBuilder::default();
                for run in repo.all(&filter).await.unwrap() {
                    builder.add(&run);
                }
                let wanted = by_group(builder.digests(latest));
                let got = by_group(repo.stats(&filter, latest).await.unwrap());
                assert_eq!(got, wanted, "{filter:?}");
            }
        });
    }
}
