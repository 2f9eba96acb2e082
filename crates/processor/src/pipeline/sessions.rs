//! One pipeline per live session (docs/rotation.md §1): during a key rotation a
//! validator in both the outgoing and the incoming set runs two, side by side.
//!
//! - [`Pipelines`] keeps the live sessions' [`Pipeline`]s (registered in [`LIVE`]) and
//!   routes the coordinator's requests to the one they name, with the handler's
//!   transaction scoped to that session for the call.
//! - [`PerSession`] runs one task (scanner, acknowledger, publisher) per live session,
//!   each over a database handle scoped to its session, so the pipeline's code is the
//!   same for every session and two sessions never see each other's state.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use db::{Db, WriteTxn};
use messages::{Participant, Session};
use signers::Signers;
use task::{Task, TaskError};

use super::state::{Ack, LIVE, RETIRED};
use super::{acknowledge, rotation, settings_of, sign, Handle, Pipeline, PipelineNetwork, Refusal};

/// The live sessions' pipelines.
pub struct Pipelines<N: PipelineNetwork> {
    /// What every session's pipeline shares (its `session` is not used).
    base: Pipeline<N>,
    live: Arc<Mutex<BTreeMap<u32, Pipeline<N>>>>,
    /// The [`PerSession`] runners over these pipelines, and, per retired session, how
    /// many of them have stopped its task: the last one deletes its state.
    runners: Arc<Mutex<Runners>>,
}

/// How many [`PerSession`] runners there are, and per retired session how many stopped
/// its task.
type Runners = (usize, BTreeMap<u32, usize>);

impl<N: PipelineNetwork> Clone for Pipelines<N> {
    fn clone(&self) -> Self {
        Pipelines {
            base: self.base.clone(),
            live: self.live.clone(),
            runners: self.runners.clone(),
        }
    }
}

impl<N: PipelineNetwork> std::fmt::Debug for Pipelines<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipelines").field("sessions", &self.sessions()).finish_non_exhaustive()
    }
}

impl<N: PipelineNetwork> Pipelines<N> {
    /// The pipelines of every session [`LIVE`] lists, over `base`'s network and bus.
    pub fn load(base: Pipeline<N>, db: &Db) -> Result<Self, TaskError> {
        let pipelines = Pipelines { base, live: Arc::default(), runners: Arc::default() };
        for (session, me) in LIVE.iter(&db.read()?)? {
            pipelines.start(Session(session), me)?;
        }
        Ok(pipelines)
    }

    /// What every session shares.
    pub fn base(&self) -> &Pipeline<N> {
        &self.base
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<u32, Pipeline<N>>>, TaskError> {
        self.live.lock().map_err(|_| TaskError::fatal("pipelines lock poisoned"))
    }

    /// Starts `session`'s pipeline (its signers), if not running.
    fn start(&self, session: Session, me: Participant) -> Result<(), TaskError> {
        if me == 0 {
            return Err(TaskError::fatal("participant index 0"));
        }
        let mut live = self.lock()?;
        live.entry(session.0).or_insert_with(|| Pipeline {
            session: session.0,
            signers: Arc::new(Mutex::new(Some(Signers::new(session, me)))),
            ..self.base.clone()
        });
        Ok(())
    }

    /// Stops `session`'s pipeline (retired): its tasks stop at their next iteration.
    pub fn stop(&self, session: u32) -> Result<(), TaskError> {
        self.lock()?.remove(&session);
        Ok(())
    }

    fn runners(&self) -> Result<std::sync::MutexGuard<'_, Runners>, TaskError> {
        self.runners.lock().map_err(|_| TaskError::fatal("pipelines lock poisoned"))
    }

    /// One more [`PerSession`] runner.
    fn register_runner(&self) -> Result<(), TaskError> {
        self.runners()?.0 += 1;
        Ok(())
    }

    /// A runner stopped retired `session`'s task: once every runner has, none writes to
    /// its scope any more, and its state is deleted.
    fn released(&self, session: u32, db: &Db) -> Result<(), TaskError> {
        let last = {
            let mut runners = self.runners()?;
            let total = runners.0;
            let count = runners.1.entry(session).or_default();
            *count += 1;
            *count >= total
        };
        if last {
            rotation::prune(db, session)?;
        }
        Ok(())
    }

    /// The pipeline of `session`, if live.
    pub fn get(&self, session: u32) -> Option<Pipeline<N>> {
        self.live.lock().ok()?.get(&session).cloned()
    }

    /// The live sessions, ascending.
    pub fn sessions(&self) -> Vec<u32> {
        self.live.lock().map(|l| l.keys().copied().collect()).unwrap_or_default()
    }

    /// Runs `f` with `session`'s pipeline and `txn` scoped to that session, restoring the
    /// transaction's scope afterwards.
    fn scoped<T>(
        &self,
        txn: &mut WriteTxn,
        session: u32,
        f: impl FnOnce(&Pipeline<N>, &mut WriteTxn) -> Result<Result<T, Refusal>, TaskError>,
    ) -> Result<Result<T, Refusal>, TaskError> {
        let Some(pipeline) = self.get(session) else {
            return Ok(Err(Refusal::UnknownSession { got: session, live: self.sessions() }));
        };
        let previous = txn.set_scope(Some(session));
        let result = f(&pipeline, txn);
        txn.set_scope(previous);
        result
    }
}

impl<N: PipelineNetwork> Handle for Pipelines<N> {
    fn sign(
        &self,
        txn: &mut WriteTxn,
        request: &messages::SignRequest,
    ) -> Result<Result<(), Refusal>, TaskError> {
        use messages::SignRequest::*;
        let session = match request {
            Preprocesses { id, .. } | Shares { id, .. } | Reattempt { id } => id.session,
            Completed { session, .. } => *session,
        };
        self.scoped(txn, session.0, |p, txn| sign::sign(p, txn, request))
    }

    fn acknowledge(
        &self,
        txn: &mut WriteTxn,
        session: Session,
        ack: Ack,
    ) -> Result<Result<(), Refusal>, TaskError> {
        self.scoped(txn, session.0, |p, txn| acknowledge::receive(p, txn, ack))
    }

    fn rotate(
        &self,
        txn: &mut WriteTxn,
        session: Session,
        successor: Session,
        successor_key: &[u8],
        close_block: u64,
    ) -> Result<Result<(), Refusal>, TaskError> {
        self.scoped(txn, session.0, |p, txn| {
            rotation::receive(p, txn, successor.0, successor_key, close_block)
        })
    }

    fn proposal(&self) -> Option<u64> {
        self.base.proposal.get()
    }

    fn settings(&self) -> messages::ChainSettings {
        settings_of(self.base.network.params())
    }

    fn activate(&self, session: Session, me: Participant) -> Result<(), TaskError> {
        self.start(session, me)
    }
}

/// A pipeline task that runs for one session, over a database handle scoped to it.
pub trait SessionTask<N: PipelineNetwork>: Task + Send {
    /// The task of `pipeline`'s session; `db` is scoped to it.
    fn for_session(db: Db, pipeline: Pipeline<N>) -> Self;

    /// Run while no session is live (the scanner keeps this processor's activation
    /// proposal current). Returns whether it made progress.
    fn idle(
        _pipelines: &Pipelines<N>,
    ) -> impl std::future::Future<Output = Result<bool, TaskError>> + Send {
        async { Ok(false) }
    }
}

/// Runs a [`SessionTask`] for every live session: each iteration runs one iteration of
/// each session's task, oldest session first. A session that stops being live (retired)
/// has its task dropped.
pub struct PerSession<N: PipelineNetwork, T: SessionTask<N>> {
    name: &'static str,
    db: Db,
    pipelines: Pipelines<N>,
    make: Box<dyn Fn(Db, Pipeline<N>) -> T + Send + Sync>,
    tasks: BTreeMap<u32, T>,
}

impl<N: PipelineNetwork, T: SessionTask<N>> std::fmt::Debug for PerSession<N, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerSession")
            .field("name", &self.name)
            .field("sessions", &self.tasks.keys())
            .finish_non_exhaustive()
    }
}

impl<N: PipelineNetwork, T: SessionTask<N>> PerSession<N, T> {
    /// `name`'s task for each of `pipelines`' sessions.
    pub fn new(name: &'static str, db: Db, pipelines: Pipelines<N>) -> Self {
        Self::with(name, db, pipelines, T::for_session)
    }

    /// As [`PerSession::new`], each session's task made by `make` (tests: other settings).
    pub fn with(
        name: &'static str,
        db: Db,
        pipelines: Pipelines<N>,
        make: impl Fn(Db, Pipeline<N>) -> T + Send + Sync + 'static,
    ) -> Self {
        // Counted so that a retired session's state is deleted once every runner stopped
        // its task (a poisoned lock only means it is deleted at the next start).
        let _ = pipelines.register_runner();
        PerSession { name, db, pipelines, make: Box::new(make), tasks: BTreeMap::new() }
    }
}

impl<N: PipelineNetwork, T: SessionTask<N>> Task for PerSession<N, T> {
    fn name(&self) -> &str {
        self.name
    }

    async fn run_iteration(&mut self) -> Result<bool, TaskError> {
        // A session retired (by another task's commit) stops here, between iterations of
        // its task; once every runner stopped it, its state is deleted.
        for (session, _) in RETIRED.iter(&self.db.read()?)? {
            if self.pipelines.get(session).is_some() {
                self.pipelines.stop(session)?;
            }
            if self.tasks.remove(&session).is_some() {
                self.pipelines.released(session, &self.db)?;
            }
        }
        let sessions = self.pipelines.sessions();
        if sessions.is_empty() {
            return T::idle(&self.pipelines).await;
        }
        // Every session's task runs, whatever another's did: one session failing (a
        // transaction its node refuses, say) holds back no other. The first error is
        // returned once all ran.
        let (mut progress, mut first_error) = (false, None);
        for session in sessions {
            let Some(pipeline) = self.pipelines.get(session) else { continue };
            let (db, make) = (&self.db, &self.make);
            let task =
                self.tasks.entry(session).or_insert_with(|| make(db.scoped(session), pipeline));
            match task.run_iteration().await {
                Ok(p) => progress |= p,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(progress),
        }
    }
}
