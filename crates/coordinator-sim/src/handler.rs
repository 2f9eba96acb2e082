//! The two tasks that drive key generation: the inbox handler and the round timer.

use std::sync::Arc;

use bus::Received;
use db::{Db, Queue};
use messages::{Party, ProcessorMessage, Status, PROTOCOL_VERSION};
use primitives::codec::Versioned;
use task::{Task, TaskError};

use crate::{
    db_error,
    keygen::{KeyGenCoordinator, SimError},
};

/// Messages whose handlers arrive with later capabilities (Batches, signing). They are
/// kept, in order, never dropped.
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
}

impl InboxHandler {
    /// A handler feeding `keygen`.
    pub fn new(db: Db, keygen: Arc<KeyGenCoordinator>) -> Self {
        InboxHandler { db, keygen }
    }
}

impl Task for InboxHandler {
    fn name(&self) -> &str {
        "inbox-handler"
    }

    async fn run_iteration(&mut self) -> Result<bool, TaskError> {
        let Some((mut txn, received)) = service::pop_inbox(&self.db)? else {
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
            ProcessorMessage::Sign(_) | ProcessorMessage::Batch(_) => {
                tracing::warn!(sender = %received.sender, intent = %received.intent.to_hex(), "no handler yet; message deferred");
                DEFERRED.push(&mut txn, &received).map_err(db_error)?;
            }
        }
        txn.commit().map_err(db_error)?;
        Ok(true)
    }
}

/// Restarts attempts whose round is past its deadline. Its idle poll is its tick: run it
/// with an idle poll well below the key-generation timeout.
#[derive(Debug)]
pub struct TimeoutTask {
    db: Db,
    keygen: Arc<KeyGenCoordinator>,
}

impl TimeoutTask {
    /// A timer for `keygen`'s rounds.
    pub fn new(db: Db, keygen: Arc<KeyGenCoordinator>) -> Self {
        TimeoutTask { db, keygen }
    }
}

impl Task for TimeoutTask {
    fn name(&self) -> &str {
        "keygen-timeout"
    }

    async fn run_iteration(&mut self) -> Result<bool, TaskError> {
        // Look first without the writer lock: almost every tick finds nothing due.
        let due = self.keygen.timeout_due(&self.db.read().map_err(db_error)?).map_err(sim_error)?;
        if !due {
            return Ok(false);
        }
        let mut txn = self.db.write().map_err(db_error)?;
        if !self.keygen.check_timeouts(&mut txn).map_err(sim_error)? {
            return Ok(false);
        }
        txn.commit().map_err(db_error)?;
        Ok(true)
    }
}
