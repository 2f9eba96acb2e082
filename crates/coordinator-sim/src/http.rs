//! `/metrics` (Prometheus text), `/health` and `/status` (JSON): the shared endpoint of
//! [`service::http`], reporting the simulator's [`StatusReport`] and, per key-generation
//! stage, how many sets are in it (`keygen_sets`).

use db::{DbError, ReadTxn};
use prometheus_client::{
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
pub use service::http::{serve_on, NamedStats, UNHEALTHY_AFTER_FAILURES};
use service::http::{Labels, Pending, Reporter};

use crate::status::StatusReport;

/// Shared state of the HTTP endpoint.
pub type HttpState = service::http::HttpState<SimReporter>;

/// Reads the simulator's [`StatusReport`] for `/status` and `/metrics`.
#[derive(Debug, Default)]
pub struct SimReporter {
    sets: Family<Labels, Gauge>,
}

impl Reporter for SimReporter {
    type Report = StatusReport;

    fn register(&self, registry: &mut Registry) {
        registry.register("keygen_sets", "Sets by key-generation stage", self.sets.clone());
    }

    fn read(&self, txn: &ReadTxn) -> Result<StatusReport, DbError> {
        let report = StatusReport::read(txn)?;
        for stage in ["commitments", "shares", "key_pairs", "confirmed", "failed"] {
            let count = report.sets.iter().filter(|s| s.stage == stage).count();
            self.sets
                .get_or_create(&vec![("stage".to_string(), stage.to_string())])
                .set(count as i64);
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
