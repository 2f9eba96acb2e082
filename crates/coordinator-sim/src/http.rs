//! The simulator's HTTP endpoint: `/metrics` (Prometheus text), `/health` and `/status`
//! (JSON) as in [`service::http`], plus the settlement chain's `POST /burn` and
//! `GET /ledger`.
//!
//! `service::http` builds its router privately, so the three shared routes are served
//! here by the same logic over the same [`Reporter`]; only `/burn` writes, in one
//! transaction of its own.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
    Json, Router,
};
use db::{Db, DbError, ReadTxn};
use prometheus_client::{
    encoding::text::encode,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use service::http::{Labels, Pending, Reporter};
pub use service::http::{NamedStats, UNHEALTHY_AFTER_FAILURES};
use task::{FatalError, Shutdown};
use tokio::{net::TcpListener, task::JoinSet};

use crate::{
    ledger::{BurnRequest, Burner, LedgerReport},
    status::StatusReport,
};

/// Reads the simulator's [`StatusReport`] for `/status` and `/metrics`.
#[derive(Debug, Default)]
pub struct SimReporter {
    sets: Family<Labels, Gauge>,
    signing: Family<Labels, Gauge>,
}

impl Reporter for SimReporter {
    type Report = StatusReport;

    fn register(&self, registry: &mut Registry) {
        registry.register("keygen_sets", "Sets by key-generation stage", self.sets.clone());
        registry.register(
            "sign_items",
            "Signing items in progress, by stage",
            self.signing.clone(),
        );
    }

    fn read(&self, txn: &ReadTxn) -> Result<StatusReport, DbError> {
        let report = StatusReport::read(txn)?;
        for stage in ["commitments", "shares", "key_pairs", "confirmed", "failed"] {
            let count = report.sets.iter().filter(|s| s.stage == stage).count();
            self.sets
                .get_or_create(&vec![("stage".to_string(), stage.to_string())])
                .set(count as i64);
        }
        for stage in ["preprocesses", "shares", "completing"] {
            let count = report
                .sets
                .iter()
                .flat_map(|s| &s.signing.in_progress)
                .filter(|i| i.stage == stage)
                .count();
            self.signing
                .get_or_create(&vec![("stage".to_string(), stage.to_string())])
                .set(count as i64);
        }
        Ok(report)
    }

    fn pending(&self, report: &StatusReport) -> Pending {
        Pending {
            inbox: report.inbox_pending,
            outbox: report.outbox_pending,
            deferred: report.deferred,
        }
    }
}

/// Shared state of the HTTP endpoint.
#[derive(Debug)]
pub struct HttpState {
    db: Db,
    reporter: SimReporter,
    burner: Burner,
    registry: Registry,
    tasks: Vec<NamedStats>,
    iterations: Family<Labels, Gauge>,
    errors: Family<Labels, Gauge>,
    failing: Family<Labels, Gauge>,
    inbox: Gauge,
    outbox: Gauge,
    deferred: Gauge,
}

impl HttpState {
    /// Registers the task and message gauges (named as [`service::http`] names them),
    /// then the simulator's, next to those already in `registry`.
    pub fn new(db: Db, burner: Burner, mut registry: Registry, tasks: Vec<NamedStats>) -> Self {
        let state = HttpState {
            db,
            reporter: SimReporter::default(),
            burner,
            registry: Registry::default(),
            tasks,
            iterations: Family::default(),
            errors: Family::default(),
            failing: Family::default(),
            inbox: Gauge::default(),
            outbox: Gauge::default(),
            deferred: Gauge::default(),
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
            "Messages kept by earlier versions, not yet handled",
            state.deferred.clone(),
        );
        state.reporter.register(&mut registry);
        HttpState { registry, ..state }
    }

    fn refresh(&self) -> Result<StatusReport, DbError> {
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

fn error(
    code: StatusCode,
    message: impl std::fmt::Display,
) -> (StatusCode, Json<serde_json::Value>) {
    (code, Json(serde_json::json!({ "error": message.to_string() })))
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
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn ledger(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    match state.db.read().and_then(|txn| LedgerReport::read(&txn)) {
        Ok(report) => (StatusCode::OK, Json(serde_json::to_value(report).unwrap_or_default())),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn burn(State(state): State<Arc<HttpState>>, body: Bytes) -> impl IntoResponse {
    let request: BurnRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"network\", \"account\", \"to\", \"amount\"}}: {e}"),
            )
        }
    };
    // A write transaction blocks: keep it off the async workers.
    let (db, burner) = (state.db.clone(), state.burner.clone());
    let result = tokio::task::spawn_blocking(move || burner.burn(&db, &request)).await;
    match result {
        Ok(Ok(receipt)) => {
            (StatusCode::OK, Json(serde_json::to_value(receipt).unwrap_or_default()))
        }
        Ok(Err(e)) if e.is_bad_request() => {
            tracing::info!(error = %e, "burn refused");
            error(StatusCode::BAD_REQUEST, e)
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "burn failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, e)
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// The endpoint's routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/ledger", get(ledger))
        .route("/burn", post(burn))
        .with_state(Arc::new(state))
}

/// Serves on `listener` until `shutdown` triggers.
pub async fn serve_on(
    listener: TcpListener,
    state: HttpState,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let listen = listener.local_addr()?;
    tracing::info!(%listen, "serving /metrics, /health, /status, /ledger and POST /burn");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}

/// [`service::run::supervise`] with this endpoint: serves `http` on `listener` and waits
/// for every task; the first fatal failure triggers `shutdown` and is returned.
pub async fn supervise(
    mut tasks: JoinSet<Result<(), FatalError>>,
    listener: TcpListener,
    http: HttpState,
    shutdown: Shutdown,
) -> Result<(), service::run::Stopped> {
    use service::run::Stopped;
    let http_shutdown = shutdown.clone();
    let http = tokio::spawn(async move { serve_on(listener, http, http_shutdown).await });
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
