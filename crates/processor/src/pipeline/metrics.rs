//! The pipeline's counters and gauges (served on `/metrics` with the `processor_` prefix;
//! counters gain the `_total` suffix there: see docs/metrics.md).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// A stage's latency: when each item (by session and id) entered the stage, and a
/// histogram of how long items took to leave it, in seconds. In memory: an item that
/// entered before this process started is not observed. At most [`Latency::TRACKED`]
/// items are tracked (a stage whose items never leave here, such as a Batch another set
/// signed, cannot grow without bound).
#[derive(Clone, Debug)]
pub struct Latency {
    /// The histogram served.
    pub histogram: Histogram,
    started: Arc<Mutex<Entered>>,
    observed: Arc<std::sync::atomic::AtomicU64>,
}

/// When each tracked item, by (session, id), entered its stage.
type Entered = HashMap<(u32, Vec<u8>), Instant>;

impl Default for Latency {
    fn default() -> Self {
        // 50 ms to about 7 minutes.
        Latency {
            histogram: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            started: Arc::default(),
            observed: Arc::default(),
        }
    }
}

impl Latency {
    /// Most items tracked at once.
    pub const TRACKED: usize = 10_000;

    /// Item `id` of `session` entered the stage now (a second entry keeps the first).
    pub fn start(&self, session: u32, id: &[u8]) {
        if let Ok(mut started) = self.started.lock() {
            if started.len() >= Self::TRACKED {
                started.clear();
            }
            started.entry((session, id.to_vec())).or_insert_with(Instant::now);
        }
    }

    /// Item `id` of `session` left the stage now: observed once, if it was seen entering.
    pub fn end(&self, session: u32, id: &[u8]) {
        let entered = self.started.lock().ok().and_then(|mut s| s.remove(&(session, id.to_vec())));
        if let Some(entered) = entered {
            self.histogram.observe(entered.elapsed().as_secs_f64());
            self.observed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// How many items were observed leaving the stage (the histogram's count).
    pub fn observed(&self) -> u64 {
        self.observed.load(std::sync::atomic::Ordering::Relaxed)
    }
}

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
    /// From a Batch made (its block scanned, final) to its signature here: the deposit
    /// to Batch stage.
    pub batch_sign_seconds: Latency,
    /// From a plan made (the acknowledgement carrying its burns applied) to its
    /// transaction first published here.
    pub plan_publish_seconds: Latency,
    /// From a plan made to its completion seen in a final block: burn to payout.
    pub plan_final_seconds: Latency,
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
            "batch_sign_seconds",
            "From a Batch made (its block final and scanned) to its signature here, in seconds",
            self.batch_sign_seconds.histogram.clone(),
        );
        registry.register(
            "plan_publish_seconds",
            "From a plan made (its burns acknowledged) to its transaction published here, in seconds",
            self.plan_publish_seconds.histogram.clone(),
        );
        registry.register(
            "plan_final_seconds",
            "From a plan made to its completion seen in a final block (burn to payout), in seconds",
            self.plan_final_seconds.histogram.clone(),
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
