//! `/metrics` (Prometheus text), `/health` and `/status` (JSON), for any daemon whose
//! status is read from its database by a [`Reporter`].

use std::sync::Arc;

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use db::{Db, DbError, ReadTxn};
use prometheus_client::{
    encoding::text::encode,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use serde::Serialize;
use task::TaskStats;

/// A task's name and its live statistics.
pub type NamedStats = (String, Arc<TaskStats>);

/// A task with this many consecutive failures makes `/health` report 503.
pub const UNHEALTHY_AFTER_FAILURES: u32 = 3;

/// Label set of the per-task gauges.
pub type Labels = Vec<(String, String)>;

/// Message counts every daemon reports (its bus inbox and outbox, and deferred messages).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    /// Messages received, not yet handled.
    pub inbox: u64,
    /// Messages sent, not yet acknowledged end to end.
    pub outbox: u64,
    /// Messages kept for handlers not yet available.
    pub deferred: u64,
}

/// What a daemon's `/status` reports, and any gauges of its own.
pub trait Reporter: std::fmt::Debug + Send + Sync + 'static {
    /// The `/status` body.
    type Report: Serialize;

    /// Registers the daemon's own gauges; called after the common ones.
    fn register(&self, _registry: &mut Registry) {}

    /// Reads the report in `txn`, updating the daemon's own gauges.
    fn read(&self, txn: &ReadTxn) -> Result<Self::Report, DbError>;

    /// The report's message counts.
    fn pending(&self, report: &Self::Report) -> Pending;
}

/// Shared state of the HTTP endpoint.
#[derive(Debug)]
pub struct HttpState<R> {
    db: Db,
    reporter: R,
    registry: Registry,
    tasks: Vec<NamedStats>,
    iterations: Family<Labels, Gauge>,
    errors: Family<Labels, Gauge>,
    failing: Family<Labels, Gauge>,
    inbox: Gauge,
    outbox: Gauge,
    deferred: Gauge,
}

impl<R: Reporter> HttpState<R> {
    /// Registers the task and message gauges, then `reporter`'s, next to those already in
    /// `registry`.
    pub fn new(db: Db, reporter: R, mut registry: Registry, tasks: Vec<NamedStats>) -> Self {
        let state = HttpState {
            db,
            reporter,
            tasks,
            iterations: Family::default(),
            errors: Family::default(),
            failing: Family::default(),
            inbox: Gauge::default(),
            outbox: Gauge::default(),
            deferred: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("task_iterations", "Iterations run, by task", state.iterations.clone());
        registry.register(
            "task_transient_errors",
            "Transient errors, by task",
            state.errors.clone(),
        );
        registry.register(
            "task_consecutive_failures",
            "Current failure streak, by task",
            state.failing.clone(),
        );
        registry.register(
            "inbox_pending",
            "Messages received, not yet handled",
            state.inbox.clone(),
        );
        registry.register(
            "outbox_pending",
            "Messages sent, not yet acknowledged end to end",
            state.outbox.clone(),
        );
        registry.register(
            "deferred_messages",
            "Messages kept for handlers not yet available",
            state.deferred.clone(),
        );
        state.reporter.register(&mut registry);
        HttpState { registry, ..state }
    }

    fn refresh(&self) -> Result<R::Report, DbError> {
        for (name, stats) in &self.tasks {
            let l = vec![("task".to_string(), name.clone())];
            self.iterations.get_or_create(&l).set(stats.iterations() as i64);
            self.errors.get_or_create(&l).set(stats.transient_errors() as i64);
            self.failing.get_or_create(&l).set(i64::from(stats.consecutive_failures()));
        }
        let report = self.reporter.read(&self.db.read()?)?;
        let pending = self.reporter.pending(&report);
        self.inbox.set(pending.inbox as i64);
        self.outbox.set(pending.outbox as i64);
        self.deferred.set(pending.deferred as i64);
        Ok(report)
    }
}

async fn metrics<R: Reporter>(State(state): State<Arc<HttpState<R>>>) -> impl IntoResponse {
    if let Err(e) = state.refresh() {
        tracing::warn!(error = %e, "metrics: reading the database failed");
    }
    let mut body = String::new();
    match encode(&mut body, &state.registry) {
        Ok(()) => (StatusCode::OK, [("content-type", "text/plain; version=0.0.4")], body),
        Err(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, [("content-type", "text/plain")], e.to_string())
        }
    }
}

async fn health<R: Reporter>(State(state): State<Arc<HttpState<R>>>) -> impl IntoResponse {
    let tasks: Vec<_> = state
        .tasks
        .iter()
        .map(|(name, s)| {
            serde_json::json!({
                "task": name,
                "consecutive_failures": s.consecutive_failures(),
                "last_error": s.last_error(),
            })
        })
        .collect();
    let failing =
        state.tasks.iter().any(|(_, s)| s.consecutive_failures() >= UNHEALTHY_AFTER_FAILURES);
    let db_ok = state.db.read().is_ok();
    let healthy = !failing && db_ok;
    let code = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "database": if db_ok { "ok" } else { "unreadable" },
        "tasks": tasks,
    });
    (code, Json(body))
}

async fn status<R: Reporter>(State(state): State<Arc<HttpState<R>>>) -> impl IntoResponse {
    match state.refresh() {
        Ok(report) => (StatusCode::OK, Json(serde_json::to_value(report).unwrap_or_default())),
        Err(e) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": e.to_string() })))
        }
    }
}

/// The `/metrics`, `/health` and `/status` routes over `state`; a daemon with routes of
/// its own merges them in ([`Router::merge`]) and serves with [`serve_router`].
pub fn routes<R: Reporter>(state: HttpState<R>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::<R>))
        .route("/health", get(health::<R>))
        .route("/status", get(status::<R>))
        .with_state(Arc::new(state))
}

/// Serves [`routes`] on `listener` until `shutdown` triggers.
pub async fn serve_on<R: Reporter>(
    listener: tokio::net::TcpListener,
    state: HttpState<R>,
    shutdown: task::Shutdown,
) -> std::io::Result<()> {
    serve_router(listener, routes(state), shutdown).await
}

/// Serves `app` on `listener` until `shutdown` triggers.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: task::Shutdown,
) -> std::io::Result<()> {
    let listen = listener.local_addr()?;
    tracing::info!(%listen, "serving HTTP");
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.wait().await }).await
}
