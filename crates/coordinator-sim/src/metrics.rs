//! Key-generation counters (Prometheus). They count events in this process; the durable
//! `conflicts` count lives in the database, and the counter starts from it.

use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

/// Key-generation counters. Clones share them.
#[derive(Clone, Debug, Default)]
pub struct KeyGenMetrics {
    /// Conflicting second messages for one (session, attempt, round) from one sender.
    pub conflicts: Counter,
    /// Attempts started.
    pub attempts: Counter,
    /// Participants excluded (blamed, falsely accusing, malformed, or silent).
    pub exclusions: Counter,
    /// Key pairs confirmed.
    pub confirmed: Counter,
    /// Sets that failed (fewer than `threshold` participants left).
    pub failed: Counter,
    ignored: Family<Vec<(String, String)>, Counter>,
}

impl KeyGenMetrics {
    /// Counters registered in `registry` under `keygen_*`.
    pub fn registered(registry: &mut Registry) -> Self {
        let metrics = KeyGenMetrics::default();
        registry.register(
            "keygen_conflicts",
            "Second, different key-generation messages for one (session, attempt, round) from one sender",
            metrics.conflicts.clone(),
        );
        registry.register(
            "keygen_attempts",
            "Key-generation attempts started",
            metrics.attempts.clone(),
        );
        registry.register(
            "keygen_exclusions",
            "Participants excluded from key generation",
            metrics.exclusions.clone(),
        );
        registry.register("keygen_confirmed", "Key pairs confirmed", metrics.confirmed.clone());
        registry.register(
            "keygen_failed_sets",
            "Sets whose key generation failed",
            metrics.failed.clone(),
        );
        registry.register(
            "keygen_ignored_messages",
            "Key-generation messages ignored, by reason",
            metrics.ignored.clone(),
        );
        metrics
    }

    pub(crate) fn ignored(&self, reason: &'static str) {
        self.ignored.get_or_create(&vec![("reason".to_string(), reason.to_string())]).inc();
    }

    /// Messages ignored for `reason`.
    pub fn ignored_count(&self, reason: &str) -> u64 {
        self.ignored.get_or_create(&vec![("reason".to_string(), reason.to_string())]).get()
    }
}
