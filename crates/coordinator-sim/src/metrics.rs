//! Key-generation, signing and settlement counters (Prometheus). They count events in
//! this process; the durable counts (`conflicts`, per-set signing counts, bad Batch
//! signatures) live in the database and are what `/status` reports.

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

/// Signing and settlement counters. Clones share them.
#[derive(Clone, Debug, Default)]
pub struct SignMetrics {
    /// Signing attempts started (first attempts and reattempts).
    pub attempts: Counter,
    /// Reattempts (after a blame or a timeout).
    pub reattempts: Counter,
    /// Blames accepted.
    pub blames: Counter,
    /// Key holders convicted of a fault in signing (a wrong share or preprocess, or a
    /// false blame), each once.
    pub convictions: Counter,
    /// Signed Batches whose signature did not verify.
    pub bad_batch_signatures: Counter,
    /// Settlement blocks made.
    pub settlement_blocks: Counter,
    /// Burns carried by acknowledgements.
    pub burns: Counter,
    completed: Family<Vec<(String, String)>, Counter>,
    ignored: Family<Vec<(String, String)>, Counter>,
}

impl SignMetrics {
    /// Counters registered in `registry` under `sign_*` and `settlement_*`.
    pub fn registered(registry: &mut Registry) -> Self {
        let metrics = SignMetrics::default();
        registry.register("sign_attempts", "Signing attempts started", metrics.attempts.clone());
        registry.register(
            "sign_reattempts",
            "Signing reattempts (blame or timeout)",
            metrics.reattempts.clone(),
        );
        registry.register("sign_blames", "Signing blames accepted", metrics.blames.clone());
        registry.register(
            "sign_convictions",
            "Key holders convicted of a fault in signing (wrong share or preprocess, false blame)",
            metrics.convictions.clone(),
        );
        registry.register(
            "sign_completed",
            "Signing items completed, by kind",
            metrics.completed.clone(),
        );
        registry.register(
            "sign_ignored_messages",
            "Signing and Batch messages ignored, by reason",
            metrics.ignored.clone(),
        );
        registry.register(
            "settlement_bad_batch_signatures",
            "Signed Batches whose signature did not verify",
            metrics.bad_batch_signatures.clone(),
        );
        registry.register(
            "settlement_blocks",
            "Settlement blocks made",
            metrics.settlement_blocks.clone(),
        );
        registry.register(
            "settlement_burns",
            "Burns carried by acknowledgements",
            metrics.burns.clone(),
        );
        metrics
    }

    pub(crate) fn ignored(&self, reason: &'static str) {
        self.ignored.get_or_create(&vec![("reason".to_string(), reason.to_string())]).inc();
    }

    pub(crate) fn completed(&self, kind: &'static str) {
        self.completed.get_or_create(&vec![("kind".to_string(), kind.to_string())]).inc();
    }

    /// Messages ignored for `reason`.
    pub fn ignored_count(&self, reason: &str) -> u64 {
        self.ignored.get_or_create(&vec![("reason".to_string(), reason.to_string())]).get()
    }
}
