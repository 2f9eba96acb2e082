//! The publisher task: broadcasts signed transactions (already published or mined is
//! success), then tells the coordinator the plan is complete; and re-broadcasts what it
//! published until the plan's completion is applied (at the acknowledgement of the block
//! holding it; a mined transaction counts as known, so re-sending it is harmless).
//!
//! One transaction the node keeps refusing does not hold back the others: after a
//! failure it goes to the back of the queue. A plan whose inputs another transaction
//! spent (an ALARM already raised and recorded in `CONFLICTS`) is never published.
use std::time::{Duration, Instant};

use db::Db;
use scanner::Network;
use task::{Task, TaskError};

use super::sign::completed;
use super::state::*;
use super::{Pipeline, PipelineNetwork};

/// How often published transactions not yet seen on chain are published again.
pub const REBROADCAST_EVERY: Duration = Duration::from_secs(60);

/// Publishes one signed transaction per iteration.
#[derive(Debug)]
pub struct PublishTask<N: PipelineNetwork> {
    db: Db,
    pipeline: Pipeline<N>,
    rebroadcast_every: Duration,
    last_rebroadcast: Instant,
}

impl<N: PipelineNetwork> PublishTask<N> {
    /// A publisher over `pipeline`'s network, re-broadcasting every
    /// [`REBROADCAST_EVERY`].
    pub fn new(db: Db, pipeline: Pipeline<N>) -> Self {
        Self::rebroadcasting_every(db, pipeline, REBROADCAST_EVERY)
    }

    /// A publisher re-broadcasting every `every`.
    pub fn rebroadcasting_every(db: Db, pipeline: Pipeline<N>, every: Duration) -> Self {
        PublishTask { db, pipeline, rebroadcast_every: every, last_rebroadcast: Instant::now() }
    }

    /// Publishes again every transaction published whose plan is not yet seen on chain
    /// (the node may have dropped it: a restart without its mempool, eviction). Failures
    /// are expected (a transaction mined meanwhile is not one: that counts as published)
    /// and only logged. Returns how many the node now has.
    pub async fn rebroadcast(&mut self) -> Result<usize, TaskError> {
        self.last_rebroadcast = Instant::now();
        let txs = BROADCAST.iter(&self.db.read()?)?;
        let mut known = 0;
        for (plan, bytes) in txs {
            let network = &self.pipeline.network;
            let tx = decode(&**network, &plan, &bytes)?;
            match network.publish(&tx).await {
                Ok(()) => known += 1,
                Err(e) => {
                    let txid = network.display_transaction_id(&network.transaction_id(&tx));
                    tracing::warn!(plan = %hex::encode(plan), %txid, error = %e, "re-broadcast refused")
                }
            }
        }
        Ok(known)
    }
}

impl<N: PipelineNetwork> super::SessionTask<N> for PublishTask<N> {
    fn for_session(db: Db, pipeline: Pipeline<N>) -> Self {
        PublishTask::new(db, pipeline)
    }
}

impl<N: PipelineNetwork> Task for PublishTask<N> {
    fn name(&self) -> &str {
        "publisher"
    }

    async fn run_iteration(&mut self) -> Result<bool, TaskError> {
        // Whatever the queue holds: a transaction refused again and again (a fee below
        // the mempool's minimum in congestion) must not stop the re-broadcasts.
        if self.last_rebroadcast.elapsed() >= self.rebroadcast_every {
            self.rebroadcast().await?;
        }
        let p = &self.pipeline;
        let read = self.db.read()?;
        let Some((_, (plan, bytes))) = TO_PUBLISH.peek(&read)? else {
            return Ok(false);
        };
        let Some(active) = p.active(&read)? else { return Ok(false) };
        let conflicted = CONFLICTS.get(&read, &plan)?;
        let done = PLANS.get(&read, &plan)?.and_then(|r| r.completed);
        let queued = TO_PUBLISH.len(&read)?;
        drop(read);
        if let Some(by) = done {
            // Completed already (mined, or superseded by another version of its plan, whose
            // inputs it spends): nothing to publish, ever.
            tracing::info!(plan = %hex::encode(plan), by = %p.network_tx(&by), "not publishing: the plan is complete");
            let mut txn = self.db.write()?;
            TO_PUBLISH.pop(&mut txn)?;
            txn.commit()?;
            return Ok(true);
        }
        if let Some(spender) = conflicted {
            tracing::error!(plan = %hex::encode(plan), spender = %hex::encode(spender), "not publishing: another transaction spent this plan's inputs (ALARM raised when it was seen)");
            let mut txn = self.db.write()?;
            TO_PUBLISH.pop(&mut txn)?;
            txn.commit()?;
            return Ok(true);
        }
        let tx = decode(&*p.network, &plan, &bytes)?;
        let id = p.network.transaction_id(&tx);
        let txid = p.network_tx(&id);
        if let Err(e) = p.network.publish(&tx).await {
            if queued > 1 {
                // To the back: the others go first, and this one is tried again after.
                let mut txn = self.db.write()?;
                TO_PUBLISH.pop(&mut txn)?;
                TO_PUBLISH.push(&mut txn, &(plan, bytes))?;
                txn.commit()?;
                tracing::warn!(plan = %hex::encode(plan), %txid, error = %e, queued, "publishing failed; the other signed transactions go first");
            }
            return Err(e.into());
        }
        tracing::info!(plan = %hex::encode(plan), %txid, "published");
        p.metrics.published.inc();
        p.metrics.plan_publish_seconds.end(p.session, &plan);
        let mut txn = self.db.write()?;
        TO_PUBLISH.pop(&mut txn)?;
        // Watched until seen on chain (unless it was already: another signer's copy; or a
        // conflict was applied meanwhile: it can never be mined).
        let record = PLANS.get(&txn, &plan)?;
        let conflicted = CONFLICTS.get(&txn, &plan)?.is_some();
        if record.is_some_and(|r| r.completed.is_none()) && !conflicted {
            BROADCAST.put(&mut txn, &plan, &bytes)?;
            // A fee-bump version accepted: the versions before it are replaced, and no
            // longer re-broadcast (they would only be refused).
            if let Some(root) = VERSION_OF.get(&txn, &plan)? {
                for older in super::bump::family(&txn, &root)? {
                    if older == plan {
                        break;
                    }
                    BROADCAST.del(&mut txn, &older)?;
                }
            }
        }
        // Reported as published (the signers) and again once seen final on chain (every
        // key holder, `eventuality::completions`): the coordinator believes a threshold of
        // key holders agreeing, each counted once.
        p.send(&mut txn, completed(active.session, plan, id))?;
        txn.commit()?;
        Ok(true)
    }
}

/// A stored signed transaction (written by this processor: failing to decode it means the
/// database is corrupt).
fn decode<N: Network>(
    network: &N,
    plan: &[u8; 32],
    bytes: &[u8],
) -> Result<N::Transaction, TaskError> {
    network.decode_transaction(bytes).map_err(|e| {
        TaskError::fatal(format!(
            "the signed transaction of plan {} does not decode: {e}",
            hex::encode(plan)
        ))
    })
}
