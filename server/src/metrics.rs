//! `/metrics` in the Prometheus text format (prometheus-client): what this process observed
//! (requests by route template, method and status; latency histograms; bytes in and out;
//! the durations of the jobs its workers ran) and, read at scrape time from the shared
//! database, what every process shares (jobs by kind and state, the queue depth, upload
//! sessions in progress) and this process's database pool. Bottom floor: a handle in
//! `AppState`, fed by `serve` (requests) and `jobs::worker` (job durations).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::db::Db;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobStateLabels {
    kind: String,
    state: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_buckets() -> Histogram {
    // 0.25 ms to ~8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

fn job_buckets() -> Histogram {
    // 0.1 s to ~7 h.
    Histogram::new(exponential_buckets(0.1, 3.0, 12))
}

/// The metrics of one process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histograms<RouteLabels>,
    bytes_in: Family<RouteLabels, Counter>,
    bytes_out: Family<RouteLabels, Counter>,
    job_durations: Histograms<JobLabels>,
    jobs: Family<JobStateLabels, Gauge>,
    queue_depth: Gauge,
    uploads_in_progress: Gauge,
    db_connections: Gauge,
    db_connections_idle: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("adapter_registry");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, matched route template and status",
            requests.clone(),
        );
        let latency: Histograms<RouteLabels> = Family::new_with_constructor(latency_buckets);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer (until the response head; a streamed body continues), by route",
            latency.clone(),
        );
        let bytes_in = Family::<RouteLabels, Counter>::default();
        registry.register(
            "http_request_body_bytes",
            "Request body bytes announced by Content-Length, by route",
            bytes_in.clone(),
        );
        let bytes_out = Family::<RouteLabels, Counter>::default();
        registry.register(
            "http_response_body_bytes",
            "Response body bytes announced by Content-Length, by route",
            bytes_out.clone(),
        );
        let job_durations: Histograms<JobLabels> = Family::new_with_constructor(job_buckets);
        registry.register(
            "job_duration_seconds",
            "Run time of job attempts this process ran, by kind and outcome",
            job_durations.clone(),
        );
        let jobs = Family::<JobStateLabels, Gauge>::default();
        registry.register(
            "jobs",
            "Jobs in the database by kind and state (all processes)",
            jobs.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "job_queue_depth",
            "Jobs queued and due to run now (all processes)",
            queue_depth.clone(),
        );
        let uploads_in_progress = Gauge::default();
        registry.register(
            "upload_sessions",
            "Upload sessions not yet finished or expired (all processes)",
            uploads_in_progress.clone(),
        );
        let db_connections = Gauge::default();
        registry.register(
            "db_pool_connections",
            "Database connections this process holds open",
            db_connections.clone(),
        );
        let db_connections_idle = Gauge::default();
        registry.register(
            "db_pool_idle_connections",
            "Of those, idle",
            db_connections_idle.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            bytes_in,
            bytes_out,
            job_durations,
            jobs,
            queue_depth,
            uploads_in_progress,
            db_connections,
            db_connections_idle,
        }
    }

    /// One answered request.
    pub fn observe_request(
        &self,
        method: &str,
        route: &str,
        status: u16,
        seconds: f64,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        let route_labels = RouteLabels {
            method: method.to_owned(),
            route: route.to_owned(),
        };
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency.get_or_create(&route_labels).observe(seconds);
        if bytes_in > 0 {
            self.bytes_in.get_or_create(&route_labels).inc_by(bytes_in);
        }
        if bytes_out > 0 {
            self.bytes_out
                .get_or_create(&route_labels)
                .inc_by(bytes_out);
        }
    }

    /// One job attempt this process ran (`outcome`: succeeded, failed, retried, cancelled).
    pub fn observe_job(&self, kind: &str, outcome: &str, seconds: f64) {
        self.job_durations
            .get_or_create(&JobLabels {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .observe(seconds);
    }

    /// The text exposition, with the shared gauges read from `db` now.
    pub async fn render(&self, db: &Db) -> Result<String, sqlx::Error> {
        let stats = db.scrape_stats().await?;
        self.jobs.clear();
        for (kind, state, n) in stats.jobs {
            self.jobs
                .get_or_create(&JobStateLabels { kind, state })
                .set(n);
        }
        self.queue_depth.set(stats.queue_depth);
        self.uploads_in_progress.set(stats.upload_sessions);
        self.db_connections.set(i64::from(db.pool.size()));
        self.db_connections_idle
            .set(i64::try_from(db.pool.num_idle()).unwrap_or(i64::MAX));
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        Ok(out)
    }
}
