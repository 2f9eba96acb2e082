//! Test support: a real `nats-server -js` on a free loopback port in a temp dir.
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
}

fn binary() -> PathBuf {
    let name = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    PathBuf::from(name)
}

impl NatsServer {
    pub fn start() -> Self {
        let mut server =
            NatsServer { port: free_port(), dir: tempfile::tempdir().unwrap(), child: None };
        server.spawn();
        server
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
        let child = Command::new(binary())
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.dir.path().join("store"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
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
