//! SIGTERM triggers the shutdown switch. Alone in its test binary: the signal goes to
//! this whole process.

use std::time::Duration;

use task::Shutdown;

#[tokio::test]
#[allow(unsafe_code)] // One libc call to signal ourselves; there is no safe std API for it.
async fn sigterm_triggers_shutdown() {
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals().expect("handlers installed");
    assert!(!shutdown.is_triggered());

    // SAFETY: `kill` and `getpid` have no memory-safety preconditions; the handler
    // installed above replaces SIGTERM's default action, so the process survives.
    let sent = unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    assert_eq!(sent, 0, "kill failed");

    tokio::time::timeout(Duration::from_secs(10), shutdown.wait())
        .await
        .expect("SIGTERM triggered the shutdown");
    assert!(shutdown.is_triggered());
}
