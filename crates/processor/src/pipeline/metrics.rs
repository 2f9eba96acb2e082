//! The pipeline's counters and gauges (served on `/metrics` with the `processor_` prefix;
//! counters gain the `_total` suffix there: see docs/metrics.md).
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// Counters and gauges of the pipeline.
#[derive(Clone, Debug, Default)]
pub struct PipelineMetrics {
    /// The last scanned block.
    pub scanned_height: Gauge,
    /// The node's last final block, as the scanner last read it (at most a second old
    /// while the scanner runs).
    pub final_height: Gauge,
    /// Final blocks not scanned yet.
    pub scan_lag: Gauge,
    /// Batches made.
    pub batches: Counter,
    /// Batches signed by this processor.
    pub batches_signed: Counter,
    /// Plans made.
    pub plans: Counter,
    /// Plans whose eventuality was seen.
    pub plans_completed: Counter,
    /// Signed transactions published.
    pub published: Counter,
    /// Signing attempts started (preprocesses released).
    pub attempts: Counter,
    /// Attempts started on a coordinator's reattempt.
    pub reattempts: Counter,
    /// Transactions spending our planned inputs that we did not plan (ALARM).
    pub conflicts: Counter,
    /// Payments of conflicted plans held for the operator.
    pub payments_held: Counter,
    /// Fee-bump versions made (replacements of stuck plans).
    pub fee_bumps: Counter,
    /// Fees paid above the planned ones by mined fee-bump versions, in the smallest unit.
    pub fee_bump_paid: Counter,
    /// Payments dropped as dust.
    pub dropped_payments: Counter,
    /// Outputs ignored because an earlier output had their id (Monero's burning bug).
    pub reused_output_ids: Counter,
    /// Payments forwarding a retiring session's funds to its successor.
    pub forwards: Counter,
    /// Deposits refunded because their session was closing (rotated out).
    pub closing_refunds: Counter,
}

impl PipelineMetrics {
    /// Registers every metric.
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register("scanned_height", "The last scanned block", self.scanned_height.clone());
        registry.register(
            "final_height",
            "The node's last final block, as the scanner last read it",
            self.final_height.clone(),
        );
        registry.register("scan_lag", "Final blocks not scanned yet", self.scan_lag.clone());
        registry.register("batches", "Batches made", self.batches.clone());
        registry.register(
            "batches_signed",
            "Batches signed by this processor",
            self.batches_signed.clone(),
        );
        registry.register("plans", "Transactions planned", self.plans.clone());
        registry.register(
            "plans_completed",
            "Planned transactions seen on chain",
            self.plans_completed.clone(),
        );
        registry.register("published", "Signed transactions published", self.published.clone());
        registry.register("signing_attempts", "Signing attempts started", self.attempts.clone());
        registry.register(
            "signing_reattempts",
            "Signing attempts started on a reattempt",
            self.reattempts.clone(),
        );
        registry.register(
            "conflicts",
            "ALARM: our planned inputs spent by a transaction we did not plan",
            self.conflicts.clone(),
        );
        registry.register(
            "payments_held",
            "ALARM: payments of conflicted plans held for the operator (processor status lists them)",
            self.payments_held.clone(),
        );
        registry.register(
            "fee_bumps",
            "Fee-bump versions made for stuck plans",
            self.fee_bumps.clone(),
        );
        registry.register(
            "fee_bump_paid",
            "Fees paid above the planned ones by mined fee-bump versions, in the smallest unit",
            self.fee_bump_paid.clone(),
        );
        registry.register(
            "forwards",
            "Payments forwarding a retiring session's funds to its successor",
            self.forwards.clone(),
        );
        registry.register(
            "closing_refunds",
            "Deposits refunded because their session was closing (rotated out)",
            self.closing_refunds.clone(),
        );
        registry.register(
            "dropped_payments",
            "Payments dropped as dust",
            self.dropped_payments.clone(),
        );
        registry.register(
            "reused_output_ids",
            "Outputs ignored because an earlier output had their id (only one can be spent)",
            self.reused_output_ids.clone(),
        );
    }
}
