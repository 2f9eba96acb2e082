//! An in-memory broker with JetStream's semantics and injectable faults.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use messages::Party;
use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio::time::Instant;

use crate::transport::{Delivery, Subscription, Transport, TransportError};

/// Faults injected at publish time, each with a probability in `[0, 1]`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// The broker acknowledges the publish but loses the message.
    pub drop: f64,
    /// The message is stored twice (as if the dedup window had passed).
    pub duplicate: f64,
    /// The message is delivered before one published earlier.
    pub reorder: f64,
    /// The message becomes deliverable only after a random delay up to this.
    pub max_delay: Duration,
}

#[derive(Debug)]
struct Stored {
    payload: Vec<u8>,
    not_before: Instant,
    /// (consumer epoch, when) of the last delivery.
    delivered: Option<(u64, Instant)>,
}

#[derive(Debug, Default)]
struct Stream {
    next_seq: u64,
    /// Keyed by (delivery order, publish sequence).
    messages: BTreeMap<(u64, u64), Stored>,
    dedup: HashMap<[u8; 32], Instant>,
    epoch: u64,
}

#[derive(Debug)]
struct Hub {
    streams: BTreeMap<Party, Stream>,
    faults: Faults,
    rng: StdRng,
    ack_wait: Duration,
    dedup_window: Duration,
}

/// An in-memory broker shared by clones. Same contract as [`Transport`]; faults are
/// drawn from a seeded RNG so a failing test replays.
#[derive(Clone, Debug)]
pub struct MemoryTransport(Arc<Mutex<Hub>>);

impl MemoryTransport {
    /// A broker with no faults, redelivering unacknowledged payloads after `ack_wait`.
    pub fn new(seed: u64, ack_wait: Duration) -> Self {
        MemoryTransport(Arc::new(Mutex::new(Hub {
            streams: BTreeMap::new(),
            faults: Faults::default(),
            rng: StdRng::seed_from_u64(seed),
            ack_wait,
            dedup_window: Duration::from_secs(120),
        })))
    }

    fn hub(&self) -> MutexGuard<'_, Hub> {
        // A panic while holding the lock is a bug in this module; keep going with the data.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        self.hub().faults = faults;
    }

    /// Simulates a broker crash that loses everything not yet synced to disk: every
    /// stored, unacknowledged message and the dedup windows vanish.
    pub fn crash(&self) {
        for stream in self.hub().streams.values_mut() {
            stream.messages.clear();
            stream.dedup.clear();
        }
    }

    /// Payloads stored for `party`, not yet acknowledged.
    pub fn pending(&self, party: Party) -> usize {
        self.hub().streams.get(&party).map_or(0, |s| s.messages.len())
    }
}

impl Transport for MemoryTransport {
    type Subscription = MemorySubscription;

    async fn publish(
        &self,
        recipient: Party,
        dedup_id: [u8; 32],
        payload: Vec<u8>,
    ) -> Result<(), TransportError> {
        let mut guard = self.hub();
        let hub = &mut *guard;
        let now = Instant::now();
        let window = hub.dedup_window;
        let faults = hub.faults;
        let stream = hub.streams.entry(recipient).or_default();
        stream.dedup.retain(|_, at| now.duration_since(*at) < window);
        if stream.dedup.contains_key(&dedup_id) {
            return Ok(());
        }
        // A lost message leaves no dedup entry behind (JetStream rebuilds its window from
        // the messages it kept).
        if hub.rng.gen_bool(faults.drop.clamp(0.0, 1.0)) {
            return Ok(());
        }
        stream.dedup.insert(dedup_id, now);
        let copies = if hub.rng.gen_bool(faults.duplicate.clamp(0.0, 1.0)) { 2 } else { 1 };
        for _ in 0..copies {
            stream.next_seq += 1;
            let seq = stream.next_seq;
            let mut order = seq * 2;
            if hub.rng.gen_bool(faults.reorder.clamp(0.0, 1.0)) && !stream.messages.is_empty() {
                let pick = hub.rng.gen_range(0..stream.messages.len());
                if let Some(&(earlier, _)) = stream.messages.keys().nth(pick) {
                    order = earlier.saturating_sub(1);
                }
            }
            let delay = if faults.max_delay.is_zero() {
                Duration::ZERO
            } else {
                hub.rng.gen_range(Duration::ZERO..=faults.max_delay)
            };
            stream.messages.insert(
                (order, seq),
                Stored { payload: payload.clone(), not_before: now + delay, delivered: None },
            );
        }
        Ok(())
    }

    async fn subscribe(&self, me: Party) -> Result<MemorySubscription, TransportError> {
        let mut hub = self.hub();
        let stream = hub.streams.entry(me).or_default();
        // A new consumer: whatever the old one received but did not ack is redelivered.
        stream.epoch += 1;
        let epoch = stream.epoch;
        Ok(MemorySubscription { hub: self.clone(), me, epoch })
    }
}

/// A consumer of one party's in-memory stream.
#[derive(Debug)]
pub struct MemorySubscription {
    hub: MemoryTransport,
    me: Party,
    epoch: u64,
}

impl MemorySubscription {
    fn try_next(&self) -> Option<Delivery> {
        let mut guard = self.hub.hub();
        let hub = &mut *guard;
        let now = Instant::now();
        let ack_wait = hub.ack_wait;
        let stream = hub.streams.get_mut(&self.me)?;
        let current = stream.epoch;
        if current != self.epoch {
            // Superseded by a newer subscription: like a deleted consumer, gets nothing.
            return None;
        }
        let (key, stored) = stream.messages.iter_mut().find(|(_, m)| {
            m.not_before <= now
                && match m.delivered {
                    None => true,
                    Some((epoch, at)) => epoch != current || now.duration_since(at) >= ack_wait,
                }
        })?;
        stored.delivered = Some((current, now));
        let (hub, me, key) = (self.hub.clone(), self.me, *key);
        Some(Delivery::new(
            stored.payload.clone(),
            Box::new(move || {
                // Like JetStream, an ack from a superseded consumer still counts.
                if let Some(stream) = hub.hub().streams.get_mut(&me) {
                    stream.messages.remove(&key);
                }
                Box::pin(async { Ok(()) })
            }),
        ))
    }
}

impl Subscription for MemorySubscription {
    async fn next(&mut self, wait: Duration) -> Result<Option<Delivery>, TransportError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(delivery) = self.try_next() {
                return Ok(Some(delivery));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(2).min(wait)).await;
        }
    }
}
