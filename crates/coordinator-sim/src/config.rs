//! Configuration: one TOML file, overridable from the command line or the environment.
//! The identity key comes only from the environment or from a file readable by its owner
//! alone.
//!
//! The secret-file and identity helpers (`read_secret`, [`parse_identity`],
//! [`write_identity_file`]) and the `[log]`/`[bus]` tables mirror
//! `crates/processor/src/config.rs`, copied rather than shared while that crate is being
//! edited; they belong in a shared operations crate once both settle.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::{Path, PathBuf},
};

use messages::{envelope::VerifyingKey, KeyRegistry, Participant, Party};
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
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The identity key was not provided.
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
    /// A secret file could not be read or written.
    #[error("cannot use secret file {path}: {source}")]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field: field.into(), reason: reason.into() }
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
    /// A `tracing` filter, e.g. `info` or `info,coordinator_sim=debug`.
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

/// The config file's `[secrets]` table: file paths only, never the secrets themselves.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// File holding the coordinator's identity key (64 hex characters), mode 0600.
    pub identity_key_file: Option<PathBuf>,
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
    SocketAddr::from(([127, 0, 0, 1], 9200))
}

fn default_keygen_timeout_ms() -> u64 {
    60_000
}

/// One `[[sets.processors]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorEntry {
    /// The validator's 1-based index in the set.
    pub validator: Participant,
    /// Its processor's Ed25519 identity key, hex (pinned).
    pub public_key: String,
}

/// One `[[sets]]` table: a validator set managing one network for one session.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetEntry {
    /// `bitcoin`, `litecoin`, `monero` or `ethereum`.
    pub network: String,
    /// The set's session.
    pub session: u32,
    /// Signers needed.
    pub threshold: u16,
    /// The set's processors.
    pub processors: Vec<ProcessorEntry>,
}

/// A validated set, as the simulator uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetConfig {
    /// The network.
    pub network: NetworkId,
    /// The session.
    pub session: u32,
    /// Signers needed.
    pub threshold: u16,
    /// Every validator of the set, strictly ascending.
    pub validators: Vec<Participant>,
}

/// The whole config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the database lives.
    pub data_dir: PathBuf,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The message bus.
    pub bus: BusConfig,
    /// Secret files.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// The HTTP endpoint.
    #[serde(default)]
    pub http: HttpConfig,
    /// A key-generation round that has not completed this long after the attempt's start
    /// or its last progress is restarted without the participants that did not answer.
    #[serde(default = "default_keygen_timeout_ms")]
    pub keygen_timeout_ms: u64,
    /// The validator sets.
    pub sets: Vec<SetEntry>,
}

/// Command-line/environment overrides of config-file values.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Overrides {
    /// Overrides `data_dir`.
    #[arg(long, env = "COORDINATOR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Overrides `bus.nats_url`.
    #[arg(long, env = "COORDINATOR_NATS_URL")]
    pub nats_url: Option<String>,
    /// Overrides `http.listen`.
    #[arg(long, env = "COORDINATOR_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Overrides `log.format`.
    #[arg(long, env = "COORDINATOR_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

/// Environment variable holding the identity key (hex), instead of a file.
pub const IDENTITY_KEY_ENV: &str = "COORDINATOR_IDENTITY_KEY";

impl SetConfig {
    /// The set's database key.
    pub fn key(&self) -> crate::state::SetKey {
        crate::state::set_key(self.network, self.session)
    }
}

impl Config {
    /// Reads and validates `path`, then applies `overrides`.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let mut config = Config::parse(&text)
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
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (no validation beyond the schema).
    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// Checks every value; [`Config::load`] calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.keygen_timeout_ms == 0 {
            return Err(invalid("keygen_timeout_ms", "must be positive"));
        }
        self.set_configs()?;
        self.registry()?;
        Ok(())
    }

    /// The validated sets, in config order. Each (network, session) appears once.
    pub fn set_configs(&self) -> Result<Vec<SetConfig>, ConfigError> {
        if self.sets.is_empty() {
            return Err(invalid("sets", "configure at least one [[sets]]"));
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(self.sets.len());
        for (i, set) in self.sets.iter().enumerate() {
            let field = |name: &str| format!("sets[{i}].{name}");
            let network = NetworkId::from_name(&set.network).ok_or_else(|| {
                invalid(
                    field("network"),
                    format!("{:?} is not one of bitcoin, litecoin, monero, ethereum", set.network),
                )
            })?;
            if !seen.insert(crate::state::set_key(network, set.session)) {
                return Err(invalid(
                    field("session"),
                    format!("{network} session {} is configured twice", set.session),
                ));
            }
            let mut validators: Vec<Participant> =
                set.processors.iter().map(|p| p.validator).collect();
            validators.sort_unstable();
            if validators.first() == Some(&0) {
                return Err(invalid(field("processors"), "validator indices start at 1"));
            }
            if validators.windows(2).any(|w| w[0] == w[1]) {
                return Err(invalid(field("processors"), "a validator is listed twice"));
            }
            if set.threshold == 0 || usize::from(set.threshold) > validators.len() {
                return Err(invalid(
                    field("threshold"),
                    format!(
                        "must be between 1 and the number of processors ({})",
                        validators.len()
                    ),
                ));
            }
            out.push(SetConfig {
                network,
                session: set.session,
                threshold: set.threshold,
                validators,
            });
        }
        Ok(out)
    }

    /// Every processor's pinned key. A processor listed in several sets must have the
    /// same key in each.
    pub fn registry(&self) -> Result<KeyRegistry, ConfigError> {
        let mut keys: BTreeMap<Party, VerifyingKey> = BTreeMap::new();
        for (i, set) in self.sets.iter().enumerate() {
            let Some(network) = NetworkId::from_name(&set.network) else {
                return Err(invalid(format!("sets[{i}].network"), "unknown network"));
            };
            for (j, processor) in set.processors.iter().enumerate() {
                let field = format!("sets[{i}].processors[{j}].public_key");
                let key = parse_public_key(&processor.public_key)
                    .map_err(|reason| invalid(field.clone(), reason))?;
                let party = Party::Processor { network, validator: processor.validator };
                match keys.insert(party, key) {
                    Some(previous) if previous != key => {
                        return Err(invalid(
                            field,
                            format!("{party} has another key in another set"),
                        ));
                    }
                    _ => {}
                }
            }
        }
        let mut registry = KeyRegistry::new();
        for (party, key) in keys {
            registry.insert(party, key);
        }
        Ok(registry)
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("coordinator-sim.redb")
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
}

/// Parses a hex Ed25519 public key.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .map_err(|e| e.to_string())?
        .try_into()
        .map_err(|_| "expected 32 bytes (64 hex characters)".to_string())?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| e.to_string())
}

/// Parses 64 hex characters into an identity.
pub fn parse_identity(text: &str) -> Result<messages::Identity, ConfigError> {
    let bytes =
        Zeroizing::new(hex::decode(text.trim()).map_err(|_| invalid("identity key", "not hex"))?);
    let secret: Zeroizing<[u8; 32]> = Zeroizing::new(
        bytes
            .as_slice()
            .try_into()
            .map_err(|_| invalid("identity key", "expected 32 bytes (64 hex characters)"))?,
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
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|source| ConfigError::SecretFile { path: path.into(), source })?,
    );
    Ok(Zeroizing::new(text.trim().to_string()))
}

/// Writes a new identity key file with mode 0600 (it must not exist); returns the identity.
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
