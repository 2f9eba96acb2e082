//! Configuration pieces common to every daemon: the `[log]`, `[bus]` and `[http]` tables,
//! command-line/environment overrides, TOML loading, and secrets (the identity key and
//! any other secret held in the environment or in an owner-only file).

use std::{
    marker::PhantomData,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::{de::DeserializeOwned, Deserialize};
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
    /// A secret file could not be read or created.
    #[error("cannot read secret file {path}: {source}")]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// [`ConfigError::Invalid`] for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid { field: field.into(), reason: reason.into() }
    }
}

/// Reads `path` and parses it as the TOML config `T` (no validation beyond the schema).
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.into(), source })?;
    toml::from_str(&text)
        .map_err(|source| ConfigError::Parse { path: path.into(), source: Box::new(source) })
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
    /// The broker user; its password comes from the password's environment variable or
    /// `password_file`.
    #[serde(default)]
    pub user: Option<String>,
    /// The file holding the broker user's password (not readable by group or others).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// A NATS credentials file (user JWT and nkey seed), instead of a user and password.
    #[serde(default)]
    pub creds_file: Option<PathBuf>,
    /// Require TLS to the broker (implied by any `tls_*` file).
    #[serde(default)]
    pub tls: bool,
    /// The CA certificate (PEM) the broker's certificate must chain to (instead of the
    /// system's roots).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// A client certificate (PEM), for a broker that verifies clients; with `tls_key_file`.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
}

impl BusConfig {
    /// The transport's config: the broker, the redelivery delay, and the credentials and
    /// TLS settings, checked (the password read as [`read_secret`] reads it, from
    /// `password_env` or `password_file`; every named file readable).
    pub fn nats(&self, password_env: &'static str) -> Result<bus::NatsConfig, ConfigError> {
        let mut nats = bus::NatsConfig::new(self.nats_url.clone(), self.namespace.clone());
        nats.ack_wait = std::time::Duration::from_millis(self.ack_wait_ms);
        let (scheme, rest) = self.nats_url.split_once("://").unwrap_or(("nats", &self.nats_url));
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            return Err(ConfigError::invalid(
                "bus.nats_url",
                "credentials in the URL are not used: give bus.user and bus.password_file",
            ));
        }
        if std::env::var(password_env).is_ok() && self.user.is_none() {
            return Err(ConfigError::invalid(
                "bus.user",
                format!("{password_env} is set but bus.user is not: set both, or neither"),
            ));
        }
        nats.auth = match (&self.user, &self.creds_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "bus.creds_file",
                    "give either bus.user (with a password) or bus.creds_file, not both",
                ))
            }
            (Some(user), None) => {
                let password = read_secret(
                    "the broker password",
                    password_env,
                    "bus.password_file",
                    self.password_file.as_deref(),
                )?;
                if password.is_empty() {
                    return Err(ConfigError::invalid("bus.password_file", "the password is empty"));
                }
                bus::NatsAuth::UserPassword { user: user.clone(), password }
            }
            (None, creds) => {
                if self.password_file.is_some() {
                    return Err(ConfigError::invalid("bus.password_file", "set bus.user too"));
                }
                match creds {
                    Some(path) => {
                        private("bus.creds_file", path)?;
                        bus::NatsAuth::CredsFile(path.clone())
                    }
                    None => bus::NatsAuth::None,
                }
            }
        };
        let files = [
            ("bus.tls_ca_file", &self.tls_ca_file),
            ("bus.tls_cert_file", &self.tls_cert_file),
            ("bus.tls_key_file", &self.tls_key_file),
        ];
        let tls = self.tls || files.iter().any(|(_, f)| f.is_some());
        if tls {
            // The client skips the TLS upgrade on websocket addresses.
            if !matches!(scheme, "nats" | "tls" | "wss") {
                return Err(ConfigError::invalid(
                    "bus.nats_url",
                    format!(
                        "TLS is required but the scheme is {scheme}: use nats://, tls:// or wss://"
                    ),
                ));
            }
            for (field, file) in files {
                if let Some(path) = file {
                    readable(field, path)?;
                }
            }
            if let Some(key) = &self.tls_key_file {
                private("bus.tls_key_file", key)?;
            }
            let client_cert = match (&self.tls_cert_file, &self.tls_key_file) {
                (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
                (None, None) => None,
                _ => {
                    return Err(ConfigError::invalid(
                        "bus.tls_cert_file",
                        "give bus.tls_cert_file and bus.tls_key_file together",
                    ))
                }
            };
            nats.tls = Some(bus::NatsTls { ca_file: self.tls_ca_file.clone(), client_cert });
        }
        // A password sent without TLS can be read by anyone on the path: only to a broker on
        // this machine.
        let loopback = {
            let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
            matches!(host, "127.0.0.1" | "localhost" | "[::1]")
        };
        if matches!(nats.auth, bus::NatsAuth::UserPassword { .. }) && !tls && !loopback {
            return Err(ConfigError::invalid(
                "bus.tls",
                "a password to a broker on another host needs TLS: set bus.tls_ca_file or bus.tls",
            ));
        }
        Ok(nats)
    }
}

/// Checks that the secret file at `path` is not readable by group or others.
fn owner_only(path: &Path) -> Result<(), ConfigError> {
    let metadata = std::fs::metadata(path)
        .map_err(|source| ConfigError::SecretFile { path: path.into(), source })?;
    let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::InsecureSecretFile { path: path.into(), mode });
    }
    Ok(())
}

/// Checks that the file `field` names can be read, by its owner alone (it holds a secret).
fn private(field: &'static str, path: &Path) -> Result<(), ConfigError> {
    readable(field, path)?;
    owner_only(path)
}

/// Checks that the file `field` names can be read.
fn readable(field: &'static str, path: &Path) -> Result<(), ConfigError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| ConfigError::invalid(field, format!("cannot read {}: {e}", path.display())))
}

fn default_resend_ms() -> u64 {
    5_000
}

fn default_ack_wait_ms() -> u64 {
    30_000
}

/// The config file's `[http]` table; `listen` defaults to `127.0.0.1:PORT`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig<const PORT: u16> {
    /// Where `/metrics`, `/health` and `/status` are served.
    #[serde(default = "default_listen::<PORT>")]
    pub listen: SocketAddr,
}

impl<const PORT: u16> Default for HttpConfig<PORT> {
    fn default() -> Self {
        HttpConfig { listen: default_listen::<PORT>() }
    }
}

fn default_listen<const PORT: u16>() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], PORT))
}

/// The environment variables a daemon's [`Overrides`] read.
pub trait OverrideEnv: Clone + std::fmt::Debug + Default + Send + Sync + 'static {
    /// Overrides `data_dir`.
    const DATA_DIR: &'static str;
    /// Overrides `bus.nats_url`.
    const NATS_URL: &'static str;
    /// Overrides `http.listen`.
    const HTTP_LISTEN: &'static str;
    /// Overrides `log.format`.
    const LOG_FORMAT: &'static str;
}

/// Command-line/environment overrides of config-file values.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Overrides<E: OverrideEnv> {
    /// Overrides `data_dir`.
    #[arg(long, env = E::DATA_DIR)]
    pub data_dir: Option<PathBuf>,
    /// Overrides `bus.nats_url`.
    #[arg(long, env = E::NATS_URL)]
    pub nats_url: Option<String>,
    /// Overrides `http.listen`.
    #[arg(long, env = E::HTTP_LISTEN)]
    pub http_listen: Option<SocketAddr>,
    /// Overrides `log.format`.
    #[arg(long, env = E::LOG_FORMAT, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Which daemon's variables these are (a marker). Public so that other crates can
    /// build overrides with `Overrides { data_dir, ..Default::default() }`.
    #[arg(skip)]
    pub env: PhantomData<E>,
}

impl<E: OverrideEnv> Overrides<E> {
    /// Replaces the config values that were overridden.
    pub fn apply<const PORT: u16>(
        &self,
        data_dir: &mut PathBuf,
        bus: &mut BusConfig,
        http: &mut HttpConfig<PORT>,
        log: &mut LogConfig,
    ) {
        if let Some(d) = &self.data_dir {
            *data_dir = d.clone();
        }
        if let Some(u) = &self.nats_url {
            bus.nats_url = u.clone();
        }
        if let Some(l) = self.http_listen {
            http.listen = l;
        }
        if let Some(f) = self.log_format {
            log.format = f;
        }
    }
}

/// Parses 64 hex characters into an identity.
pub fn parse_identity(text: &str) -> Result<messages::Identity, ConfigError> {
    let bytes = Zeroizing::new(
        hex::decode(text.trim()).map_err(|_| ConfigError::invalid("identity key", "not hex"))?,
    );
    let secret: Zeroizing<[u8; 32]> =
        Zeroizing::new(bytes.as_slice().try_into().map_err(|_| {
            ConfigError::invalid("identity key", "expected 32 bytes (64 hex characters)")
        })?);
    Ok(messages::Identity::from_secret(&secret))
}

/// Reads the secret `name` from the environment variable `env`, else from `file` (the
/// config field `field`), which must not be readable by group or others. Trimmed.
pub fn read_secret(
    name: &'static str,
    env: &'static str,
    field: &'static str,
    file: Option<&Path>,
) -> Result<Zeroizing<String>, ConfigError> {
    if let Ok(value) = std::env::var(env) {
        return Ok(Zeroizing::new(value.trim().to_string()));
    }
    let Some(path) = file else { return Err(ConfigError::MissingSecret { name, env, field }) };
    owner_only(path)?;
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|source| ConfigError::SecretFile { path: path.into(), source })?,
    );
    Ok(Zeroizing::new(text.trim().to_string()))
}

/// The identity key: from the environment variable `env`, else from `file` (the config
/// field `field`), as [`read_secret`] reads it.
pub fn read_identity(
    env: &'static str,
    field: &'static str,
    file: Option<&Path>,
) -> Result<messages::Identity, ConfigError> {
    parse_identity(&read_secret("identity key", env, field, file)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, Default)]
    struct TestEnv;
    impl OverrideEnv for TestEnv {
        const DATA_DIR: &'static str = "SERVICE_TEST_DATA_DIR";
        const NATS_URL: &'static str = "SERVICE_TEST_NATS_URL";
        const HTTP_LISTEN: &'static str = "SERVICE_TEST_HTTP_LISTEN";
        const LOG_FORMAT: &'static str = "SERVICE_TEST_LOG_FORMAT";
    }

    #[derive(Debug, Deserialize)]
    struct Http {
        #[serde(default)]
        http: HttpConfig<9300>,
    }

    #[test]
    fn http_listen_defaults_to_the_port_parameter() -> Result<(), toml::de::Error> {
        let parsed: Http = toml::from_str("")?;
        assert_eq!(parsed.http.listen, SocketAddr::from(([127, 0, 0, 1], 9300)));
        let parsed: Http = toml::from_str("[http]\n")?;
        assert_eq!(parsed.http.listen.port(), 9300);
        Ok(())
    }

    #[test]
    fn overrides_replace_only_what_was_given() {
        let mut data_dir = PathBuf::from("/a");
        let mut bus = BusConfig {
            nats_url: "nats://x".into(),
            namespace: "n".into(),
            resend_after_ms: 1,
            ack_wait_ms: 2,
            user: None,
            password_file: None,
            creds_file: None,
            tls: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        };
        let mut http = HttpConfig::<9300>::default();
        let mut log = LogConfig::default();
        let overrides = Overrides::<TestEnv> {
            nats_url: Some("nats://y".into()),
            log_format: Some(LogFormat::Json),
            ..Overrides::default()
        };
        overrides.apply(&mut data_dir, &mut bus, &mut http, &mut log);
        assert_eq!(data_dir, PathBuf::from("/a"));
        assert_eq!(bus.nats_url, "nats://y");
        assert_eq!(http.listen.port(), 9300);
        assert_eq!(log.format, LogFormat::Json);
    }

    #[test]
    fn a_group_readable_secret_file_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("secret");
        std::fs::write(&path, "  hunter2hunter2hunter2 \n")?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        let env = "SERVICE_TEST_UNSET_SECRET";
        let err = read_secret("s", env, "f", Some(&path)).err().ok_or("accepted")?;
        assert!(err.to_string().contains("mode 644"), "{err}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        assert_eq!(read_secret("s", env, "f", Some(&path))?.as_str(), "hunter2hunter2hunter2");
        let err = read_secret("s", env, "f", None).err().ok_or("accepted")?;
        assert!(matches!(err, ConfigError::MissingSecret { .. }), "{err}");
        Ok(())
    }

    #[test]
    fn the_bus_credentials_and_tls_settings_are_checked() -> Result<(), Box<dyn std::error::Error>>
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let password = dir.path().join("bus-password");
        std::fs::write(&password, "s3cret-broker-password\n")?;
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600))?;
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not checked here: the TLS handshake reads it")?;
        let env = "SERVICE_TEST_UNSET_BUS_PASSWORD";
        let base: BusConfig =
            toml::from_str("nats_url = \"nats://127.0.0.1:1\"\nnamespace = \"n\"")?;
        // Nothing set: no credentials, no TLS.
        let open = base.nats(env)?;
        assert!(matches!(open.auth, bus::NatsAuth::None) && open.tls.is_none());
        // A user, its password from the file, and a CA: TLS required.
        let secured = BusConfig {
            user: Some("p1".into()),
            password_file: Some(password.clone()),
            tls_ca_file: Some(ca.clone()),
            ..base.clone()
        }
        .nats(env)?;
        match &secured.auth {
            bus::NatsAuth::UserPassword { user, password } => {
                assert_eq!((user.as_str(), password.as_str()), ("p1", "s3cret-broker-password"));
            }
            other => return Err(format!("{other:?}").into()),
        }
        assert_eq!(secured.tls.as_ref().and_then(|t| t.ca_file.clone()), Some(ca.clone()));
        // The password is never printed.
        assert!(!format!("{:?}", secured.auth).contains("s3cret"));
        // Refused, each naming the field: a user without a password, a password without a
        // user, a user and a creds file, half a client certificate, an unreadable file.
        let refused = |config: BusConfig, field: &str| -> Result<(), String> {
            match config.nats(env) {
                Ok(_) => Err(format!("{field}: accepted")),
                Err(e) if e.to_string().contains(field) => Ok(()),
                Err(e) => Err(format!("{field}: {e}")),
            }
        };
        refused(BusConfig { user: Some("p1".into()), ..base.clone() }, "bus.password_file")?;
        refused(BusConfig { password_file: Some(password.clone()), ..base.clone() }, "bus.user")?;
        refused(
            BusConfig {
                user: Some("p1".into()),
                password_file: Some(password.clone()),
                creds_file: Some(ca.clone()),
                ..base.clone()
            },
            "bus.creds_file",
        )?;
        refused(BusConfig { tls_cert_file: Some(ca.clone()), ..base.clone() }, "bus.tls_key_file")?;
        refused(
            BusConfig { tls_ca_file: Some(dir.path().join("missing.pem")), ..base.clone() },
            "bus.tls_ca_file",
        )?;
        // Credentials in the URL (never used), a websocket URL with TLS (not upgraded), a
        // password to another host without TLS, a group-readable creds file.
        refused(
            BusConfig { nats_url: "nats://u:p@127.0.0.1:1".into(), ..base.clone() },
            "bus.nats_url",
        )?;
        refused(
            BusConfig { nats_url: "ws://broker.example:1".into(), tls: true, ..base.clone() },
            "bus.nats_url",
        )?;
        refused(
            BusConfig {
                nats_url: "nats://broker.example:4222".into(),
                user: Some("p1".into()),
                password_file: Some(password.clone()),
                ..base.clone()
            },
            "bus.tls",
        )?;
        std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o644))?;
        refused(BusConfig { creds_file: Some(ca.clone()), ..base.clone() }, "mode 644")?;
        let empty = dir.path().join("empty-password");
        std::fs::write(&empty, "  \n")?;
        std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600))?;
        refused(
            BusConfig { user: Some("p1".into()), password_file: Some(empty), ..base.clone() },
            "empty",
        )?;
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o640))?;
        let insecure =
            BusConfig { user: Some("p1".into()), password_file: Some(password), ..base.clone() };
        assert!(insecure.nats(env).is_err(), "a group-readable password file was accepted");
        Ok(())
    }

    #[test]
    fn a_written_identity_reads_back_and_is_never_overwritten(
    ) -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("identity.key");
        let identity = write_identity_file(&path)?;
        assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        let read = read_identity("SERVICE_TEST_UNSET_IDENTITY", "f", Some(&path))?;
        assert_eq!(read.public().as_bytes(), identity.public().as_bytes());
        assert!(write_identity_file(&path).is_err());
        assert!(parse_identity("zz").is_err());
        Ok(())
    }
}
