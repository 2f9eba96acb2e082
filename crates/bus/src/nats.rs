//! NATS JetStream transport: one stream per recipient, a durable pull consumer per stream,
//! explicit acks, and `Nats-Msg-Id` set to the envelope's dedup id.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::{
    header::HeaderMap,
    jetstream::{self, consumer, stream},
};
use futures::StreamExt;
use messages::Party;

use crate::transport::{BoxError, Delivery, Subscription, Transport, TransportError};

/// Where and how to reach the broker.
#[derive(Clone, Debug)]
pub struct NatsConfig {
    /// The server's URL, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// Prefix of every stream and subject, so several deployments share one server.
    pub namespace: String,
    /// Redelivery delay of an unacknowledged message.
    pub ack_wait: Duration,
    /// How long the broker remembers message ids for publish deduplication.
    pub duplicate_window: Duration,
}

impl NatsConfig {
    /// Defaults for `url` under `namespace`.
    pub fn new(url: impl Into<String>, namespace: impl Into<String>) -> Self {
        NatsConfig {
            url: url.into(),
            namespace: namespace.into(),
            ack_wait: Duration::from_secs(30),
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// The NATS JetStream transport. Cheap to clone.
#[derive(Clone, Debug)]
pub struct NatsTransport {
    js: jetstream::Context,
    config: NatsConfig,
    ensured: Arc<Mutex<BTreeSet<Party>>>,
}

/// The name of a party in subjects and stream names.
fn slug(party: Party) -> String {
    party.to_string()
}

impl NatsTransport {
    /// Connects (the client reconnects by itself after a broker restart).
    pub async fn connect(config: NatsConfig) -> Result<Self, TransportError> {
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if config.namespace.is_empty() || !config.namespace.chars().all(valid) {
            return Err(TransportError::Connect(
                format!("invalid namespace {:?}: use [A-Za-z0-9_-]+", config.namespace).into(),
            ));
        }
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(config.url.as_str())
            .await
            .map_err(|e| TransportError::Connect(Box::new(e)))?;
        Ok(NatsTransport {
            js: jetstream::new(client),
            config,
            ensured: Arc::new(Mutex::new(BTreeSet::new())),
        })
    }

    fn subject(&self, party: Party) -> String {
        format!("{}.{}", self.config.namespace, slug(party))
    }

    fn stream_name(&self, party: Party) -> String {
        format!("{}_{}", self.config.namespace, slug(party))
    }

    async fn ensure_stream(&self, party: Party) -> Result<stream::Stream, BoxError> {
        let stream = self
            .js
            .get_or_create_stream(stream::Config {
                name: self.stream_name(party),
                subjects: vec![self.subject(party)],
                storage: stream::StorageType::File,
                duplicate_window: self.config.duplicate_window,
                // One consumer per stream; acknowledged messages are deleted, so the
                // broker's disk holds only what is in flight.
                retention: stream::RetentionPolicy::WorkQueue,
                ..Default::default()
            })
            .await?;
        self.ensured.lock().unwrap_or_else(|p| p.into_inner()).insert(party);
        Ok(stream)
    }

    fn is_ensured(&self, party: Party) -> bool {
        self.ensured.lock().unwrap_or_else(|p| p.into_inner()).contains(&party)
    }
}

impl Transport for NatsTransport {
    type Subscription = NatsSubscription;

    async fn publish(
        &self,
        recipient: Party,
        dedup_id: [u8; 32],
        payload: Vec<u8>,
    ) -> Result<(), TransportError> {
        let fail = |source: BoxError| TransportError::Publish { recipient, source };
        if !self.is_ensured(recipient) {
            self.ensure_stream(recipient).await.map_err(fail)?;
        }
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", hex::encode(dedup_id).as_str());
        self.js
            .publish_with_headers(self.subject(recipient), headers, payload.into())
            .await
            .map_err(|e| fail(Box::new(e)))?
            .await
            .map_err(|e| fail(Box::new(e)))?;
        Ok(())
    }

    async fn subscribe(&self, me: Party) -> Result<NatsSubscription, TransportError> {
        let stream = self.ensure_stream(me).await.map_err(TransportError::Subscribe)?;
        let consumer = stream
            .get_or_create_consumer(
                "processor",
                consumer::pull::Config {
                    durable_name: Some("processor".into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: self.config.ack_wait,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| TransportError::Subscribe(Box::new(e)))?;
        let messages =
            consumer.messages().await.map_err(|e| TransportError::Subscribe(Box::new(e)))?;
        Ok(NatsSubscription { messages })
    }
}

/// A durable pull consumer on one party's stream.
pub struct NatsSubscription {
    messages: consumer::pull::Stream,
}

impl std::fmt::Debug for NatsSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NatsSubscription")
    }
}

impl Subscription for NatsSubscription {
    async fn next(&mut self, wait: Duration) -> Result<Option<Delivery>, TransportError> {
        match tokio::time::timeout(wait, self.messages.next()).await {
            Err(_elapsed) => Ok(None),
            Ok(None) => Err(TransportError::Receive("the consumer's stream ended".into())),
            Ok(Some(Err(e))) => Err(TransportError::Receive(Box::new(e))),
            Ok(Some(Ok(message))) => {
                let payload = message.payload.to_vec();
                Ok(Some(Delivery::new(
                    payload,
                    Box::new(move || {
                        Box::pin(async move { message.ack().await.map_err(TransportError::Ack) })
                    }),
                )))
            }
        }
    }
}
