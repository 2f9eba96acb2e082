//! The deployment files, checked with the tools that read them: the systemd units with
//! `systemd-analyze verify` (no warning at all) and `systemd-analyze security` (their
//! exposure), the alert rules and the scrape config with `promtool`, the compose file
//! with `docker-compose config` (no container runs here: there is no Docker daemon).
//! scripts/test installs the tools (Debian's `systemd`, `prometheus` and `docker-compose`
//! packages).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, process::Command};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(program: &str, args: &[&str], path: &std::path::Path) -> (bool, String) {
    let out = Command::new(program).args(args).arg(path).output().unwrap_or_else(|e| {
        panic!("cannot run {program} ({e}): scripts/test installs it (apt-get)")
    });
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

/// Each unit as systemd would load it (the template instantiated), its binaries swapped
/// for `/bin/true` since `verify` requires `ExecStart` to exist: no warning, and an
/// exposure level of at most 2.0 of 10 (`systemd-analyze security`: "OK").
#[test]
fn the_systemd_units_verify_cleanly_and_are_hardened() {
    for (unit, instance) in [
        ("processor@.service", "processor@litecoin.service"),
        ("coordinator-sim.service", "coordinator-sim.service"),
    ] {
        let text = std::fs::read_to_string(root().join("deploy/systemd").join(unit)).unwrap();
        assert!(text.contains("ExecStart=/usr/local/bin/"), "{unit}");
        let text = text
            .replace("/usr/local/bin/processor", "/bin/true")
            .replace("/usr/local/bin/coordinator-sim", "/bin/true");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(instance);
        std::fs::write(&path, text).unwrap();
        let (ok, said) = run("systemd-analyze", &["verify", "--man=no"], &path);
        assert!(ok && said.trim().is_empty(), "{unit}: {said}");
        let (_, said) = run("systemd-analyze", &["security", "--offline=yes"], &path);
        let level: f64 = said
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|rest| rest.split(": ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|level| level.parse().ok())
            .unwrap_or_else(|| panic!("{unit}: no exposure level in {said}"));
        eprintln!("{unit}: exposure {level} of 10");
        assert!(level <= 2.0, "{unit}: exposure {level}:\n{said}");
    }
}

/// A unit with a typo is caught: the check above can fail.
#[test]
fn a_unit_with_an_unknown_directive_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.service");
    std::fs::write(&path, "[Service]\nExecStart=/bin/true\nProtectHomee=yes\n").unwrap();
    let (_, said) = run("systemd-analyze", &["verify", "--man=no"], &path);
    assert!(said.contains("ProtectHomee"), "{said}");
}

#[test]
fn the_alert_rules_and_the_scrape_config_pass_promtool() {
    let (ok, said) = run("promtool", &["check", "rules"], &root().join("docs/alerts.yml"));
    assert!(ok && said.contains("SUCCESS: 8 rules found"), "{said}");
    // The scrape config loads the rules file (relative to itself).
    let (ok, said) = run("promtool", &["check", "config"], &root().join("docs/prometheus.yml"));
    assert!(ok && said.contains("SUCCESS: 1 rule files found"), "{said}");
}

/// The compose file is valid (`docker-compose config`), and runs exactly what `devnet
/// layout` writes: every config path it names exists in a layout written here, each
/// processor config passes `processor check-config` and listens on every interface at
/// the port the file publishes, and a second `layout` leaves the first untouched.
#[test]
fn the_compose_file_is_valid_and_runs_what_devnet_layout_writes() {
    let compose = root().join("deploy/compose.yaml");
    let out = Command::new("docker-compose")
        .arg("-f")
        .arg(&compose)
        .args(["config", "-q"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker-compose ({e}): scripts/test installs it"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let processor = devnet::binary("processor").unwrap();
    devnet::binary("coordinator-sim").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("litecoin");
    let options = devnet::commands::LayoutOptions {
        network: "litecoin".into(),
        validators: 3,
        threshold: 2,
        nats_url: "nats://nats:4222".into(),
        node_url: "http://litecoind:19443".into(),
        cookie_file: Some("/litecoind/regtest/.cookie".into()),
        confirmations: 3,
    };
    assert!(devnet::commands::layout(&net, &options).unwrap(), "written");
    let text = std::fs::read_to_string(&compose).unwrap();
    let named: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || matches!(c, '[' | ']' | ',' | '"'))
        .filter_map(|word| word.strip_prefix("/devnet/litecoin/"))
        .collect();
    assert_eq!(named.len(), 4, "{named:?}");
    for rel in named {
        let path = net.join(rel);
        assert!(path.exists(), "{rel} is not what devnet layout writes");
        if rel.ends_with("processor.toml") {
            let config = std::fs::read_to_string(&path).unwrap();
            let port = &config[config.find("listen = \"0.0.0.0:").expect("every interface")..];
            let port = &port["listen = \"0.0.0.0:".len()..port.find("\"\n").unwrap()];
            assert!(text.contains(&format!("127.0.0.1:{port}:{port}")), "{rel}: {port}");
            let (ok, said) = run(processor.to_str().unwrap(), &["check-config", "--config"], &path);
            assert!(ok, "{rel}: {said}");
            assert!(said.contains("nats://nats:4222") && said.contains("http://litecoind:19443"));
        }
    }
    let before = std::fs::read(net.join("coordinator-sim.toml")).unwrap();
    assert!(!devnet::commands::layout(&net, &options).unwrap(), "left as it was");
    assert_eq!(std::fs::read(net.join("coordinator-sim.toml")).unwrap(), before);
}

/// scripts/lib/common.sh's version check, on programs that print what the real ones do
/// (litecoind, monerod and nats-server as Debian ships them) and on older ones: a version
/// below the minimum is refused with what was found; at or above, accepted.
#[test]
fn the_set_up_refuses_components_older_than_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let fake = |name: &str, says: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\necho \"{says}\"\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let check = |name: &str, bin: &std::path::Path, min: &str| {
        let script = format!(
            "source '{}'; require_version {name} '{}' {min}",
            root().join("scripts/lib/common.sh").display(),
            bin.display()
        );
        let out = Command::new("bash").args(["-c", &script]).output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    };
    let cases = [
        (
            "litecoind",
            "Litecoin Core version v0.21.2.1-gfce5d459f0a83f56a83059c5c69295d7745b51d2",
            "MIN_LITECOIND",
            true,
        ),
        ("litecoind", "Litecoin Core version v0.18.1", "MIN_LITECOIND", false),
        ("monerod", "Monero 'Fluorine Fermi' (v0.18.0.0-unknown)", "MIN_MONEROD", true),
        ("monerod", "Monero 'Oxygen Orion' (v0.17.3.2-release)", "MIN_MONEROD", false),
        ("nats-server", "nats-server: v2.9.10", "MIN_NATS_SERVER", true),
        ("nats-server", "nats-server: v2.8.4", "MIN_NATS_SERVER", false),
        ("nats-server", "nats-server: v2.10.1", "MIN_NATS_SERVER", true),
        ("nats-server", "no version here", "MIN_NATS_SERVER", false),
    ];
    for (name, says, min, accepted) in cases {
        let bin = fake(name, says);
        let (ok, said) = check(name, &bin, &format!("\"${min}\""));
        assert_eq!(ok, accepted, "{name} saying {says:?}: {said}");
        if !accepted {
            assert!(said.contains("need") && said.contains("or later"), "{said}");
        }
    }
}
