//! Prometheus metrics, served at `GET /metrics`: requests by route, method and
//! status with their latency, database pool usage, group-commit batches, ledger
//! transactions by kind and runs of the background task.

use actix_web::{HttpResponse, get, web};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::db::Database;
use crate::error::{ApiError, ApiResult, Problem};
use crate::ledger::model::LedgerTransaction;
use crate::startup::{AppState, GroupWrites};

/// The metrics of one server; each server has its own registry.
pub struct Metrics {
    registry: Registry,
    requests: HistogramVec,
    background_runs: IntCounterVec,
    pool_connections: IntGaugeVec,
    ledger_transactions: IntGaugeVec,
}

impl Metrics {
    /// The group-commit counters of `db` and those of the group writes are registered as they
    /// are: the writers count, the registry reads.
    pub fn new(db: &Database, groups: &GroupWrites) -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("jifen".to_owned()), None)?;
        let requests = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP requests by route, method and status")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0]),
            &["route", "method", "status"],
        )?;
        let background_runs = IntCounterVec::new(
            Opts::new("background_runs_total", "Runs of background tasks by task and outcome"),
            &["task", "outcome"],
        )?;
        let pool_connections = IntGaugeVec::new(
            Opts::new("db_pool_connections", "Database connections by pool and state (in_use, idle)"),
            &["pool", "state"],
        )?;
        let ledger_transactions = IntGaugeVec::new(
            Opts::new("ledger_transactions", "Ledger transactions written, by kind, in all communities"),
            &["kind"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        let batches = db.write_batches();
        registry.register(Box::new(batches.batches.clone()))?;
        registry.register(Box::new(batches.writes.clone()))?;
        for counts in groups.counts() {
            registry.register(Box::new(counts.groups.clone()))?;
            registry.register(Box::new(counts.requests.clone()))?;
            registry.register(Box::new(counts.failed.clone()))?;
        }
        registry.register(Box::new(background_runs.clone()))?;
        registry.register(Box::new(pool_connections.clone()))?;
        registry.register(Box::new(ledger_transactions.clone()))?;
        Ok(Metrics { registry, requests, background_runs, pool_connections, ledger_transactions })
    }

    /// `route` is the path pattern (`/api/v1/communities/{community_id}/awards`), so ids do not multiply series.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests.with_label_values(&[route, method, &status.to_string()]).observe(seconds);
    }

    pub fn count_background_run(&self, task: &str, outcome: &str) {
        self.background_runs.with_label_values(&[task, outcome]).inc();
    }
}

/// Metrics in the Prometheus text format. Unauthenticated, like most scrape targets:
/// expose it to the monitoring network only (e.g. block `/metrics` at the proxy).
///
/// Role: public (no token).
#[utoipa::path(
    extensions(("x-required-roles" = json!([]))),
    tag = "system",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain; version=0.0.4", body = String,
         example = "# TYPE jifen_http_request_duration_seconds histogram\njifen_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/communities/{community_id}/awards\",status=\"201\"} 42\n"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let kinds = state.db.read(|conn| Ok(LedgerTransaction::count_by_kind(conn)?)).await?;
    let metrics = &state.metrics;
    for (kind, count) in kinds {
        metrics.ledger_transactions.with_label_values(&[kind.as_str()]).set(count);
    }
    for (pool, connections, idle) in state.db.pool_usage() {
        metrics.pool_connections.with_label_values(&[pool, "idle"]).set(i64::from(idle));
        metrics.pool_connections.with_label_values(&[pool, "in_use"]).set(i64::from(connections - idle));
    }
    let body = TextEncoder::new().encode_to_string(&metrics.registry.gather()).map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type(prometheus::TEXT_FORMAT).body(body))
}
