//! Prometheus metrics. One registry for the process, reachable from the
//! HTTP layer and the storage code alike; rendered by `GET /metrics`.

use std::collections::HashSet;
use std::sync::LazyLock;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::domain::PipelineActivity;
use crate::stats::Flags;

/// The process's metrics. Families every backend has live in `registry`;
/// a store's own families in a registry of their own, exported only while
/// that store serves (an Oracle deployment shows no `jsonl_*` families and
/// the reverse). Per-pipeline families are not kept here at all: they are
/// read from the store when a scrape renders (`PipelineCollector`).
pub struct Metrics {
    registry: Registry,
    jsonl: Registry,
    oracle: Registry,
    postgres: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub http_in_flight: IntGauge,
    pub http_connections_open: IntGauge,
    pub http_connections_refused: IntCounter,
    pub http_header_timeouts: IntCounter,
    pub inserts: IntCounter,
    pub records_loaded: IntCounter,
    pub bad_lines: IntCounter,
    pub file_reloads: IntCounter,
    pub records_in_memory: IntGauge,
    pub sync_duration: Histogram,
    pub commit_batch_size: Histogram,
    pub oracle_pool_open: IntGauge,
    pub oracle_pool_busy: IntGauge,
    pub oracle_query_duration: HistogramVec,
    pub postgres_pool_open: IntGauge,
    pub postgres_pool_busy: IntGauge,
    pub postgres_pool_waiting: IntGauge,
    pub postgres_commit_group: Histogram,
}

/// Per-pipeline label values are cut to this many characters, so a
/// scrape's size is bounded by the series cap alone.
pub const MAX_LABEL_CHARS: usize = 128;

/// The labels of every per-pipeline series, in the order of a summary key.
const PIPELINE_LABELS: [&str; 4] = [
    "pipeline_name",
    "script_name",
    "pipeline_type",
    "environment",
];

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    // Names are constants of this module; a clash is a programming error
    // caught by the tests, so the registration result is not propagated.
    if let Err(error) = registry.register(Box::new(metric.clone())) {
        tracing::error!(%error, "metric registration failed");
    }
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(
        registry,
        IntCounter::new(name, help).unwrap_or_else(|_| unreachable_metric(name)),
    )
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(
        registry,
        IntGauge::new(name, help).unwrap_or_else(|_| unreachable_metric(name)),
    )
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    register(
        registry,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
            .unwrap_or_else(|_| unreachable_metric(name)),
    )
}

#[cold]
fn unreachable_metric(name: &str) -> ! {
    panic!("metric {name} has an invalid definition")
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let jsonl = Registry::new();
        let oracle = Registry::new();
        let postgres = Registry::new();
        #[cfg(target_os = "linux")]
        if let Err(error) = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )) {
            tracing::error!(%error, "process metrics unavailable");
        }
        let latency = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        Self {
            http_requests: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "http_requests_total",
                        "HTTP requests answered, by method, matched route and status.",
                    ),
                    &["method", "route", "status"],
                )
                .unwrap_or_else(|_| unreachable_metric("http_requests_total")),
            ),
            http_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "http_request_duration_seconds",
                        "Time to answer HTTP requests.",
                    )
                    .buckets(latency.clone()),
                    &["method", "route"],
                )
                .unwrap_or_else(|_| unreachable_metric("http_request_duration_seconds")),
            ),
            http_in_flight: gauge(
                &registry,
                "http_requests_in_flight",
                "HTTP requests being answered now.",
            ),
            http_connections_open: gauge(
                &registry,
                "http_connections_open",
                "HTTP connections open now.",
            ),
            http_connections_refused: counter(
                &registry,
                "http_connections_refused_total",
                "Connections answered 503 and closed because PIPELINE_MAX_CONNECTIONS were open.",
            ),
            http_header_timeouts: counter(
                &registry,
                "http_header_read_timeouts_total",
                "Connections closed because a request head did not arrive within PIPELINE_HEADER_READ_TIMEOUT_S.",
            ),
            inserts: counter(
                &registry,
                "pipeline_inserts_total",
                "Run records stored by this process.",
            ),
            records_loaded: counter(
                &jsonl,
                "jsonl_records_loaded_total",
                "Valid records read from the data file.",
            ),
            bad_lines: counter(
                &jsonl,
                "jsonl_bad_lines_total",
                "Data file lines skipped as invalid.",
            ),
            file_reloads: counter(
                &jsonl,
                "jsonl_file_reloads_total",
                "Times the data file was read again from the start (replaced or truncated).",
            ),
            records_in_memory: gauge(&jsonl, "jsonl_records", "Records held in memory."),
            sync_duration: histogram(
                &jsonl,
                "jsonl_sync_duration_seconds",
                "Time to sync one group commit to disk.",
                latency.clone(),
            ),
            commit_batch_size: histogram(
                &jsonl,
                "jsonl_commit_batch_records",
                "Records written by one group commit.",
                vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0,
                ],
            ),
            oracle_pool_open: gauge(
                &oracle,
                "oracle_pool_open_sessions",
                "Sessions the Oracle pool holds open.",
            ),
            oracle_pool_busy: gauge(
                &oracle,
                "oracle_pool_busy_sessions",
                "Oracle sessions in use.",
            ),
            oracle_query_duration: register(
                &oracle,
                HistogramVec::new(
                    HistogramOpts::new(
                        "oracle_query_duration_seconds",
                        "Time spent in Oracle calls, by operation.",
                    )
                    .buckets(latency.clone()),
                    &["operation"],
                )
                .unwrap_or_else(|_| unreachable_metric("oracle_query_duration_seconds")),
            ),
            postgres_pool_open: gauge(
                &postgres,
                "postgres_pool_open_connections",
                "Connections the PostgreSQL pool holds open.",
            ),
            postgres_pool_busy: gauge(
                &postgres,
                "postgres_pool_busy_connections",
                "PostgreSQL connections in use.",
            ),
            postgres_pool_waiting: gauge(
                &postgres,
                "postgres_pool_waiting_requests",
                "Requests waiting for a PostgreSQL connection.",
            ),
            postgres_commit_group: histogram(
                &postgres,
                "postgres_commit_group_runs",
                "Runs stored by one PostgreSQL transaction of the group commit.",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 256.0, 1024.0, 8192.0],
            ),
            registry,
            jsonl,
            oracle,
            postgres,
        }
    }

    /// The text exposition for a service on `backend` (`jsonl`,
    /// `postgres` or `oracle`): the shared families, that backend's own, the build
    /// information and the per-pipeline families of `pipelines`.
    pub fn render(&self, backend: &'static str, pipelines: &PipelineCollector) -> String {
        let mut families = self.registry.gather();
        match backend {
            "jsonl" => families.extend(self.jsonl.gather()),
            "oracle" => families.extend(self.oracle.gather()),
            "postgres" => families.extend(self.postgres.gather()),
            _ => {}
        }
        families.push(build_info(backend));
        families.extend(pipelines.collect());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&families, &mut buffer) {
            tracing::error!(%error, "metrics encoding failed");
        }
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

pub const BUILD_INFO: &str = "pipeline_service_build_info";

/// `pipeline_service_build_info{version, backend} 1`, the usual way to put
/// the running version next to the other series.
fn build_info(backend: &str) -> MetricFamily {
    family(
        BUILD_INFO,
        "Always 1; the labels name the running version and storage backend.",
        vec![sample(
            vec![
                label("backend", backend),
                label("version", env!("CARGO_PKG_VERSION")),
            ],
            1.0,
        )],
    )
}

/// One per-pipeline gauge family: its name, help and the value for a
/// pipeline (`None` leaves the pipeline out of this family).
struct PipelineFamily {
    name: &'static str,
    help: &'static str,
    value: fn(&PipelineActivity, Option<&[bool; 3]>) -> Option<f64>,
}

fn flag(flags: Option<&[bool; 3]>, index: usize) -> Option<f64> {
    flags.map(|flags| f64::from(u8::from(flags[index])))
}

const PIPELINE_FAMILIES: &[PipelineFamily] = &[
    PipelineFamily {
        name: "pipeline_last_run_timestamp_seconds",
        help: "Start of the latest run (Unix seconds, naive times as UTC).",
        value: |a, _| Some(a.last_run.instant_micros() as f64 / 1e6),
    },
    PipelineFamily {
        name: "pipeline_last_duration_seconds",
        help: "elapsed_seconds of the latest run.",
        value: |a, _| Some(a.last_elapsed_seconds),
    },
    PipelineFamily {
        name: "pipeline_last_rowcount",
        help: "rowcount of the latest run.",
        value: |a, _| Some(a.last_rowcount as f64),
    },
    PipelineFamily {
        name: "pipeline_runs",
        help: "Runs recorded for the pipeline (compaction lowers it).",
        value: |a, _| Some(a.total_runs as f64),
    },
    PipelineFamily {
        name: "pipeline_stale",
        help: "1 when more than PIPELINE_STALE_FACTOR typical intervals passed since the last run.",
        value: |_, flags| flag(flags, 0),
    },
    PipelineFamily {
        name: "pipeline_duration_anomaly",
        help: "1 when the latest run's duration is an outlier against the runs before it.",
        value: |_, flags| flag(flags, 1),
    },
    PipelineFamily {
        name: "pipeline_rowcount_anomaly",
        help: "1 when the latest run's row count is an outlier against the runs before it.",
        value: |_, flags| flag(flags, 2),
    },
];

pub const SERIES_DROPPED: &str = "pipeline_metrics_series_dropped";
const SERIES_DROPPED_HELP: &str = "Pipelines left out of the per-pipeline metrics by the series cap (or sharing a more recent pipeline's shortened labels).";

/// Descriptions of the families `PipelineCollector` yields, checked once.
static PIPELINE_DESCS: LazyLock<Vec<Desc>> = LazyLock::new(|| {
    let labels = PIPELINE_LABELS.map(str::to_owned).to_vec();
    PIPELINE_FAMILIES
        .iter()
        .map(|f| (f.name, f.help, labels.clone()))
        .chain([(SERIES_DROPPED, SERIES_DROPPED_HELP, Vec::new())])
        .map(|(name, help, labels)| {
            Desc::new(name.to_owned(), help.to_owned(), labels, Default::default())
                .unwrap_or_else(|_| unreachable_metric(name))
        })
        .collect()
});

/// The per-pipeline gauges of one scrape, a collector over the store's
/// state read for that scrape: nothing is kept between scrapes, so there
/// is nothing to clear, refill or lock, and a pipeline compacted away
/// simply is not there the next time. Holds the `max_series` most recently
/// active pipelines; label values are cut to `MAX_LABEL_CHARS`, and a
/// pipeline whose cut labels equal a more recently active one's is left
/// out (counted as dropped, like those beyond the cap).
pub struct PipelineCollector {
    /// Kept pipelines with their cut labels, most recent first.
    kept: Vec<([String; 4], PipelineActivity)>,
    flags: std::sync::Arc<Flags>,
    dropped: usize,
}

impl PipelineCollector {
    pub fn new(
        mut activity: Vec<PipelineActivity>,
        flags: std::sync::Arc<Flags>,
        max_series: usize,
    ) -> Self {
        activity.sort_by_key(|a| std::cmp::Reverse(a.last_run.instant_micros()));
        let mut dropped = activity.len().saturating_sub(max_series);
        activity.truncate(max_series);
        let mut seen = HashSet::with_capacity(activity.len());
        let mut kept = Vec::with_capacity(activity.len());
        for a in activity {
            let labels = a
                .key
                .each_ref()
                .map(|v| shortened(v.as_deref().unwrap_or("")).to_owned());
            if seen.insert(labels.clone()) {
                kept.push((labels, a));
            } else {
                dropped += 1;
            }
        }
        Self {
            kept,
            flags,
            dropped,
        }
    }
}

impl Collector for PipelineCollector {
    fn desc(&self) -> Vec<&Desc> {
        PIPELINE_DESCS.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families: Vec<MetricFamily> = PIPELINE_FAMILIES
            .iter()
            .map(|f| {
                let samples = self
                    .kept
                    .iter()
                    .filter_map(|(labels, a)| {
                        let value = (f.value)(a, self.flags.get(&a.key))?;
                        let pairs = PIPELINE_LABELS
                            .iter()
                            .zip(labels)
                            .map(|(name, value)| label(name, value))
                            .collect();
                        Some(sample(pairs, value))
                    })
                    .collect();
                family(f.name, f.help, samples)
            })
            .filter(|f| !f.get_metric().is_empty())
            .collect();
        families.push(family(
            SERIES_DROPPED,
            SERIES_DROPPED_HELP,
            vec![sample(Vec::new(), self.dropped as f64)],
        ));
        families
    }
}

fn family(name: &str, help: &str, samples: Vec<Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(MetricType::GAUGE);
    family.set_metric(samples);
    family
}

fn sample(mut labels: Vec<LabelPair>, value: f64) -> Metric {
    let mut gauge = prometheus::proto::Gauge::default();
    gauge.set_value(value);
    let mut metric = Metric::from_gauge(gauge);
    labels.sort_by(|a, b| a.name().cmp(b.name()));
    metric.set_label(labels);
    metric
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value.to_owned());
    pair
}

/// `value` up to its first `MAX_LABEL_CHARS` characters.
fn shortened(value: &str) -> &str {
    match value.char_indices().nth(MAX_LABEL_CHARS) {
        Some((end, _)) => &value[..end],
        None => value,
    }
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FlexDateTime;

    fn activity(name: &str, start: &str, runs: u64, rowcount: i64) -> PipelineActivity {
        PipelineActivity {
            key: [Some(name.to_owned()), None, None, Some("prod".to_owned())],
            total_runs: runs,
            last_run: FlexDateTime::parse(start).unwrap(),
            last_elapsed_seconds: 1.5,
            last_rowcount: rowcount,
        }
    }

    fn no_pipelines() -> PipelineCollector {
        PipelineCollector::new(Vec::new(), Default::default(), 10)
    }

    /// Names of the families in `text`, from their `# TYPE` lines.
    fn families(text: &str) -> Vec<&str> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect()
    }

    #[test]
    fn each_backend_exports_only_its_own_store_families() {
        let metrics = Metrics::new();
        metrics
            .oracle_query_duration
            .with_label_values(&["select"])
            .observe(0.01);
        metrics.sync_duration.observe(0.01);
        let jsonl = metrics.render("jsonl", &no_pipelines());
        let oracle = metrics.render("oracle", &no_pipelines());
        let version = env!("CARGO_PKG_VERSION");
        for (text, backend, own, other) in [
            (&jsonl, "jsonl", "jsonl_", "oracle_"),
            (&oracle, "oracle", "oracle_", "jsonl_"),
        ] {
            let names = families(text);
            assert!(
                names.iter().any(|n| n.starts_with(own)),
                "{backend}: {names:?}"
            );
            assert!(
                !names.iter().any(|n| n.starts_with(other)),
                "{backend}: {names:?}"
            );
            assert!(names.contains(&"http_requests_in_flight"), "{backend}");
            assert!(names.contains(&"pipeline_inserts_total"), "{backend}");
            let info = format!(
                "pipeline_service_build_info{{backend=\"{backend}\",version=\"{version}\"}} 1\n"
            );
            assert!(text.contains(&info), "{text}");
        }
        assert!(oracle.contains("oracle_query_duration_seconds_count{operation=\"select\"} 1"));
        assert!(families(&oracle).contains(&"oracle_pool_open_sessions"));
        assert!(families(&jsonl).contains(&"jsonl_sync_duration_seconds"));
        let mut sorted = families(&jsonl);
        sorted.sort_unstable();
        assert_eq!(families(&jsonl), sorted, "families in name order");
    }

    #[test]
    fn per_pipeline_gauges_show_the_state_read_for_each_scrape() {
        let metrics = Metrics::new();
        let first = PipelineCollector::new(
            vec![
                activity("kept", "2025-08-02T00:00:00Z", 3, 10),
                activity("compacted", "2025-08-01T00:00:00Z", 1, 5),
            ],
            Default::default(),
            10,
        );
        let text = metrics.render("jsonl", &first);
        let series = |name: &str, pipeline: &str, value: &str| {
            format!(
                "{name}{{environment=\"prod\",pipeline_name=\"{pipeline}\",\
                 pipeline_type=\"\",script_name=\"\"}} {value}\n"
            )
        };
        assert!(
            text.contains(&series("pipeline_runs", "kept", "3")),
            "{text}"
        );
        assert!(text.contains(&series("pipeline_runs", "compacted", "1")));
        assert!(
            !text.contains("pipeline_stale"),
            "no flags computed: no flag series"
        );
        let mut flags = Flags::default();
        flags.insert(
            [Some("kept".into()), None, None, Some("prod".into())],
            [true, false, true],
        );
        let second = PipelineCollector::new(
            vec![activity("kept", "2025-08-03T00:00:00Z", 4, 20)],
            std::sync::Arc::new(flags),
            10,
        );
        let text = metrics.render("jsonl", &second);
        assert!(
            text.contains(&series("pipeline_runs", "kept", "4")),
            "{text}"
        );
        assert!(text.contains(&series("pipeline_last_rowcount", "kept", "20")));
        assert!(text.contains(&series("pipeline_stale", "kept", "1")));
        assert!(text.contains(&series("pipeline_duration_anomaly", "kept", "0")));
        assert!(text.contains(&series("pipeline_rowcount_anomaly", "kept", "1")));
        assert!(
            !text.contains("compacted"),
            "a pipeline gone from the store is gone: {text}"
        );
    }

    #[test]
    fn the_series_cap_keeps_the_most_recent_and_counts_the_rest() {
        let collector = PipelineCollector::new(
            vec![
                activity("old", "2025-08-01T00:00:00Z", 1, 1),
                activity("new", "2025-08-03T00:00:00Z", 1, 1),
                activity("middle", "2025-08-02T00:00:00Z", 1, 1),
            ],
            Default::default(),
            2,
        );
        let kept: Vec<_> = collector.kept.iter().map(|(l, _)| l[0].as_str()).collect();
        assert_eq!(kept, ["new", "middle"]);
        assert_eq!(collector.dropped, 1);
        let described: Vec<_> = collector.desc().iter().map(|d| d.fq_name.clone()).collect();
        for family in collector.collect() {
            assert!(
                described.iter().any(|d| d == family.name()),
                "{}",
                family.name()
            );
        }
    }

    #[test]
    fn labels_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_LABEL_CHARS + 5);
        assert_eq!(shortened(&long).chars().count(), MAX_LABEL_CHARS);
        assert_eq!(shortened("short"), "short");
        let exact = "x".repeat(MAX_LABEL_CHARS);
        assert_eq!(shortened(&exact), exact);
    }
}
