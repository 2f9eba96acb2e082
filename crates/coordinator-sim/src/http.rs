//! The simulator's HTTP endpoint: `/metrics` (Prometheus text), `/health` and `/status`
//! (JSON) as in [`service::http`], plus the settlement chain's `POST /burn` and
//! `GET /ledger`.
//!
//! The three shared routes are [`service::http::routes`] over [`SimReporter`]; only
//! `/burn` writes, in one transaction of its own.

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

/// Shared state of the HTTP endpoint: [`service::http`]'s, plus the ledger's.
#[derive(Debug)]
pub struct HttpState {
    common: service::http::HttpState<SimReporter>,
    sim: Arc<SimState>,
}

#[derive(Debug)]
struct SimState {
    db: Db,
    burner: Burner,
}

impl HttpState {
    /// Registers the task and message gauges ([`service::http`]), then the simulator's,
    /// next to those already in `registry`.
    pub fn new(db: Db, burner: Burner, registry: Registry, tasks: Vec<NamedStats>) -> Self {
        let common =
            service::http::HttpState::new(db.clone(), SimReporter::default(), registry, tasks);
        HttpState { common, sim: Arc::new(SimState { db, burner }) }
    }
}

fn error(
    code: StatusCode,
    message: impl std::fmt::Display,
) -> (StatusCode, Json<serde_json::Value>) {
    (code, Json(serde_json::json!({ "error": message.to_string() })))
}

async fn ledger(State(state): State<Arc<SimState>>) -> impl IntoResponse {
    match state.db.read().and_then(|txn| LedgerReport::read(&txn)) {
        Ok(report) => (StatusCode::OK, Json(serde_json::to_value(report).unwrap_or_default())),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn burn(State(state): State<Arc<SimState>>, body: Bytes) -> impl IntoResponse {
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

/// The endpoint's routes: [`service::http::routes`] plus `/ledger` and `POST /burn`.
pub fn router(state: HttpState) -> Router {
    let sim = Router::new()
        .route("/ledger", get(ledger))
        .route("/burn", post(burn))
        .with_state(state.sim);
    service::http::routes(state.common).merge(sim)
}

/// Serves on `listener` until `shutdown` triggers.
pub async fn serve_on(
    listener: TcpListener,
    state: HttpState,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    service::http::serve_router(listener, router(state), shutdown).await
}

/// [`service::run::supervise`] with this endpoint: serves `http` on `listener` and waits
/// for every task; the first fatal failure triggers `shutdown` and is returned.
pub async fn supervise(
    tasks: JoinSet<Result<(), FatalError>>,
    listener: TcpListener,
    http: HttpState,
    shutdown: Shutdown,
) -> Result<(), service::run::Stopped> {
    service::run::supervise_router(tasks, listener, router(http), shutdown).await
}
