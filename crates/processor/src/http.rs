//! `/metrics` (Prometheus text), `/health` and `/status` (JSON): the shared endpoint of
//! [`service::http`], reporting the processor's [`StatusReport`].

use db::{DbError, ReadTxn};
pub use service::http::{serve_on, NamedStats, UNHEALTHY_AFTER_FAILURES};
use service::http::{Pending, Reporter};

use crate::status::StatusReport;

/// Shared state of the HTTP endpoint.
pub type HttpState = service::http::HttpState<ProcessorReporter>;

/// Reads the processor's [`StatusReport`] for `/status` and `/metrics`.
#[derive(Debug)]
pub struct ProcessorReporter {
    party: String,
}

impl ProcessorReporter {
    /// A reporter for the processor `party`.
    pub fn new(party: String) -> Self {
        ProcessorReporter { party }
    }
}

impl Reporter for ProcessorReporter {
    type Report = StatusReport;

    fn read(&self, txn: &ReadTxn) -> Result<StatusReport, DbError> {
        StatusReport::read(self.party.clone(), txn)
    }

    fn pending(&self, report: &StatusReport) -> Pending {
        Pending {
            inbox: report.inbox_pending,
            outbox: report.outbox_pending,
            deferred: report.deferred,
        }
    }
}
