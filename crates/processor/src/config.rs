//! Configuration: one TOML file, overridable from the command line or the environment.
//! Secrets come only from the environment or from files readable by their owner alone.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use messages::Party;
use primitives::NetworkId;
use serde::Deserialize;
use zeroize::Zeroizing;

/// Why the configuration is unusable. Every variant is fatal and says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A field has an invalid value.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field, as written in the file.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A secret was not provided.
    #[error("missing secret {name}: set the environment variable {env} or `{field}` in the config file (a file of mode 0600)")]
    MissingSecret {
        /// What secret.
        name: &'static str,
        /// Its environment variable.
        env: &'static str,
        /// Its config field.
        field: &'static str,
    },
    /// A secret file can be read by others.
    #[error("secret file {path} has mode {mode:o}: it must be readable by its owner only (run `chmod 600 {path}`)")]
    InsecureSecretFile {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A secret file could not be read.
    #[error("cannot read secret file {path}: {source}")]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// The config file's `[log]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `human` or `json`.
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `info,bus=debug`.
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Human, level: default_level() }
    }
}

fn default_level() -> String {
    "info".into()
}

/// The config file's `[bus]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// The NATS server, e.g. `nats://127.0.0.1:4222`.
    pub nats_url: String,
    /// Stream/subject prefix shared by the coordinator and its processors.
    pub namespace: String,
    /// Re-send an unacknowledged message after this many milliseconds.
    #[serde(default = "default_resend_ms")]
    pub resend_after_ms: u64,
    /// The broker redelivers an unacknowledged delivery after this many milliseconds.
    #[serde(default = "default_ack_wait_ms")]
    pub ack_wait_ms: u64,
}

fn default_resend_ms() -> u64 {
    5_000
}

fn default_ack_wait_ms() -> u64 {
    30_000
}

/// The config file's `[coordinator]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// The coordinator's Ed25519 identity key, hex (pinned: nothing else is accepted).
    pub public_key: String,
}

/// The config file's `[secrets]` table: file paths only, never the secrets themselves.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// File holding this processor's identity key (64 hex characters), mode 0600.
    pub identity_key_file: Option<PathBuf>,
    /// File holding the secret that seals key shares at rest, mode 0600.
    pub db_secret_file: Option<PathBuf>,
}

/// The config file's `[http]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where `/metrics`, `/health` and `/status` are served.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: default_listen() }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9100))
}

/// The whole config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `bitcoin`, `litecoin`, `monero` or `ethereum`.
    pub network: String,
    /// This validator's 1-based index in its set.
    pub validator: u16,
    /// Where the database lives.
    pub data_dir: PathBuf,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The message bus.
    pub bus: BusConfig,
    /// The pinned coordinator.
    pub coordinator: CoordinatorConfig,
    /// Secret files.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// The HTTP endpoint.
    #[serde(default)]
    pub http: HttpConfig,
    /// Test-only settings.
    #[serde(default)]
    pub testing: TestingConfig,
}

/// The config file's `[testing]` table: misbehaviour for tests, debug builds only.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestingConfig {
    /// `invalid-share-to:V` or `false-accuse:V`.
    pub malice: Option<String>,
}

/// Command-line/environment overrides of config-file values.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Overrides {
    /// Overrides `data_dir`.
    #[arg(long, env = "PROCESSOR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Overrides `bus.nats_url`.
    #[arg(long, env = "PROCESSOR_NATS_URL")]
    pub nats_url: Option<String>,
    /// Overrides `http.listen`.
    #[arg(long, env = "PROCESSOR_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Overrides `log.format`.
    #[arg(long, env = "PROCESSOR_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

/// Environment variable holding the identity key (hex), instead of a file.
pub const IDENTITY_KEY_ENV: &str = "PROCESSOR_IDENTITY_KEY";
/// Environment variable holding the sealing secret, instead of a file.
pub const DB_SECRET_ENV: &str = "PROCESSOR_DB_SECRET";

impl Config {
    /// Reads and validates `path`, then applies `overrides`.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let mut config: Config = toml::from_str(&text)
            .map_err(|source| ConfigError::Parse { path: path.into(), source: Box::new(source) })?;
        if let Some(d) = &overrides.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(u) = &overrides.nats_url {
            config.bus.nats_url = u.clone();
        }
        if let Some(l) = overrides.http_listen {
            config.http.listen = l;
        }
        if let Some(f) = overrides.log_format {
            config.log.format = f;
        }
        config.party()?;
        config.coordinator_key()?;
        config.malice()?;
        if config.validator == 0 {
            return Err(ConfigError::Invalid {
                field: "validator",
                reason: "indices start at 1".into(),
            });
        }
        Ok(config)
    }

    /// The network served.
    pub fn network(&self) -> Result<NetworkId, ConfigError> {
        NetworkId::from_name(&self.network).ok_or_else(|| ConfigError::Invalid {
            field: "network",
            reason: format!("{:?} is not one of bitcoin, litecoin, monero, ethereum", self.network),
        })
    }

    /// This processor's party.
    pub fn party(&self) -> Result<Party, ConfigError> {
        Ok(Party::Processor { network: self.network()?, validator: self.validator })
    }

    /// The pinned coordinator key.
    pub fn coordinator_key(&self) -> Result<ed25519_key::VerifyingKey, ConfigError> {
        let invalid =
            |reason: String| ConfigError::Invalid { field: "coordinator.public_key", reason };
        let bytes: [u8; 32] = hex::decode(self.coordinator.public_key.trim())
            .map_err(|e| invalid(e.to_string()))?
            .try_into()
            .map_err(|_| invalid("expected 32 bytes (64 hex characters)".into()))?;
        ed25519_key::VerifyingKey::from_bytes(&bytes).map_err(|e| invalid(e.to_string()))
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("processor.redb")
    }

    /// The identity key, from [`IDENTITY_KEY_ENV`] or `secrets.identity_key_file`.
    pub fn identity(&self) -> Result<messages::Identity, ConfigError> {
        let text = read_secret(
            "identity key",
            IDENTITY_KEY_ENV,
            "secrets.identity_key_file",
            self.secrets.identity_key_file.as_deref(),
        )?;
        parse_identity(&text)
    }

    /// The secret that seals key shares at rest, from [`DB_SECRET_ENV`] or
    /// `secrets.db_secret_file`. Required.
    pub fn db_secret(&self) -> Result<Zeroizing<String>, ConfigError> {
        let secret = read_secret(
            "DB sealing secret",
            DB_SECRET_ENV,
            "secrets.db_secret_file",
            self.secrets.db_secret_file.as_deref(),
        )?;
        if secret.len() < 16 {
            return Err(ConfigError::Invalid {
                field: "DB sealing secret",
                reason: "use at least 16 characters".into(),
            });
        }
        Ok(secret)
    }

    /// Deliberate misbehaviour for tests of blame (`[testing] malice`). Only debug builds
    /// honour it; a release build refuses to start with it set.
    pub fn malice(&self) -> Result<key_gen::Malice, ConfigError> {
        let Some(spec) = &self.testing.malice else { return Ok(key_gen::Malice::None) };
        let invalid =
            |reason: &str| ConfigError::Invalid { field: "testing.malice", reason: reason.into() };
        if !cfg!(debug_assertions) {
            return Err(invalid("only debug builds honour it; remove it"));
        }
        let (kind, who) = spec.split_once(':').ok_or_else(|| invalid("expected KIND:VALIDATOR"))?;
        let who: u16 = who.parse().map_err(|_| invalid("the validator must be a number"))?;
        match kind {
            "invalid-share-to" => Ok(key_gen::Malice::InvalidShareTo(who)),
            "false-accuse" => Ok(key_gen::Malice::FalseAccuse(who)),
            _ => Err(invalid("KIND is invalid-share-to or false-accuse")),
        }
    }
}

/// Re-exported so the binary does not depend on the signature crate directly.
pub mod ed25519_key {
    pub use messages::envelope::VerifyingKey;
}

/// Parses 64 hex characters into an identity.
pub fn parse_identity(text: &str) -> Result<messages::Identity, ConfigError> {
    let invalid =
        |reason: &str| ConfigError::Invalid { field: "identity key", reason: reason.into() };
    let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| invalid("not hex"))?);
    let secret: Zeroizing<[u8; 32]> = Zeroizing::new(
        bytes
            .as_slice()
            .try_into()
            .map_err(|_| invalid("expected 32 bytes (64 hex characters)"))?,
    );
    Ok(messages::Identity::from_secret(&secret))
}

/// Reads a secret from `env`, else from `file` (which must not be readable by others).
fn read_secret(
    name: &'static str,
    env: &'static str,
    field: &'static str,
    file: Option<&Path>,
) -> Result<Zeroizing<String>, ConfigError> {
    if let Ok(value) = std::env::var(env) {
        return Ok(Zeroizing::new(value.trim().to_string()));
    }
    let Some(path) = file else { return Err(ConfigError::MissingSecret { name, env, field }) };
    let metadata = std::fs::metadata(path)
        .map_err(|source| ConfigError::SecretFile { path: path.into(), source })?;
    let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::InsecureSecretFile { path: path.into(), mode });
    }
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::SecretFile { path: path.into(), source })?;
    Ok(Zeroizing::new(text.trim().to_string()))
}

/// Writes a new identity key file with mode 0600; returns the identity.
pub fn write_identity_file(path: &Path) -> Result<messages::Identity, ConfigError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let identity = messages::Identity::generate(&mut rand_core::OsRng);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| ConfigError::SecretFile { path: path.into(), source })?;
    let hex = Zeroizing::new(hex::encode(identity.secret().as_slice()));
    file.write_all(hex.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(|source| ConfigError::SecretFile { path: path.into(), source })?;
    Ok(identity)
}
