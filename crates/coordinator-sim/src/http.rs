//! `/metrics` (Prometheus text), `/health` and `/status` (JSON). Mirrors
//! `crates/processor/src/http.rs`, with the simulator's own report.

use std::sync::Arc;

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use db::Db;
use prometheus_client::{
    encoding::text::encode,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use task::TaskStats;

use crate::status::StatusReport;

/// A task's name and its live statistics.
pub type NamedStats = (String, Arc<TaskStats>);

/// A task with this many consecutive failures makes `/health` report 503.
pub const UNHEALTHY_AFTER_FAILURES: u32 = 3;

type Labels = Vec<(String, String)>;

/// Shared state of the HTTP endpoint.
#[derive(Debug)]
pub struct HttpState {
    db: Db,
    registry: Registry,
    tasks: Vec<NamedStats>,
    iterations: Family<Labels, Gauge>,
    errors: Family<Labels, Gauge>,
    failing: Family<Labels, Gauge>,
    inbox: Gauge,
    outbox: Gauge,
    deferred: Gauge,
    sets: Family<Labels, Gauge>,
}

impl HttpState {
    /// Registers the simulator's gauges next to those already in `registry`.
    pub fn new(db: Db, mut registry: Registry, tasks: Vec<NamedStats>) -> Self {
        let state = HttpState {
            db,
            tasks,
            iterations: Family::default(),
            errors: Family::default(),
            failing: Family::default(),
            inbox: Gauge::default(),
            outbox: Gauge::default(),
            deferred: Gauge::default(),
            sets: Family::default(),
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
        registry.register("keygen_sets", "Sets by key-generation stage", state.sets.clone());
        HttpState { registry, ..state }
    }

    fn refresh(&self) -> Result<StatusReport, db::DbError> {
        for (name, stats) in &self.tasks {
            let l = vec![("task".to_string(), name.clone())];
            self.iterations.get_or_create(&l).set(stats.iterations() as i64);
            self.errors.get_or_create(&l).set(stats.transient_errors() as i64);
            self.failing.get_or_create(&l).set(i64::from(stats.consecutive_failures()));
        }
        let report = StatusReport::read(&self.db.read()?)?;
        self.inbox.set(report.inbox_pending as i64);
        self.outbox.set(report.outbox_pending as i64);
        self.deferred.set(report.deferred as i64);
        for stage in ["commitments", "shares", "key_pairs", "confirmed", "failed"] {
            let count = report.sets.iter().filter(|s| s.stage == stage).count();
            self.sets
                .get_or_create(&vec![("stage".to_string(), stage.to_string())])
                .set(count as i64);
        }
        Ok(report)
    }
}

async fn metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
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

async fn health(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
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

async fn status(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    match state.refresh() {
        Ok(report) => (StatusCode::OK, Json(serde_json::to_value(report).unwrap_or_default())),
        Err(e) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": e.to_string() })))
        }
    }
}

/// Serves on `listener` until `shutdown` triggers.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: task::Shutdown,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/status", get(status))
        .with_state(Arc::new(state));
    let listen = listener.local_addr()?;
    tracing::info!(%listen, "serving /metrics, /health and /status");
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.wait().await }).await
}
