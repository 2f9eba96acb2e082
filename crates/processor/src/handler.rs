//! The task that consumes the inbox.

use bus::{Mailbox, Received, INBOX};
use db::{Db, Queue};
use messages::{CoordinatorMessage, Party, ProcessorMessage, Status, PROTOCOL_VERSION};
use primitives::codec::Versioned;
use task::{Task, TaskError, TaskWaker};

use crate::db_error;

/// Messages whose handlers arrive with later capabilities (key generation, signing,
/// settlement). They are kept, in order, never dropped.
pub const DEFERRED: Queue<Received> = Queue::new("processor/v1/deferred");

/// Pops one inbox message per iteration and handles it in the same transaction.
#[derive(Debug)]
pub struct InboxHandler {
    db: Db,
    mailbox: Mailbox,
    sender: TaskWaker,
}

impl InboxHandler {
    /// A handler replying through `mailbox`, waking `sender` after queueing replies.
    pub fn new(db: Db, mailbox: Mailbox, sender: TaskWaker) -> Self {
        InboxHandler { db, mailbox, sender }
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
        let mut replied = false;
        match message {
            CoordinatorMessage::Status(Status::Ping { nonce }) => {
                let pong = ProcessorMessage::Status(Status::Pong {
                    nonce,
                    protocol_version: u32::from(PROTOCOL_VERSION),
                });
                self.mailbox.send(&mut txn, Party::Coordinator, pong.encode()).map_err(db_error)?;
                replied = true;
            }
            CoordinatorMessage::Status(Status::Pong { .. }) => {}
            other => {
                tracing::warn!(intent = %received.intent.to_hex(), kind = kind(&other), "no handler yet; message deferred");
                DEFERRED.push(&mut txn, &received).map_err(db_error)?;
            }
        }
        txn.commit().map_err(db_error)?;
        if replied {
            self.sender.wake();
        }
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
