use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

/// The bus's counters. Clones share them.
#[derive(Clone, Debug, Default)]
pub struct BusMetrics {
    rejected: Family<Vec<(String, String)>, Counter>,
    /// Messages committed to the inbox.
    pub received: Counter,
    /// Deliveries that were duplicates (by sequence or intent).
    pub duplicates: Counter,
    /// End-to-end acks received.
    pub acks_received: Counter,
    /// First publishes of outbox entries.
    pub sent: Counter,
    /// Re-publishes after the resend timeout.
    pub resent: Counter,
    /// Messages too far ahead of a gap to be held.
    pub too_far_ahead: Counter,
}

impl BusMetrics {
    /// Metrics registered in `registry` under `bus_*`.
    pub fn registered(registry: &mut Registry) -> Self {
        let metrics = BusMetrics::default();
        registry.register(
            "bus_rejected_envelopes",
            "Envelopes rejected (undecodable, wrong version, oversized, unknown sender, bad signature, misaddressed), by reason",
            metrics.rejected.clone(),
        );
        // Every reason at zero from the start: the series exist before the first rejection
        // (an `increase()` alert needs them).
        for reason in messages::EnvelopeError::REASONS.iter().chain(&["ack_beyond_sent"]) {
            drop(metrics.rejected.get_or_create(&vec![("reason".to_string(), reason.to_string())]));
        }
        registry.register(
            "bus_received_messages",
            "Messages committed to the inbox",
            metrics.received.clone(),
        );
        registry.register(
            "bus_duplicate_messages",
            "Duplicate deliveries ignored",
            metrics.duplicates.clone(),
        );
        registry.register(
            "bus_acks_received",
            "End-to-end acknowledgements received",
            metrics.acks_received.clone(),
        );
        registry.register(
            "bus_sent_messages",
            "Outbox entries published for the first time",
            metrics.sent.clone(),
        );
        registry.register(
            "bus_resent_messages",
            "Outbox entries re-published after the timeout",
            metrics.resent.clone(),
        );
        registry.register(
            "bus_too_far_ahead",
            "Messages dropped for arriving too far ahead of a gap (re-sent later)",
            metrics.too_far_ahead.clone(),
        );
        metrics
    }

    pub(crate) fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&vec![("reason".to_string(), reason.to_string())]).inc();
    }

    /// Envelopes rejected for `reason` (an [`messages::EnvelopeError::reason`] label).
    pub fn rejected_count(&self, reason: &str) -> u64 {
        self.rejected.get_or_create(&vec![("reason".to_string(), reason.to_string())]).get()
    }
}
