//! `/metrics` (Prometheus text), `/health` and `/status` (JSON): the shared endpoint of
//! [`service::http`], reporting the processor's [`StatusReport`]; and `/plans` (JSON):
//! every plan ([`crate::status::plans`]).

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use db::{Db, DbError, ReadTxn};
use prometheus_client::{metrics::gauge::Gauge, registry::Registry};
pub use service::http::{serve_on, NamedStats, UNHEALTHY_AFTER_FAILURES};
use service::http::{Pending, Reporter};

use crate::status::StatusReport;

/// Shared state of the HTTP endpoint.
pub type HttpState = service::http::HttpState<ProcessorReporter>;

/// Reads the processor's [`StatusReport`] for `/status` and `/metrics`.
#[derive(Debug)]
pub struct ProcessorReporter {
    party: String,
    outputs_pending: Gauge,
    payments_queued: Gauge,
    plans_pending: Gauge,
    batches_unacknowledged: Gauge,
}

impl ProcessorReporter {
    /// A reporter for the processor `party`.
    pub fn new(party: String) -> Self {
        ProcessorReporter {
            party,
            outputs_pending: Gauge::default(),
            payments_queued: Gauge::default(),
            plans_pending: Gauge::default(),
            batches_unacknowledged: Gauge::default(),
        }
    }
}

impl Reporter for ProcessorReporter {
    type Report = StatusReport;

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "outputs_pending",
            "Outputs the scheduler holds, not yet spent",
            self.outputs_pending.clone(),
        );
        registry.register(
            "payments_queued",
            "Payments waiting for funds",
            self.payments_queued.clone(),
        );
        registry.register(
            "plans_pending",
            "Planned transactions whose eventuality has not been seen",
            self.plans_pending.clone(),
        );
        registry.register(
            "batches_unacknowledged",
            "Batches made and not yet acknowledged",
            self.batches_unacknowledged.clone(),
        );
    }

    fn read(&self, txn: &ReadTxn) -> Result<StatusReport, DbError> {
        let report = StatusReport::read(self.party.clone(), txn)?;
        if let Some(p) = &report.pipeline {
            let gauge = |g: &Gauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
            gauge(&self.outputs_pending, p.outputs);
            gauge(&self.payments_queued, p.payments_queued);
            gauge(&self.plans_pending, p.plans_pending);
            gauge(
                &self.batches_unacknowledged,
                u64::from(p.batches.saturating_sub(p.batches_acknowledged)),
            );
        }
        Ok(report)
    }

    fn pending(&self, report: &StatusReport) -> Pending {
        Pending {
            inbox: report.inbox_pending,
            outbox: report.outbox_pending,
            deferred: report.deferred,
        }
    }
}

/// The shared routes plus `/plans`.
pub fn router(state: HttpState, db: Db) -> Router {
    service::http::routes(state).merge(Router::new().route("/plans", get(plans)).with_state(db))
}

async fn plans(State(db): State<Db>) -> impl IntoResponse {
    match db.read().and_then(|txn| crate::status::plans(&txn)) {
        Ok(plans) => (StatusCode::OK, Json(serde_json::to_value(plans).unwrap_or_default())),
        Err(e) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": e.to_string() })))
        }
    }
}
