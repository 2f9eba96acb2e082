//! Test support: a real `nats-server -js` on a free loopback port in a temp dir, open or
//! secured (TLS with a test CA, and a user and password).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A free loopback TCP port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A plain HTTP/1.0 GET on loopback, for tests and tools polling a daemon's endpoints:
/// (status code, body), or `None` while nothing answers properly.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_request(port, "GET", path, None)
}

/// One loopback HTTP/1.0 POST of a JSON body: `(status, body)`, or `None` if nothing
/// answered.
pub fn http_post_json(port: u16, path: &str, json: &str) -> Option<(u16, String)> {
    http_request(port, "POST", path, Some(json))
}

fn http_request(port: u16, method: &str, path: &str, json: Option<&str>) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    match json {
        None => write!(stream, "{method} {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?,
        Some(body) => write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .ok()?,
    }
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.get(9..12)?.parse().ok()?;
    Some((code, response.split_once("\r\n\r\n")?.1.to_string()))
}

/// A nats-server with JetStream, killed when dropped. Restarts keep the port and the
/// store directory, like an operator restarting the broker.
#[derive(Debug)]
pub struct NatsServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Set when the server requires TLS and a user and password.
    pub secured: Option<Secured>,
}

/// What a client needs to reach a secured server. `Debug` leaves the password out.
#[derive(Clone)]
pub struct Secured {
    /// The user.
    pub user: String,
    /// Its password.
    pub password: String,
    /// A file holding the password (mode 0600), as operators configure it.
    pub password_file: PathBuf,
    /// The test CA's certificate, which the server's chains to.
    pub ca_file: PathBuf,
}

impl std::fmt::Debug for Secured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secured")
            .field("user", &self.user)
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

/// Runs `openssl` with `args` in `dir`, panicking with its output if it fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap_or_else(|e| {
        panic!("cannot run openssl ({e}); run scripts/test, which installs it")
    });
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A test CA and a server certificate for 127.0.0.1 signed by it, in `dir`: `ca.pem`,
/// `server.pem`, `server.key`.
fn certificates(dir: &std::path::Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=tc test CA"]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

fn binary() -> PathBuf {
    let name = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    PathBuf::from(name)
}

impl NatsServer {
    pub fn start() -> Self {
        let mut server = NatsServer {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            secured: None,
        };
        server.spawn();
        server
    }

    /// A server that requires TLS (a certificate from a test CA made now) and a user and
    /// password; it refuses any other client.
    pub fn start_secured() -> Self {
        let dir = tempfile::tempdir().unwrap();
        certificates(dir.path());
        let password = hex::encode(rand::random::<[u8; 16]>());
        let password_file = dir.path().join("bus-password");
        std::fs::write(&password_file, &password).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
        let port = free_port();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let conf = format!(
            "listen: \"127.0.0.1:{port}\"\n\
             jetstream {{ store_dir: \"{store}\" }}\n\
             tls {{ cert_file: \"{cert}\", key_file: \"{key}\", timeout: 2 }}\n\
             authorization {{ user: \"tc\", password: \"{password}\" }}\n",
            store = path("store"),
            cert = path("server.pem"),
            key = path("server.key"),
        );
        std::fs::write(dir.path().join("nats.conf"), conf).unwrap();
        let secured = Secured {
            user: "tc".into(),
            password,
            password_file,
            ca_file: dir.path().join("ca.pem"),
        };
        let mut server = NatsServer { port, dir, child: None, secured: Some(secured) };
        server.spawn();
        server
    }

    /// A client config for `namespace` on this server, with its credentials and CA when it
    /// is secured.
    pub fn nats_config(&self, namespace: &str) -> crate::NatsConfig {
        let mut config = crate::NatsConfig::new(self.url(), namespace);
        if let Some(secured) = &self.secured {
            config.auth = crate::NatsAuth::UserPassword {
                user: secured.user.clone(),
                password: zeroize::Zeroizing::new(secured.password.clone()),
            };
            config.tls =
                Some(crate::NatsTls { ca_file: Some(secured.ca_file.clone()), client_cert: None });
        }
        config
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nats.log"))
            .unwrap();
        let mut command = Command::new(binary());
        if self.secured.is_some() {
            command.arg("-c").arg(self.dir.path().join("nats.conf"));
        } else {
            command
                .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
                .arg(self.dir.path().join("store"));
        }
        let child = command.stdout(Stdio::null()).stderr(log).spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start nats-server ({e}); run scripts/test, which installs it \
                     (apt-get install -y nats-server), or set NATS_SERVER=/path"
            )
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server: SIGKILL when `kill`, else SIGTERM (graceful), and waits.
    pub fn stop(&mut self, kill: bool) {
        if let Some(mut child) = self.child.take() {
            if kill {
                let _ = child.kill();
            } else {
                let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            }
            let _ = child.wait();
        }
    }

    /// Stops and starts again on the same port and store.
    pub fn restart(&mut self, kill: bool) {
        self.stop(kill);
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop(true);
    }
}
