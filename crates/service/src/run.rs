//! Running a daemon's tasks next to its HTTP endpoint until shutdown.

use task::{FatalError, Shutdown};
use tokio::{net::TcpListener, task::JoinSet};

use axum::Router;

use crate::http::{routes, serve_router, HttpState, Reporter};

/// Why a daemon stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum Stopped {
    /// A task failed fatally.
    #[error(transparent)]
    Task(#[from] FatalError),
    /// The HTTP endpoint failed.
    #[error("HTTP endpoint: {0}")]
    Http(#[source] std::io::Error),
}

/// Serves `http` on `listener` and waits for every task in `tasks`. The first task to fail
/// fatally triggers `shutdown`, which stops the others between iterations; the first
/// failure is returned. A task's panic is a bug: it is propagated.
pub async fn supervise<R: Reporter>(
    tasks: JoinSet<Result<(), FatalError>>,
    listener: TcpListener,
    http: HttpState<R>,
    shutdown: Shutdown,
) -> Result<(), Stopped> {
    supervise_router(tasks, listener, routes(http), shutdown).await
}

/// [`supervise`] with any router (e.g. [`routes`] merged with a daemon's own).
pub async fn supervise_router(
    tasks: JoinSet<Result<(), FatalError>>,
    listener: TcpListener,
    app: Router,
    shutdown: Shutdown,
) -> Result<(), Stopped> {
    supervise_recording(tasks, listener, app, shutdown, |_, _| {}).await
}

/// [`supervise_router`], calling `first_failure` once every task has stopped (so nothing
/// else writes), before the HTTP endpoint's graceful shutdown (which a client can hold up),
/// with the first fatal error or panic and whether it was a panic. A panic is passed as a
/// [`FatalError`] of task `"(a task panicked)"` with its message, and re-raised after the
/// HTTP endpoint stopped.
pub async fn supervise_recording(
    mut tasks: JoinSet<Result<(), FatalError>>,
    listener: TcpListener,
    app: Router,
    shutdown: Shutdown,
    first_failure: impl FnOnce(&FatalError, bool),
) -> Result<(), Stopped> {
    let http_shutdown = shutdown.clone();
    let http = tokio::spawn(async move { serve_router(listener, app, http_shutdown).await });

    let mut result = Ok(());
    // The first failure, fatal or panic, in the order they came.
    let mut first_panic: Option<FatalError> = None;
    let mut payload: Option<Box<dyn std::any::Any + Send>> = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(fatal)) => {
                tracing::error!(error = %fatal, "stopping: a task failed fatally");
                shutdown.trigger();
                result = result.and(Err(Stopped::Task(fatal)));
            }
            // A panic is a bug: stop everything, then let it propagate.
            Err(e) if e.is_panic() => {
                shutdown.trigger();
                let panic = e.into_panic();
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                tracing::error!(message, "stopping: a task panicked");
                if payload.is_none() && result.is_ok() {
                    first_panic = Some(FatalError {
                        task: "(a task panicked)".into(),
                        source: format!("panicked: {message}").into(),
                    });
                }
                payload.get_or_insert(panic);
            }
            Err(_) => {}
        }
    }
    shutdown.trigger();
    match (&first_panic, &result) {
        (Some(fatal), _) => first_failure(fatal, true),
        (None, Err(Stopped::Task(fatal))) => first_failure(fatal, false),
        _ => {}
    }
    if let Ok(Err(source)) = http.await {
        result = result.and(Err(Stopped::Http(source)));
    }
    if let Some(payload) = payload {
        std::panic::resume_unwind(payload);
    }
    tracing::info!("stopped");
    result
}
