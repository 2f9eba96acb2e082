use std::{future::Future, time::Duration};

use messages::Party;

/// A boxed error from a transport's client library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A transport failure. All are transient: the caller retries with backoff.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Could not connect to the broker.
    #[error("connecting to the broker: {0}")]
    Connect(#[source] BoxError),
    /// The broker did not accept a publish.
    #[error("publishing to {recipient}: {source}")]
    Publish {
        /// The addressee.
        recipient: Party,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// Could not open the inbound stream's consumer.
    #[error("subscribing: {0}")]
    Subscribe(#[source] BoxError),
    /// The inbound stream failed.
    #[error("receiving: {0}")]
    Receive(#[source] BoxError),
    /// An acknowledgement to the broker failed (the message will be redelivered).
    #[error("acknowledging to the broker: {0}")]
    Ack(#[source] BoxError),
}

/// Moves opaque payloads to a party's inbound stream, at least once.
///
/// Implementations MUST: deliver every published payload that the broker retained until
/// it is acknowledged, redelivering it after a consumer restart or an acknowledgement
/// timeout; and drop a publish whose `dedup_id` was already published within the broker's
/// deduplication window. They MAY lose, duplicate or reorder payloads in failures: the
/// [`crate::Mailbox`] above them makes up for that.
pub trait Transport: Clone + Send + Sync + 'static {
    /// The inbound stream handle.
    type Subscription: Subscription;

    /// Publishes `payload` to `recipient`'s inbound stream. Returning `Ok` means the broker
    /// accepted it, not that it is durable.
    fn publish(
        &self,
        recipient: Party,
        dedup_id: [u8; 32],
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Opens (or resumes) `me`'s durable consumer. Unacknowledged deliveries of a previous
    /// subscription are redelivered to the new one.
    fn subscribe(
        &self,
        me: Party,
    ) -> impl Future<Output = Result<Self::Subscription, TransportError>> + Send;
}

/// A party's inbound stream.
pub trait Subscription: Send + 'static {
    /// The next delivery, or `None` if nothing arrived within `wait`.
    fn next(
        &mut self,
        wait: Duration,
    ) -> impl Future<Output = Result<Option<Delivery>, TransportError>> + Send;
}

/// Acknowledges one delivery to the broker.
pub type AckFn = Box<
    dyn FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<(), TransportError>> + Send>>
        + Send,
>;

/// One delivery of a payload; acknowledge it once its effect is durable.
pub struct Delivery {
    /// The payload (an encoded envelope, when the sender is honest).
    pub payload: Vec<u8>,
    ack: AckFn,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery").field("len", &self.payload.len()).finish_non_exhaustive()
    }
}

impl Delivery {
    /// A delivery whose acknowledgement runs `ack` (for transport implementations).
    pub fn new(payload: Vec<u8>, ack: AckFn) -> Self {
        Delivery { payload, ack }
    }

    /// Tells the broker not to redeliver this payload.
    pub async fn ack(self) -> Result<(), TransportError> {
        (self.ack)().await
    }

    /// Splits into the payload and the acknowledgement (for wrapping transports).
    pub fn into_parts(self) -> (Vec<u8>, AckFn) {
        (self.payload, self.ack)
    }
}
