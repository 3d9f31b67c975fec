//! Prometheus metrics. One registry for the process, reachable from the
//! HTTP layer and the storage code alike; rendered by `GET /metrics`.

use std::collections::HashSet;
use std::sync::LazyLock;

use parking_lot::Mutex;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

use crate::repository::PipelineActivity;

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub http_in_flight: IntGauge,
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
    pipeline_last_run: GaugeVec,
    pipeline_last_duration: GaugeVec,
    pipeline_last_rowcount: GaugeVec,
    pipeline_runs: GaugeVec,
    /// 1 when the pipeline is overdue / its latest run is an outlier.
    pipeline_stale: GaugeVec,
    pipeline_duration_anomaly: GaugeVec,
    pipeline_rowcount_anomaly: GaugeVec,
    pipeline_series_dropped: IntGauge,
    /// The label sets of the per-pipeline gauges of the last render; held
    /// while rendering, so renders do not interleave. A render updates the
    /// gauges in place and removes only the pipelines no longer shown:
    /// creating every series anew on each scrape was most of its cost.
    rendered: Mutex<HashSet<[String; 4]>>,
}

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

fn pipeline_gauge(registry: &Registry, name: &str, help: &str) -> GaugeVec {
    register(
        registry,
        GaugeVec::new(Opts::new(name, help), &PIPELINE_LABELS)
            .unwrap_or_else(|_| unreachable_metric(name)),
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
            inserts: counter(
                &registry,
                "pipeline_inserts_total",
                "Run records stored by this process.",
            ),
            records_loaded: counter(
                &registry,
                "jsonl_records_loaded_total",
                "Valid records read from the data file.",
            ),
            bad_lines: counter(
                &registry,
                "jsonl_bad_lines_total",
                "Data file lines skipped as invalid.",
            ),
            file_reloads: counter(
                &registry,
                "jsonl_file_reloads_total",
                "Times the data file was read again from the start (replaced or truncated).",
            ),
            records_in_memory: gauge(&registry, "jsonl_records", "Records held in memory."),
            sync_duration: histogram(
                &registry,
                "jsonl_sync_duration_seconds",
                "Time to sync one group commit to disk.",
                latency.clone(),
            ),
            commit_batch_size: histogram(
                &registry,
                "jsonl_commit_batch_records",
                "Records written by one group commit.",
                vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0,
                ],
            ),
            oracle_pool_open: gauge(
                &registry,
                "oracle_pool_open_sessions",
                "Sessions the Oracle pool holds open.",
            ),
            oracle_pool_busy: gauge(
                &registry,
                "oracle_pool_busy_sessions",
                "Oracle sessions in use.",
            ),
            oracle_query_duration: register(
                &registry,
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
            pipeline_last_run: pipeline_gauge(
                &registry,
                "pipeline_last_run_timestamp_seconds",
                "Start of the latest run (Unix seconds, naive times as UTC).",
            ),
            pipeline_last_duration: pipeline_gauge(
                &registry,
                "pipeline_last_duration_seconds",
                "elapsed_seconds of the latest run.",
            ),
            pipeline_last_rowcount: pipeline_gauge(
                &registry,
                "pipeline_last_rowcount",
                "rowcount of the latest run.",
            ),
            pipeline_runs: pipeline_gauge(
                &registry,
                "pipeline_runs_total",
                "Runs recorded for the pipeline.",
            ),
            pipeline_stale: pipeline_gauge(
                &registry,
                "pipeline_stale",
                "1 when more than PIPELINE_STALE_FACTOR typical intervals passed since the last run.",
            ),
            pipeline_duration_anomaly: pipeline_gauge(
                &registry,
                "pipeline_duration_anomaly",
                "1 when the latest run's duration is an outlier against the runs before it.",
            ),
            pipeline_rowcount_anomaly: pipeline_gauge(
                &registry,
                "pipeline_rowcount_anomaly",
                "1 when the latest run's row count is an outlier against the runs before it.",
            ),
            pipeline_series_dropped: gauge(
                &registry,
                "pipeline_metrics_series_dropped",
                "Pipelines left out of the per-pipeline metrics by the series cap.",
            ),
            rendered: Mutex::new(HashSet::new()),
            registry,
        }
    }

    /// The text exposition, with per-pipeline gauges for the `max_series`
    /// most recently active pipelines.
    pub fn render(
        &self,
        mut activity: Vec<PipelineActivity>,
        flags: &crate::stats::Flags,
        max_series: usize,
    ) -> String {
        let mut rendered = self.rendered.lock();
        activity.sort_by_key(|a| std::cmp::Reverse(a.last_run.instant_micros()));
        let dropped = activity.len().saturating_sub(max_series);
        activity.truncate(max_series);
        let shown: HashSet<[String; 4]> = activity
            .iter()
            .map(|a| a.key.clone().map(Option::unwrap_or_default))
            .collect();
        let flag_gauges = [
            &self.pipeline_stale,
            &self.pipeline_duration_anomaly,
            &self.pipeline_rowcount_anomaly,
        ];
        for gone in rendered.difference(&shown) {
            let labels = gone.each_ref().map(String::as_str);
            for vec in [
                &self.pipeline_last_run,
                &self.pipeline_last_duration,
                &self.pipeline_last_rowcount,
                &self.pipeline_runs,
            ]
            .into_iter()
            .chain(flag_gauges)
            {
                // Absent already when the pipeline had no flags.
                let _ = vec.remove_label_values(&labels);
            }
        }
        for a in &activity {
            let labels: Vec<&str> = a.key.iter().map(|v| v.as_deref().unwrap_or("")).collect();
            self.pipeline_last_run
                .with_label_values(&labels)
                .set(a.last_run.instant_micros() as f64 / 1e6);
            self.pipeline_last_duration
                .with_label_values(&labels)
                .set(a.last_elapsed_seconds);
            self.pipeline_last_rowcount
                .with_label_values(&labels)
                .set(a.last_rowcount as f64);
            self.pipeline_runs
                .with_label_values(&labels)
                .set(a.total_runs as f64);
            match flags.get(&a.key) {
                Some(flags) => {
                    for (gauge, flag) in flag_gauges.into_iter().zip(flags) {
                        gauge
                            .with_label_values(&labels)
                            .set(f64::from(u8::from(*flag)));
                    }
                }
                None => {
                    for gauge in flag_gauges {
                        let _ = gauge.remove_label_values(&labels);
                    }
                }
            }
        }
        *rendered = shown;
        self.pipeline_series_dropped.set(dropped as i64);
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "metrics encoding failed");
        }
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
