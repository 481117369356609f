//! Work the service does by itself: cancelling uncollected orders, expiring points and purging old
//! Idempotency-Key records, every few minutes inside `jifen serve` (one server at
//! a time when several share a PostgreSQL database) or once by `jifen ledger expire`.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::db::Database;
use crate::idempotency::{self, model::IdempotencyRecord};
use crate::ledger::service::run_expiry;
use crate::metrics::Metrics;
use crate::redemptions::service::cancel_uncollected;

pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Debug, Default)]
pub struct Report {
    pub expiry_transactions: usize,
    pub uncollected_orders_cancelled: usize,
    pub idempotency_records_purged: usize,
}

/// One round; None when another server is doing it. Blocking.
pub fn run_once(db: &Database, now: DateTime<Utc>) -> anyhow::Result<Option<Report>> {
    db.exclusively("jifen maintenance", || -> anyhow::Result<Report> {
        // Cancel first: points that return to expired lots then expire in the same round.
        let uncollected_orders_cancelled = cancel_uncollected(db, now)?;
        let expiry_transactions = run_expiry(db, now)?;
        let cutoff = (now - idempotency::RETENTION).naive_utc();
        let idempotency_records_purged = db.write_blocking(|conn| -> Result<usize, crate::error::ApiError> {
            Ok(IdempotencyRecord::purge_older_than(conn, cutoff)?)
        })?;
        Ok(Report { expiry_transactions, uncollected_orders_cancelled, idempotency_records_purged })
    })?
    .transpose()
}

/// Runs a round now and then every [`INTERVAL`], until the task is aborted.
pub fn spawn(db: Database, clock: Arc<dyn Clock>, metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(INTERVAL);
        loop {
            ticks.tick().await;
            let (db, now) = (db.clone(), clock.now());
            let result = tokio::task::spawn_blocking(move || run_once(&db, now)).await;
            let outcome = match &result {
                Ok(Ok(Some(_))) => "ok",
                Ok(Ok(None)) => "skipped",
                Ok(Err(_)) | Err(_) => "failed",
            };
            metrics.count_background_run("maintenance", outcome);
            match result {
                Ok(Ok(Some(report)))
                    if report.expiry_transactions > 0
                        || report.uncollected_orders_cancelled > 0
                        || report.idempotency_records_purged > 0 =>
                {
                    tracing::info!(
                        expiry_transactions = report.expiry_transactions,
                        uncollected_orders_cancelled = report.uncollected_orders_cancelled,
                        idempotency_records_purged = report.idempotency_records_purged,
                        "maintenance"
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(err)) => tracing::error!(error = %format!("{err:#}"), "maintenance failed"),
                Err(err) => tracing::error!(error = %err, "maintenance task panicked"),
            }
        }
    })
}
