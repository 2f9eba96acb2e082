//! NATS JetStream transport: one stream per recipient, a durable pull consumer per stream,
//! explicit acks, and `Nats-Msg-Id` set to the envelope's dedup id.

use std::{
    collections::BTreeSet,
    fmt,
    path::PathBuf,
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
    /// How to authenticate to the broker.
    pub auth: NatsAuth,
    /// TLS to the broker (`None`: whatever the server offers, nothing required).
    pub tls: Option<NatsTls>,
}

/// How a client authenticates to the broker. Secrets are never printed (`Debug` redacts
/// them).
#[derive(Clone, Default)]
pub enum NatsAuth {
    /// No credentials (a broker without authorization).
    #[default]
    None,
    /// A user and its password.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: zeroize::Zeroizing<String>,
    },
    /// A NATS credentials file (a user JWT and its nkey seed), read at connect.
    CredsFile(PathBuf),
}

impl fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatsAuth::None => f.write_str("None"),
            NatsAuth::UserPassword { user, .. } => {
                f.debug_struct("UserPassword").field("user", user).finish_non_exhaustive()
            }
            NatsAuth::CredsFile(path) => f.debug_tuple("CredsFile").field(path).finish(),
        }
    }
}

/// TLS to the broker.
#[derive(Clone, Debug, Default)]
pub struct NatsTls {
    /// The CA certificate (PEM) the server's certificate must chain to, instead of the
    /// system's roots (which are used when it is `None`).
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), for a server that verifies clients.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl NatsConfig {
    /// Defaults for `url` under `namespace`.
    pub fn new(url: impl Into<String>, namespace: impl Into<String>) -> Self {
        NatsConfig {
            url: url.into(),
            namespace: namespace.into(),
            ack_wait: Duration::from_secs(30),
            duplicate_window: Duration::from_secs(120),
            auth: NatsAuth::None,
            tls: None,
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
        let mut options = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            // Connection events (an authorization or TLS failure among them: the client
            // keeps retrying) reach the operator's log.
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("connected to the broker"),
                    async_nats::Event::ServerError(e) => {
                        tracing::error!(error = %e, "the broker refused us")
                    }
                    async_nats::Event::ClientError(e) => {
                        tracing::error!(error = %e, "cannot reach the broker")
                    }
                    other => tracing::warn!(event = %other, "broker connection"),
                }
            });
        options = match &config.auth {
            NatsAuth::None => options,
            NatsAuth::UserPassword { user, password } => {
                options.user_and_password(user.clone(), password.to_string())
            }
            NatsAuth::CredsFile(path) => options.credentials_file(path).await.map_err(|e| {
                TransportError::Connect(
                    format!("the NATS credentials file {}: {e}", path.display()).into(),
                )
            })?,
        };
        if let Some(tls) = &config.tls {
            options = options.require_tls(true);
            if let Some(ca) = &tls.ca_file {
                options = options.add_root_certificates(ca.clone());
            }
            if let Some((cert, key)) = &tls.client_cert {
                options = options.add_client_certificate(cert.clone(), key.clone());
            }
        }
        let client = options
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

impl fmt::Debug for NatsSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
