//! Configuration: one TOML file, overridable from the command line or the environment.
//! The identity key comes only from the environment or from a file readable by its owner
//! alone.
//!
//! The error type, the `[log]`/`[bus]`/`[http]` tables, the overrides and the secret-file
//! and identity helpers are the processor's too: they live in [`service::config`].

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use messages::{envelope::VerifyingKey, KeyRegistry, Participant, Party};
use primitives::NetworkId;
use serde::Deserialize;

pub use service::config::{
    parse_identity, write_identity_file, BusConfig, ConfigError, LogConfig, LogFormat,
};

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::invalid(field, reason)
}

/// The config file's `[secrets]` table: file paths only, never the secrets themselves.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// File holding the coordinator's identity key (64 hex characters), mode 0600.
    pub identity_key_file: Option<PathBuf>,
}

/// The config file's `[http]` table; `listen` defaults to `127.0.0.1:9200`.
pub type HttpConfig = service::config::HttpConfig<9200>;

fn default_keygen_timeout_ms() -> u64 {
    60_000
}

fn default_sign_timeout_ms() -> u64 {
    30_000
}

fn default_chain() -> String {
    "regtest".to_string()
}

fn default_rotation_close_after() -> u64 {
    20
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
    /// A signing attempt without progress this long is reattempted without the members
    /// that did not answer.
    #[serde(default = "default_sign_timeout_ms")]
    pub sign_timeout_ms: u64,
    /// How a signing attempt's set is chosen: `responsive` (default: the first `t` key
    /// holders to preprocess, so a silent one costs no timeout) or `preferred` (the `t`
    /// chosen by hash, waiting for them: a silent one costs a timeout per attempt; kept as
    /// the reference the `signing` benchmark compares against).
    #[serde(default)]
    pub signing_selection: Selection,
    /// The external networks' chain, for the addresses of burns: `mainnet`, `testnet`
    /// or `regtest`.
    #[serde(default = "default_chain")]
    pub chain: String,
    /// A rotation's grace period: when a set's successor is confirmed with activation
    /// block `a`, the set's Batches stop crediting deposits from block
    /// `a + rotation_close_after` on, and the set may retire (docs/rotation.md).
    #[serde(default = "default_rotation_close_after")]
    pub rotation_close_after: u64,
    /// The validator sets. A set for a network that already has one, with a later
    /// session, is its successor: elected, it generates its key and takes the custody over
    /// (docs/rotation.md).
    pub sets: Vec<SetEntry>,
}

/// How a signing attempt's set is chosen (see [`Config::signing_selection`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Selection {
    /// Concurrent sessions (ROAST): the first `t` key holders to preprocess sign, and
    /// the next set forms as soon as one is fixed, from the key holders free again, so
    /// that a member withholding its share costs no timeout.
    #[default]
    Roast,
    /// The first `t` key holders to preprocess (no two in dispute), one attempt at a
    /// time: a member withholding its share costs a timeout.
    Responsive,
    /// The `t` key holders preferred by hash, waited for.
    Preferred,
}

/// The simulator's override environment variables (`COORDINATOR_*`).
#[derive(Clone, Debug, Default)]
pub struct CoordinatorEnv;

impl service::config::OverrideEnv for CoordinatorEnv {
    const DATA_DIR: &'static str = "COORDINATOR_DATA_DIR";
    const NATS_URL: &'static str = "COORDINATOR_NATS_URL";
    const HTTP_LISTEN: &'static str = "COORDINATOR_HTTP_LISTEN";
    const LOG_FORMAT: &'static str = "COORDINATOR_LOG_FORMAT";
}

/// Command-line/environment overrides of config-file values.
pub type Overrides = service::config::Overrides<CoordinatorEnv>;

/// Environment variable holding the identity key (hex), instead of a file.
pub const IDENTITY_KEY_ENV: &str = "COORDINATOR_IDENTITY_KEY";
/// Environment variable holding the broker password (`[bus] user`), instead of a file.
pub const BUS_PASSWORD_ENV: &str = "COORDINATOR_BUS_PASSWORD";

impl SetConfig {
    /// The set's database key.
    pub fn key(&self) -> crate::state::SetKey {
        crate::state::set_key(self.network, self.session)
    }
}

impl Config {
    /// Reads and validates `path`, then applies `overrides`.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut config: Config = service::config::load_toml(path)?;
        overrides.apply(&mut config.data_dir, &mut config.bus, &mut config.http, &mut config.log);
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
        if self.sign_timeout_ms == 0 {
            return Err(invalid("sign_timeout_ms", "must be positive"));
        }
        if bitcoin_address::Chain::from_name(&self.chain).is_none() {
            return Err(invalid(
                "chain",
                format!("{:?} is not mainnet, testnet or regtest", self.chain),
            ));
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
        service::config::read_identity(
            IDENTITY_KEY_ENV,
            "secrets.identity_key_file",
            self.secrets.identity_key_file.as_deref(),
        )
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
