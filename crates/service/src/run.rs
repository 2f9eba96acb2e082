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
    mut tasks: JoinSet<Result<(), FatalError>>,
    listener: TcpListener,
    app: Router,
    shutdown: Shutdown,
) -> Result<(), Stopped> {
    let http_shutdown = shutdown.clone();
    let http = tokio::spawn(async move { serve_router(listener, app, http_shutdown).await });

    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(fatal)) => {
                tracing::error!(error = %fatal, "stopping: a task failed fatally");
                shutdown.trigger();
                result = result.and(Err(Stopped::Task(fatal)));
            }
            // A panic is a bug: stop everything and let it propagate.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {}
        }
    }
    shutdown.trigger();
    if let Ok(Err(source)) = http.await {
        result = result.and(Err(Stopped::Http(source)));
    }
    tracing::info!("stopped");
    result
}
