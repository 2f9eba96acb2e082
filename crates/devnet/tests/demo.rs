//! The `devnet demo` command itself (the README's first command runs it): a smaller
//! scenario through the binary, and its refusal of impossible options.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn demo_command_runs_a_small_scenario_and_reports_a_passing_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_devnet"))
        .args(["demo", "--deposits", "4", "--burns", "6", "--keep"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ALL CHECKS PASSED"), "{stdout}");
    // The table shows the rotation, and its check passed.
    assert!(stdout.contains("rotation 2-of-3 -> 3-of-4"), "{stdout}");
    assert!(
        stdout.contains("[PASS] the old set forwarded everything to the new key and retired"),
        "{stdout}"
    );
    assert!(!stdout.contains("[FAIL]"), "{stdout}");
    // Progress went to standard error, stage by stage, the rotation mid-payouts included.
    for stage in [
        "key active",
        "deposits credited",
        "rotation: electing a 3-of-4 set",
        "new key active (session 1)",
        "payees paid",
        "the old set retired",
    ] {
        assert!(stderr.contains(stage), "no progress line for {stage}:\n{stderr}");
    }
    // With progress bars for the long waits, ending full.
    for bar in ["credited", "refunded", "paid", "retired"] {
        let full = format!("{bar:<8} [{}]", "#".repeat(24));
        assert!(stderr.contains(&full), "no full {bar} bar:\n{stderr}");
    }
    // `--keep` kept the working directory, and said where: every process's log is there.
    let dir = stdout
        .lines()
        .find_map(|l| l.split_once("are kept in ").map(|(_, dir)| dir.trim().to_string()))
        .unwrap_or_else(|| panic!("no kept directory named:\n{stdout}"));
    let dir = std::path::Path::new(&dir);
    let coordinator_log = std::fs::read_to_string(dir.join("coordinator-sim.log")).unwrap();
    assert!(!coordinator_log.is_empty());
    for v in 1..=3 {
        let log = dir.join(format!("processor-litecoin-{v}")).join("processor.log");
        assert!(std::fs::metadata(&log).unwrap().len() > 0, "{} is empty", log.display());
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn demo_command_refuses_a_threshold_above_the_validators() {
    let out = Command::new(env!("CARGO_BIN_EXE_devnet"))
        .args(["demo", "--validators", "2", "--threshold", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threshold"));
}
