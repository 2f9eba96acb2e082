//! The two tasks that move a [`Mailbox`] over a [`Transport`].

use std::{collections::BTreeMap, time::Duration};

use db::Db;
use task::{Task, TaskError, TaskWaker};
use tokio::time::Instant;

use crate::{
    mailbox::{Mailbox, Receipt},
    transport::{Subscription, Transport},
};

/// Receives deliveries for one party: authenticate, commit to the inbox, then ack to the
/// broker, then ack end to end. One delivery per iteration.
#[derive(Debug)]
pub struct ReceiverTask<T: Transport> {
    name: String,
    db: Db,
    transport: T,
    mailbox: Mailbox,
    subscription: Option<T::Subscription>,
    wait: Duration,
    /// The inbox's consumer, woken when messages are delivered.
    consumer: TaskWaker,
}

impl<T: Transport> ReceiverTask<T> {
    /// A receiver that waits up to `wait` per iteration and wakes `consumer` (the task
    /// that pops [`crate::INBOX`]) when messages arrive.
    pub fn new(
        db: Db,
        transport: T,
        mailbox: Mailbox,
        wait: Duration,
        consumer: TaskWaker,
    ) -> Self {
        let name = format!("bus-receiver-{}", mailbox.me());
        ReceiverTask { name, db, transport, mailbox, subscription: None, wait, consumer }
    }
}

impl<T: Transport> Task for ReceiverTask<T>
where
    T::Subscription: std::fmt::Debug,
{
    fn name(&self) -> &str {
        &self.name
    }

    async fn run_iteration(&mut self) -> Result<bool, TaskError> {
        if self.subscription.is_none() {
            let subscription =
                self.transport.subscribe(self.mailbox.me()).await.map_err(TaskError::transient)?;
            self.subscription = Some(subscription);
        }
        let Some(subscription) = self.subscription.as_mut() else { unreachable!("set above") };
        let delivery = match subscription.next(self.wait).await {
            Ok(Some(delivery)) => delivery,
            Ok(None) => return Ok(false),
            Err(e) => {
                // Resubscribe on the next iteration; unacked deliveries come back.
                self.subscription = None;
                return Err(TaskError::transient(e));
            }
        };
        // No write transaction is open across any await: `receive` commits before returning.
        let receipt = self.mailbox.receive(&self.db, &delivery.payload).map_err(|e| {
            if e.is_fatal() {
                TaskError::fatal(e)
            } else {
                TaskError::transient(e)
            }
        })?;
        // Only now is the effect durable: tell the broker.
        delivery.ack().await.map_err(TaskError::transient)?;
        match receipt {
            Receipt::Message { sender, through, delivered } => {
                if delivered > 0 {
                    self.consumer.wake();
                }
                if through > 0 {
                    let (payload, dedup) = self.mailbox.ack_envelope(sender, through);
                    // Best effort: a lost ack only means the sender re-sends, and we re-ack.
                    if let Err(e) = self.transport.publish(sender, dedup, payload).await {
                        tracing::debug!(%sender, through, error = %e, "end-to-end ack not sent");
                    }
                }
            }
            Receipt::Ack { from, through, removed } => {
                tracing::trace!(%from, through, removed, "end-to-end ack");
            }
            Receipt::TooFarAhead { sender } => {
                tracing::debug!(%sender, "message too far ahead of a gap; waiting for a re-send");
            }
            Receipt::Rejected(_) => {}
        }
        Ok(true)
    }
}

/// Publishes the outbox: every entry once at first, and again each `resend_after` until
/// the recipient acknowledges it end to end.
#[derive(Debug)]
pub struct SenderTask<T: Transport> {
    name: String,
    db: Db,
    transport: T,
    mailbox: Mailbox,
    resend_after: Duration,
    /// When each entry was last published, and how many times.
    last_sent: BTreeMap<(u32, u64), (Instant, u32)>,
}

impl<T: Transport> SenderTask<T> {
    /// A sender for `mailbox`'s outbox.
    pub fn new(db: Db, transport: T, mailbox: Mailbox, resend_after: Duration) -> Self {
        let name = format!("bus-sender-{}", mailbox.me());
        SenderTask { name, db, transport, mailbox, resend_after, last_sent: BTreeMap::new() }
    }
}

impl<T: Transport> Task for SenderTask<T> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run_iteration(&mut self) -> Result<bool, TaskError> {
        let pending = {
            let txn = self.db.read().map_err(TaskError::transient)?;
            Mailbox::pending(&txn).map_err(|e| {
                if e.is_fatal() {
                    TaskError::fatal(e)
                } else {
                    TaskError::transient(e)
                }
            })?
        };
        // Forget entries that were acknowledged.
        self.last_sent.retain(|key, _| pending.iter().any(|(k, _)| k == key));
        let now = Instant::now();
        let mut progress = false;
        for (key, outgoing) in pending {
            let sends = match self.last_sent.get(&key) {
                None => 0,
                Some((at, sends)) if now.duration_since(*at) >= self.resend_after => *sends,
                Some(_) => continue,
            };
            // A re-send must get past the broker's dedup window: the first copy may have
            // been delivered and its end-to-end ack lost, in which case the receiver must
            // see it again to re-ack. It deduplicates by sequence and intent.
            // The nonce keeps re-sends after a restart distinct from those before it.
            let dedup_id = if sends == 0 {
                outgoing.dedup_id
            } else {
                let nonce: [u8; 16] = rand::random();
                primitives::hash(b"tc/resend/v1", &[&outgoing.dedup_id, &nonce])
            };
            self.transport
                .publish(outgoing.recipient, dedup_id, outgoing.envelope)
                .await
                .map_err(TaskError::transient)?;
            self.last_sent.insert(key, (now, sends + 1));
            if sends > 0 {
                self.mailbox.metrics().resent.inc();
            } else {
                self.mailbox.metrics().sent.inc();
                progress = true;
            }
        }
        Ok(progress)
    }
}
