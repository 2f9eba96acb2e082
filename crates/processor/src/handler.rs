//! The task that consumes the inbox.

use std::sync::Arc;

use bus::{Mailbox, Received, INBOX};
use db::{Db, Queue, WriteTxn};
use key_gen::{KeyGen, KeyGenError};
use messages::{
    ChainSettings, CoordinatorMessage, KeyGenRequest, KeyGenResponse, Party, ProcessorMessage,
    SettlementEvent, Status, PROTOCOL_VERSION,
};
use primitives::codec::Versioned;
use prometheus_client::metrics::counter::Counter;
use task::{Task, TaskError};

use crate::pipeline::state::{Ack, Active, ACTIVE, LIVE, RETIRED};
use crate::pipeline::{Handle, Refusal};
use messages::Session;

use service::{db_error, send_error};

/// Signing and settlement messages received while there is no `[node]`: kept, in order,
/// and handled first (applied or refused, like any message) once there is one.
pub const DEFERRED: Queue<Received> = Queue::new("processor/v1/deferred");

/// The settings this processor reported with each session's key pair (what the set agreed
/// on), by session.
pub const REPORTED_SETTINGS: db::Table<u32, ChainSettings> =
    db::Table::new("processor/v1/reported_settings");

/// Refuses to scan and sign with `current` settings other than those this processor
/// reported with its active key's pair: the set agreed on those, and Batches or plans made
/// under others would never be signed. A processor that generated its key without a
/// `[node]` (so reported no settings) is held to those the confirmation carried, the
/// set's; only a key no participant generated with a node is not checked.
pub fn check_settings(db: &Db, current: &ChainSettings) -> Result<(), String> {
    let read = db.read().map_err(|e| e.to_string())?;
    for (session, _) in LIVE.iter(&read).map_err(|e| e.to_string())? {
        let Some(reported) = REPORTED_SETTINGS.get(&read, &session).map_err(|e| e.to_string())?
        else {
            continue;
        };
        let differences = current.differences(&reported);
        if differences.is_empty() {
            continue;
        }
        return Err(format!(
            "the [node] settings differ from those this processor reported with session {}'s \
             key, which its set agreed on: {} (\"the set's\" is what was reported). Restore \
             them: every processor of a set must scan and plan alike",
            session,
            differences.join(", ")
        ));
    }
    Ok(())
}

/// Records `session`'s confirmed key as live, with this validator's DKG index, and its
/// pipeline's [`Active`] record (in the session's scope). Returns it.
fn record_active(
    txn: &mut WriteTxn,
    validator: u16,
    session: Session,
    start: Option<u64>,
) -> Result<Active, TaskError> {
    let generated = KeyGen::generated(txn, session)?
        .ok_or_else(|| TaskError::fatal("confirmed keys are missing"))?;
    let me = generated
        .participants
        .iter()
        .position(|v| *v == validator)
        .map(|i| i as u16 + 1)
        .ok_or_else(|| TaskError::fatal("this validator holds no share of the confirmed key"))?;
    let active = Active { session: session.0, me, start };
    let previous = txn.set_scope(Some(session.0));
    let put = ACTIVE.put(txn, &(), &active);
    txn.set_scope(previous);
    put?;
    LIVE.put(txn, &session.0, &me)?;
    Ok(active)
}

/// For a database whose confirmed key was never recorded live (confirmed by a build that
/// did not record keys without a `[node]`): records the newest confirmed key, without an
/// activation block (the scanner starts at its node's first non-final block, with a
/// warning). Returns the live sessions.
pub fn backfill_active(db: &Db, validator: u16) -> Result<Vec<(u32, u16)>, TaskError> {
    let mut txn = db.write()?;
    let live = LIVE.iter(&txn)?;
    if !live.is_empty() {
        return Ok(live);
    }
    // A retired session is never live again.
    let retired = RETIRED.iter(&txn)?;
    let confirmed = KeyGen::all_generated(&txn)?
        .into_iter()
        .filter(|(session, g)| g.confirmed && !retired.iter().any(|(r, _)| r == session))
        .map(|(session, _)| Session(session))
        .next_back();
    let Some(session) = confirmed else { return Ok(vec![]) };
    let active = record_active(&mut txn, validator, session, None)?;
    txn.commit()?;
    tracing::warn!(session = session.0, "a key confirmed while no [node] was configured, before such keys were recorded: now active, without an agreed activation block");
    Ok(vec![(session.0, active.me)])
}

/// Counters of the handler.
#[derive(Clone, Debug, Default)]
pub struct HandlerMetrics {
    /// Coordinator requests refused as invalid (they changed nothing).
    pub rejected_requests: Counter,
}

/// Pops one inbox message per iteration and handles it in the same transaction. Run it
/// with the bus sender among its dependents, so replies go out at once.
#[derive(Debug)]
pub struct InboxHandler {
    db: Db,
    mailbox: Mailbox,
    keygen: Arc<KeyGen>,
    metrics: HandlerMetrics,
    pipeline: Option<Arc<dyn Handle>>,
}

impl InboxHandler {
    /// A handler replying through `mailbox`.
    pub fn new(
        db: Db,
        mailbox: Mailbox,
        keygen: Arc<KeyGen>,
        metrics: HandlerMetrics,
        pipeline: Option<Arc<dyn Handle>>,
    ) -> Self {
        InboxHandler { db, mailbox, keygen, metrics, pipeline }
    }

    /// A pipeline request refused: logged, counted, nothing changed (the transaction is
    /// still committed for the inbox pop, but the pipeline functions return a refusal
    /// before writing anything).
    fn refused_pipeline(&self, received: &Received, e: Refusal) {
        self.metrics.rejected_requests.inc();
        tracing::warn!(intent = %received.intent.to_hex(), error = %e, "refused a coordinator request");
    }

    /// Activates a newly confirmed key pair, scanning from the agreed `activation_block`.
    /// Recorded even without a `[node]` (key generation only), so that a restart with one
    /// scans and signs with it from that block.
    fn activate(
        &self,
        txn: &mut WriteTxn,
        session: Session,
        activation_block: Option<u64>,
    ) -> Result<(), TaskError> {
        if LIVE.get(txn, &session.0)?.is_some() {
            tracing::warn!(session = session.0, "the session's key is already active");
            return Ok(());
        }
        let others: Vec<u32> = LIVE.iter(txn)?.into_iter().map(|(s, _)| s).collect();
        let active = record_active(txn, self.keygen.me(), session, activation_block)?;
        if !others.is_empty() {
            tracing::info!(
                session = session.0,
                live = ?others,
                "a new session's key is active beside the live ones (a rotation)"
            );
        }
        let me = active.me;
        let Some(pipeline) = &self.pipeline else {
            tracing::info!(
                session = session.0,
                me,
                ?activation_block,
                "key active; no [node]: scanning and signing start once one is configured"
            );
            return Ok(());
        };
        if me == 0 {
            return Err(TaskError::fatal("participant index 0"));
        }
        pipeline.activate(session, me)?;
        tracing::info!(
            session = session.0,
            me,
            ?activation_block,
            "key active: scanning and signing"
        );
        Ok(())
    }

    fn reply(&self, txn: &mut WriteTxn, message: ProcessorMessage) -> Result<(), TaskError> {
        self.mailbox.send(txn, Party::Coordinator, message.encode()).map(|_| ()).map_err(send_error)
    }

    /// A request the coordinator should not have sent: logged, counted, otherwise ignored.
    /// Database failures are not the coordinator's fault: they fail the iteration.
    fn refused(&self, received: &Received, e: KeyGenError) -> Result<(), TaskError> {
        match e {
            KeyGenError::Db(e) => Err(db_error(e)),
            KeyGenError::Seal(e) => Err(TaskError::fatal(e)),
            e => {
                self.metrics.rejected_requests.inc();
                tracing::warn!(intent = %received.intent.to_hex(), error = %e, "refused a coordinator request");
                Ok(())
            }
        }
    }
}

impl Task for InboxHandler {
    fn name(&self) -> &str {
        "inbox-handler"
    }

    async fn run_iteration(&mut self) -> Result<bool, TaskError> {
        // Messages kept while there was no `[node]` come first, in order, once there is
        // one: they arrived before anything still in the inbox.
        let mut txn = self.db.write()?;
        let mut popped = None;
        if self.pipeline.is_some() {
            popped = DEFERRED.pop(&mut txn)?;
            if let Some((_, received)) = &popped {
                tracing::info!(intent = %received.intent.to_hex(), "handling a message kept while there was no [node]");
            }
        }
        if popped.is_none() {
            popped = INBOX.pop(&mut txn)?;
        }
        let Some((_, received)) = popped else { return Ok(false) };
        // A fatal error names the message: it stays in the inbox (nothing is committed).
        let mut work = format!("handling inbox message {}", received.intent.to_hex());
        let handled = match received.coordinator_message() {
            // The mailbox only lets the coordinator talk to a processor, and validated the
            // message when it entered the inbox: failing now means the DB is corrupt.
            _ if received.sender != Party::Coordinator => Err(TaskError::fatal(format!(
                "it is from {}, not the coordinator",
                received.sender
            ))),
            Err(e) => Err(TaskError::fatal(format!("it does not decode: {e}"))),
            Ok(message) => {
                work += &format!(" (a {} message)", kind(&message));
                self.handle(&mut txn, &received, message)
            }
        };
        handled.map_err(|e| crate::halt::naming(e, work))?;
        // The runner wakes the bus sender (a dependent) after this progress.
        txn.commit()?;
        Ok(true)
    }
}

impl InboxHandler {
    /// Handles one message from the coordinator inside `txn`.
    fn handle(
        &self,
        txn: &mut WriteTxn,
        received: &Received,
        message: CoordinatorMessage,
    ) -> Result<(), TaskError> {
        match message {
            CoordinatorMessage::Status(Status::Ping { nonce }) => {
                let protocol_version = u32::from(PROTOCOL_VERSION);
                self.reply(
                    txn,
                    ProcessorMessage::Status(Status::Pong { nonce, protocol_version }),
                )?;
            }
            CoordinatorMessage::Status(Status::Pong { .. }) => {}
            CoordinatorMessage::KeyGen(request) => match self.keygen.handle(txn, &request) {
                Ok(Some(mut response)) => {
                    if let KeyGenResponse::GeneratedKeyPair {
                        id,
                        proposed_activation,
                        settings,
                        ..
                    } = &mut response
                    {
                        *proposed_activation = self.pipeline.as_ref().and_then(|p| p.proposal());
                        *settings = self.pipeline.as_ref().map(|p| p.settings());
                        // Recorded with the report, so a later start can hold this
                        // processor to what its set agreed on (`check_settings`).
                        if let Some(reported) = settings {
                            REPORTED_SETTINGS.put(txn, &id.session.0, reported)?;
                        }
                    }
                    self.reply(txn, ProcessorMessage::KeyGen(response))?
                }
                Ok(None) => {}
                Err(KeyGenError::Refused(reason)) => {
                    // The operator's policy refuses the parameters: say so, so that the
                    // coordinator goes on without this processor at once.
                    if let KeyGenRequest::GenerateKey { id, .. } = &request {
                        let refusal = KeyGenResponse::Refused { id: *id, reason: reason.clone() };
                        self.reply(txn, ProcessorMessage::KeyGen(refusal))?;
                    }
                    self.refused(received, KeyGenError::Refused(reason))?
                }
                Err(e) => self.refused(received, e)?,
            },
            CoordinatorMessage::Settlement(SettlementEvent::ConfirmKeyPair {
                session,
                ristretto_key,
                network_key,
                activation_block,
                settings,
            }) => match self.keygen.confirm(txn, session, ristretto_key, &network_key) {
                Ok(true) => {
                    // Keys generated without a `[node]` reported no settings: the set's are
                    // recorded now, so that a later `[node]` is held to them
                    // (`check_settings`).
                    if let Some(agreed) = settings {
                        if REPORTED_SETTINGS.get(txn, &session.0)?.is_none() {
                            REPORTED_SETTINGS.put(txn, &session.0, &agreed)?;
                        }
                    }
                    self.activate(txn, session, activation_block)?
                }
                Ok(false) => {}
                Err(e) => self.refused(received, e)?,
            },
            CoordinatorMessage::Sign(request) if self.pipeline.is_some() => {
                let pipeline = self.pipeline.as_ref().unwrap_or_else(|| unreachable!());
                if let Err(e) = pipeline.sign(txn, &request)? {
                    self.refused_pipeline(received, e);
                }
            }
            CoordinatorMessage::Settlement(SettlementEvent::BlockAcknowledged {
                session,
                settlement_block,
                batches,
                burns,
                ..
            }) if self.pipeline.is_some() => {
                let pipeline = self.pipeline.as_ref().unwrap_or_else(|| unreachable!());
                let ack = Ack { settlement_block, batches, burns };
                if let Err(e) = pipeline.acknowledge(txn, session, ack)? {
                    self.refused_pipeline(received, e);
                }
            }
            CoordinatorMessage::Settlement(SettlementEvent::Rotation {
                session,
                successor,
                successor_key,
                close_block,
            }) if self.pipeline.is_some() => {
                let pipeline = self.pipeline.as_ref().unwrap_or_else(|| unreachable!());
                if let Err(e) =
                    pipeline.rotate(txn, session, successor, &successor_key, close_block)?
                {
                    self.refused_pipeline(received, e);
                }
            }
            other if self.pipeline.is_some() => {
                // Unreachable today: every message has a handler once there is a node.
                // Kept, it would be popped and kept again forever.
                self.metrics.rejected_requests.inc();
                tracing::error!(intent = %received.intent.to_hex(), kind = kind(&other), "no handler for this message: refused");
            }
            other => {
                tracing::warn!(intent = %received.intent.to_hex(), kind = kind(&other), "no [node]: message kept until one is configured");
                DEFERRED.push(txn, received)?;
            }
        }
        Ok(())
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
