//! The two tasks that drive the simulator: the inbox handler and the timer (key-generation
//! rounds and signing attempts).

use std::sync::Arc;

use bus::Received;
use db::{Db, Queue};
use messages::{Party, ProcessorMessage, Status, PROTOCOL_VERSION};
use primitives::codec::Versioned;
use task::{Task, TaskError};

use crate::{
    keygen::{KeyGenCoordinator, SimError},
    signing::SignCoordinator,
};

/// Messages kept by earlier versions, which had no signing handlers. The inbox handler
/// handles them, in order, before the inbox.
pub const DEFERRED: Queue<Received> = Queue::new("coordinator-sim/v1/deferred");

/// Maps a key-generation error to its task error class.
pub fn sim_error(e: SimError) -> TaskError {
    if e.is_fatal() {
        TaskError::fatal(e)
    } else {
        TaskError::transient(e)
    }
}

/// Pops one inbox message per iteration and handles it in the same transaction, which
/// also holds the messages it causes. Run it with the bus sender among its dependents.
#[derive(Debug)]
pub struct InboxHandler {
    db: Db,
    keygen: Arc<KeyGenCoordinator>,
    sign: Arc<SignCoordinator>,
}

impl InboxHandler {
    /// A handler feeding `keygen` and `sign`.
    pub fn new(db: Db, keygen: Arc<KeyGenCoordinator>, sign: Arc<SignCoordinator>) -> Self {
        InboxHandler { db, keygen, sign }
    }
}

/// Pops the oldest deferred message, else the oldest inbox message, in a new write
/// transaction.
fn pop(db: &Db) -> Result<Option<(db::WriteTxn, Received)>, TaskError> {
    let mut txn = db.write()?;
    if let Some((_, received)) = DEFERRED.pop(&mut txn)? {
        return Ok(Some((txn, received)));
    }
    drop(txn);
    service::pop_inbox(db)
}

impl Task for InboxHandler {
    fn name(&self) -> &str {
        "inbox-handler"
    }

    async fn run_iteration(&mut self) -> Result<bool, TaskError> {
        let Some((mut txn, received)) = pop(&self.db)? else {
            return Ok(false);
        };
        // The mailbox pins processor keys only and refuses coordinator-to-coordinator.
        if received.sender == Party::Coordinator {
            return Err(TaskError::fatal("inbox holds a message from the coordinator"));
        }
        // Validated when it entered the inbox: failing now means the DB is corrupt.
        let message = received.processor_message().map_err(TaskError::fatal)?;
        match message {
            ProcessorMessage::KeyGen(response) => {
                let outcome =
                    self.keygen.handle(&mut txn, received.sender, &response).map_err(sim_error)?;
                tracing::debug!(sender = %received.sender, ?outcome, "key-generation message handled");
            }
            ProcessorMessage::Status(Status::Ping { nonce }) => {
                let pong = messages::CoordinatorMessage::Status(Status::Pong {
                    nonce,
                    protocol_version: u32::from(PROTOCOL_VERSION),
                });
                self.keygen
                    .mailbox()
                    .send(&mut txn, received.sender, pong.encode())
                    .map_err(|e| sim_error(SimError::Send(e)))?;
            }
            ProcessorMessage::Status(Status::Pong { .. }) => {}
            ProcessorMessage::Sign(response) => {
                let outcome = self
                    .sign
                    .handle_sign(&mut txn, received.sender, &response)
                    .map_err(sim_error)?;
                tracing::debug!(sender = %received.sender, ?outcome, "signing message handled");
            }
            ProcessorMessage::Batch(report) => {
                let outcome = self
                    .sign
                    .handle_batch(&mut txn, received.sender, &report)
                    .map_err(sim_error)?;
                tracing::debug!(sender = %received.sender, ?outcome, "Batch message handled");
            }
            ProcessorMessage::Settlement(report) => {
                let outcome = self
                    .sign
                    .handle_settlement(&mut txn, received.sender, &report)
                    .map_err(sim_error)?;
                tracing::debug!(sender = %received.sender, ?outcome, "settlement report handled");
            }
        }
        txn.commit()?;
        Ok(true)
    }
}

/// Restarts key-generation attempts whose round is past its deadline, and reattempts
/// signing attempts without progress. Its idle poll is its tick: run it with an idle poll
/// well below both timeouts.
#[derive(Debug)]
pub struct TimeoutTask {
    db: Db,
    keygen: Arc<KeyGenCoordinator>,
    sign: Arc<SignCoordinator>,
}

impl TimeoutTask {
    /// A timer for `keygen`'s rounds and `sign`'s attempts.
    pub fn new(db: Db, keygen: Arc<KeyGenCoordinator>, sign: Arc<SignCoordinator>) -> Self {
        TimeoutTask { db, keygen, sign }
    }
}

impl Task for TimeoutTask {
    fn name(&self) -> &str {
        "timeouts"
    }

    async fn run_iteration(&mut self) -> Result<bool, TaskError> {
        // Look first without the writer lock: almost every tick finds nothing due.
        let read = self.db.read()?;
        let keygen_due = self.keygen.timeout_due(&read).map_err(sim_error)?;
        let sign_due = self.sign.timeout_due(&read).map_err(sim_error)?;
        drop(read);
        if !keygen_due && !sign_due {
            return Ok(false);
        }
        let mut txn = self.db.write()?;
        let mut changed = false;
        if keygen_due {
            changed |= self.keygen.check_timeouts(&mut txn).map_err(sim_error)?;
        }
        if sign_due {
            changed |= self.sign.check_timeouts(&mut txn).map_err(sim_error)?;
        }
        if !changed {
            return Ok(false);
        }
        txn.commit()?;
        Ok(true)
    }
}
