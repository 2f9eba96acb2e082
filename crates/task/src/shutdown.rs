//! Graceful shutdown, shared by every runner of a process.

use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Inner {
    triggered: AtomicBool,
    notify: Notify,
}

/// A one-way shutdown switch.
///
/// Cloneable; all clones share the switch. Once [`Shutdown::trigger`]ed it stays
/// triggered. Runners observe it between iterations only, never in the middle of one.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<Inner>);

impl Shutdown {
    /// A switch that has not been triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every runner holding a clone to stop. Idempotent.
    pub fn trigger(&self) {
        self.0.triggered.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// Whether [`Shutdown::trigger`] has been called.
    pub fn is_triggered(&self) -> bool {
        self.0.triggered.load(Ordering::SeqCst)
    }

    /// Resolves once the switch is triggered (at once if it already is).
    pub async fn wait(&self) {
        let mut notified = pin!(self.0.notify.notified());
        loop {
            // Register before checking the flag, so a trigger in between is not missed
            // (`notify_waiters` stores no permit).
            notified.as_mut().enable();
            if self.is_triggered() {
                return;
            }
            notified.as_mut().await;
            notified.set(self.0.notify.notified());
        }
    }

    /// Triggers this switch on SIGINT or SIGTERM (Ctrl-C only on non-Unix), logging which.
    ///
    /// The handlers are installed before this returns, so a signal sent afterwards is never
    /// missed. Installing them replaces the default action for the rest of the process:
    /// the binary MUST exit on its own once its runners have stopped. Later signals are
    /// logged and otherwise ignored. Fails if called outside a Tokio runtime or if the
    /// handlers cannot be installed.
    pub fn trigger_on_signals(&self) -> io::Result<()> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let shutdown = self.clone();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut interrupt = signal(SignalKind::interrupt())?;
            let mut terminate = signal(SignalKind::terminate())?;
            runtime.spawn(async move {
                loop {
                    let name = tokio::select! {
                        Some(()) = interrupt.recv() => "SIGINT",
                        Some(()) = terminate.recv() => "SIGTERM",
                        else => return,
                    };
                    shutdown.signalled(name);
                }
            });
        }
        #[cfg(not(unix))]
        {
            runtime.spawn(async move {
                while tokio::signal::ctrl_c().await.is_ok() {
                    shutdown.signalled("Ctrl-C");
                }
            });
        }
        Ok(())
    }

    fn signalled(&self, signal: &str) {
        if self.is_triggered() {
            tracing::warn!(signal, "received signal while already shutting down");
        } else {
            tracing::info!(signal, "received signal, shutting down");
            self.trigger();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn wait_resolves_on_trigger_and_after() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.is_triggered());
        let waiter = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { shutdown.wait().await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished());
        shutdown.clone().trigger();
        tokio::time::timeout(Duration::from_secs(1), waiter).await.expect("woken").expect("ok");
        assert!(shutdown.is_triggered());
        // Already triggered: resolves at once, for every clone.
        tokio::time::timeout(Duration::from_secs(1), shutdown.clone().wait())
            .await
            .expect("immediate");
    }

    #[tokio::test(start_paused = true)]
    async fn wait_without_trigger_pends() {
        let shutdown = Shutdown::new();
        assert!(tokio::time::timeout(Duration::from_secs(3600), shutdown.wait()).await.is_err());
    }

    #[test]
    fn signals_need_a_runtime() {
        assert!(Shutdown::new().trigger_on_signals().is_err());
    }
}
