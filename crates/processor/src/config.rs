//! Configuration: one TOML file, overridable from the command line or the environment.
//! Secrets come only from the environment or from files readable by their owner alone.

use std::path::{Path, PathBuf};

use messages::Party;
use primitives::NetworkId;
use serde::Deserialize;
use zeroize::Zeroizing;

pub use service::config::{
    parse_identity, write_identity_file, BusConfig, ConfigError, LogConfig, LogFormat,
};

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

/// The config file's `[http]` table; `listen` defaults to `127.0.0.1:9100`.
pub type HttpConfig = service::config::HttpConfig<9100>;

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
    /// The network's node (Bitcoin-family). Without it the processor only generates keys.
    #[serde(default)]
    pub node: Option<NodeConfig>,
    /// The scanning and signing pipeline.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// What key generation this operator allows.
    #[serde(default)]
    pub keygen: KeyGenConfig,
    /// Test-only settings.
    #[serde(default)]
    pub testing: TestingConfig,
}

/// The config file's `[node]` table: a Bitcoin Core-compatible node (bitcoind or
/// litecoind) with `-txindex` and `-rest`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// `mainnet`, `testnet` or `regtest`.
    pub chain: String,
    /// JSON-RPC endpoint, e.g. `http://127.0.0.1:8332`.
    pub rpc_url: String,
    /// The node's cookie file (`<datadir>/.cookie`); or use `rpc_user` + `rpc_password_file`.
    pub rpc_cookie_file: Option<PathBuf>,
    /// RPC user name.
    pub rpc_user: Option<String>,
    /// File holding the RPC password, mode 0600.
    pub rpc_password_file: Option<PathBuf>,
    /// REST endpoint for blocks; defaults to `rpc_url`.
    pub rest_url: Option<String>,
    /// RPC timeout in milliseconds (default 30,000).
    pub rpc_timeout_ms: Option<u64>,
    /// Overrides the coin's default confirmations (Bitcoin 6, Litecoin 12).
    pub confirmations: Option<u64>,
    /// Overrides the most inputs per transaction.
    pub max_inputs: Option<usize>,
    /// Overrides the most outputs per transaction (payment trees form above it).
    pub max_outputs: Option<usize>,
    /// Overrides the dust threshold, in the smallest unit.
    pub dust: Option<u64>,
    /// Overrides the lowest fee rate plans use (sat per 1,000 vbytes).
    pub min_fee_rate: Option<u64>,
    /// Overrides the highest fee rate plans use (sat per 1,000 vbytes; default 1,000,000,
    /// a tenth of the node's default `maxfeerate`). Every processor of a set must use the
    /// same, or their plans differ.
    pub max_fee_rate: Option<u64>,
}

/// The config file's `[pipeline]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Most unacknowledged Batches the scanner runs ahead (default 10).
    #[serde(default = "default_window")]
    pub window: u32,
    /// How often the scanner asks the node for new blocks when idle, in ms (default 1,000).
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

fn default_window() -> u32 {
    10
}

fn default_poll_ms() -> u64 {
    1_000
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig { window: default_window(), poll_ms: default_poll_ms() }
    }
}

/// The config file's `[keygen]` table: the key-generation parameters this operator allows,
/// whatever the coordinator asks (refused requests are logged and counted).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyGenConfig {
    /// The lowest threshold accepted (default and minimum 2).
    #[serde(default = "default_min_threshold")]
    pub min_threshold: u16,
    /// The threshold must be more than this percentage of the participants (default 50:
    /// more than half).
    #[serde(default = "default_min_threshold_percent")]
    pub min_threshold_percent: u8,
}

fn default_min_threshold() -> u16 {
    key_gen::KeyGenPolicy::default().min_threshold
}

fn default_min_threshold_percent() -> u8 {
    key_gen::KeyGenPolicy::default().min_threshold_percent
}

impl Default for KeyGenConfig {
    fn default() -> Self {
        KeyGenConfig {
            min_threshold: default_min_threshold(),
            min_threshold_percent: default_min_threshold_percent(),
        }
    }
}

impl KeyGenConfig {
    /// The policy, checked: a threshold below 2 or a percentage above 100 is refused.
    pub fn policy(&self) -> Result<key_gen::KeyGenPolicy, ConfigError> {
        if self.min_threshold < 2 {
            return Err(ConfigError::invalid(
                "keygen.min_threshold",
                "must be at least 2: one key holder alone must never be able to sign",
            ));
        }
        if self.min_threshold_percent == 0 || self.min_threshold_percent > 99 {
            return Err(ConfigError::invalid(
                "keygen.min_threshold_percent",
                "must be between 1 and 99",
            ));
        }
        Ok(key_gen::KeyGenPolicy {
            min_threshold: self.min_threshold,
            min_threshold_percent: self.min_threshold_percent,
        })
    }
}

/// The config file's `[testing]` table: misbehaviour for tests, debug builds only.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestingConfig {
    /// `invalid-share-to:V` or `false-accuse:V`.
    pub malice: Option<String>,
}

/// The processor's override environment variables (`PROCESSOR_*`).
#[derive(Clone, Debug, Default)]
pub struct ProcessorEnv;

impl service::config::OverrideEnv for ProcessorEnv {
    const DATA_DIR: &'static str = "PROCESSOR_DATA_DIR";
    const NATS_URL: &'static str = "PROCESSOR_NATS_URL";
    const HTTP_LISTEN: &'static str = "PROCESSOR_HTTP_LISTEN";
    const LOG_FORMAT: &'static str = "PROCESSOR_LOG_FORMAT";
}

/// Command-line/environment overrides of config-file values.
pub type Overrides = service::config::Overrides<ProcessorEnv>;

/// Environment variable holding the identity key (hex), instead of a file.
pub const IDENTITY_KEY_ENV: &str = "PROCESSOR_IDENTITY_KEY";
/// Environment variable holding the sealing secret, instead of a file.
pub const DB_SECRET_ENV: &str = "PROCESSOR_DB_SECRET";
/// Environment variable holding the broker password (`[bus] user`), instead of a file.
pub const BUS_PASSWORD_ENV: &str = "PROCESSOR_BUS_PASSWORD";

impl Config {
    /// Reads and validates `path`, then applies `overrides`.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut config: Config = service::config::load_toml(path)?;
        overrides.apply(&mut config.data_dir, &mut config.bus, &mut config.http, &mut config.log);
        config.party()?;
        config.coordinator_key()?;
        config.malice()?;
        crate::networks::check(&config)?;
        if config.validator == 0 {
            return Err(ConfigError::invalid("validator", "indices start at 1"));
        }
        config.keygen.policy()?;
        if config.pipeline.window == 0 {
            return Err(ConfigError::invalid(
                "pipeline.window",
                "must be at least 1: the scanner runs this many unacknowledged Batches ahead",
            ));
        }
        Ok(config)
    }

    /// The network served.
    pub fn network(&self) -> Result<NetworkId, ConfigError> {
        NetworkId::from_name(&self.network).ok_or_else(|| {
            ConfigError::invalid(
                "network",
                format!("{:?} is not one of bitcoin, litecoin, monero, ethereum", self.network),
            )
        })
    }

    /// This processor's party.
    pub fn party(&self) -> Result<Party, ConfigError> {
        Ok(Party::Processor { network: self.network()?, validator: self.validator })
    }

    /// The pinned coordinator key.
    pub fn coordinator_key(&self) -> Result<ed25519_key::VerifyingKey, ConfigError> {
        let invalid = |reason: String| ConfigError::invalid("coordinator.public_key", reason);
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
        service::config::read_identity(
            IDENTITY_KEY_ENV,
            "secrets.identity_key_file",
            self.secrets.identity_key_file.as_deref(),
        )
    }

    /// The secret that seals key shares at rest, from [`DB_SECRET_ENV`] or
    /// `secrets.db_secret_file`. Required.
    pub fn db_secret(&self) -> Result<Zeroizing<String>, ConfigError> {
        let secret = service::config::read_secret(
            "DB sealing secret",
            DB_SECRET_ENV,
            "secrets.db_secret_file",
            self.secrets.db_secret_file.as_deref(),
        )?;
        if secret.len() < 16 {
            return Err(ConfigError::invalid("DB sealing secret", "use at least 16 characters"));
        }
        Ok(secret)
    }

    /// Deliberate misbehaviour for tests of blame (`[testing] malice`). Debug builds honour
    /// it; a release build only when run with `TC_TESTING_MALICE=1` in its environment (the
    /// devnet's test clusters), and otherwise refuses to start with it set.
    pub fn malice(&self) -> Result<key_gen::Malice, ConfigError> {
        let Some(spec) = &self.testing.malice else { return Ok(key_gen::Malice::None) };
        let invalid = |reason: &str| ConfigError::invalid("testing.malice", reason);
        let env = std::env::var(TESTING_MALICE_ENV).ok();
        if !malice_allowed(cfg!(debug_assertions), env.as_deref()) {
            return Err(invalid(
                "a release build honours it only with TC_TESTING_MALICE=1 (tests); remove it",
            ));
        }
        let (kind, who) = spec.split_once(':').ok_or_else(|| invalid("expected KIND:VALIDATOR"))?;
        let who: u16 = who.parse().map_err(|_| invalid("the validator must be a number"))?;
        match kind {
            "invalid-share-to" => Ok(key_gen::Malice::InvalidShareTo(who)),
            "false-accuse" => Ok(key_gen::Malice::FalseAccuse(who)),
            "false-blame" => Ok(key_gen::Malice::FalseBlame(who)),
            "wrong-share" => Ok(key_gen::Malice::WrongShare(who)),
            "withhold-share" => Ok(key_gen::Malice::WithholdShare(who)),
            _ => Err(invalid(
                "KIND is invalid-share-to, false-accuse, false-blame, wrong-share or withhold-share",
            )),
        }
    }
}

/// The environment variable that lets a release build honour `[testing] malice`.
pub const TESTING_MALICE_ENV: &str = "TC_TESTING_MALICE";

/// Whether `[testing] malice` may be honoured: always in a debug build, in a release
/// build only with [`TESTING_MALICE_ENV`] set to `1`.
fn malice_allowed(debug_build: bool, env: Option<&str>) -> bool {
    debug_build || env == Some("1")
}

/// Re-exported so the binary does not depend on the signature crate directly.
pub mod ed25519_key {
    pub use messages::envelope::VerifyingKey;
}

#[cfg(test)]
mod tests {
    use super::malice_allowed;

    #[test]
    fn a_release_build_honours_malice_only_when_the_environment_says_so() {
        assert!(malice_allowed(true, None));
        assert!(malice_allowed(false, Some("1")));
        assert!(!malice_allowed(false, None));
        assert!(!malice_allowed(false, Some("0")));
        assert!(!malice_allowed(false, Some("yes")));
    }
}
