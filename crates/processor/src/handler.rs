//! The task that consumes the inbox.

use bus::{Mailbox, Received, SendError, INBOX};
use db::{Db, Queue};
use messages::{CoordinatorMessage, Party, ProcessorMessage, Status, PROTOCOL_VERSION};
use primitives::codec::Versioned;
use task::{Task, TaskError};

use crate::db_error;

/// Messages whose handlers arrive with later capabilities (key generation, signing,
/// settlement). They are kept, in order, never dropped.
pub const DEFERRED: Queue<Received> = Queue::new("processor/v1/deferred");

/// Pops one inbox message per iteration and handles it in the same transaction. Run it
/// with the bus sender among its dependents, so replies go out at once.
#[derive(Debug)]
pub struct InboxHandler {
    db: Db,
    mailbox: Mailbox,
}

impl InboxHandler {
    /// A handler replying through `mailbox`.
    pub fn new(db: Db, mailbox: Mailbox) -> Self {
        InboxHandler { db, mailbox }
    }
}

/// Queueing a reply failed: an oversized message is a bug in this code, so fatal.
fn send_error(e: SendError) -> TaskError {
    match e {
        SendError::Db(e) => db_error(e),
        e @ SendError::TooLarge { .. } => TaskError::fatal(e),
    }
}

impl Task for InboxHandler {
    fn name(&self) -> &str {
        "inbox-handler"
    }

    async fn run_iteration(&mut self) -> Result<bool, TaskError> {
        let mut txn = self.db.write().map_err(db_error)?;
        let Some((_, received)) = INBOX.pop(&mut txn).map_err(db_error)? else {
            return Ok(false);
        };
        // The mailbox only lets the coordinator talk to a processor.
        if received.sender != Party::Coordinator {
            return Err(TaskError::fatal(format!(
                "inbox holds a message from {}",
                received.sender
            )));
        }
        // Validated when it entered the inbox: failing now means the DB is corrupt.
        let message = received.coordinator_message().map_err(TaskError::fatal)?;
        match message {
            CoordinatorMessage::Status(Status::Ping { nonce }) => {
                let pong = ProcessorMessage::Status(Status::Pong {
                    nonce,
                    protocol_version: u32::from(PROTOCOL_VERSION),
                });
                self.mailbox
                    .send(&mut txn, Party::Coordinator, pong.encode())
                    .map_err(send_error)?;
            }
            CoordinatorMessage::Status(Status::Pong { .. }) => {}
            other => {
                tracing::warn!(intent = %received.intent.to_hex(), kind = kind(&other), "no handler yet; message deferred");
                DEFERRED.push(&mut txn, &received).map_err(db_error)?;
            }
        }
        // The runner wakes the bus sender (a dependent) after this progress.
        txn.commit().map_err(db_error)?;
        Ok(true)
    }
}

fn kind(message: &CoordinatorMessage) -> &'static str {
    match message {
        CoordinatorMessage::KeyGen(_) => "key_gen",
        CoordinatorMessage::Sign(_) => "sign",
        CoordinatorMessage::Settlement(_) => "settlement",
        CoordinatorMessage::Status(_) => "status",
    }
}
