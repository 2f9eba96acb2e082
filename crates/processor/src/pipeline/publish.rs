//! The publisher task: broadcasts signed transactions (already published or mined is
//! success), then tells the coordinator the plan is complete.
use bitcoin::consensus::deserialize;
use db::Db;
use scanner::Network;
use task::{Task, TaskError};

use super::glue::{completed, Pipeline};
use super::state::*;
use crate::db_error;

/// Publishes one signed transaction per iteration.
#[derive(Debug)]
pub struct PublishTask {
    db: Db,
    pipeline: Pipeline,
}

impl PublishTask {
    /// A publisher over `pipeline`'s network.
    pub fn new(db: Db, pipeline: Pipeline) -> Self {
        PublishTask { db, pipeline }
    }
}

impl Task for PublishTask {
    fn name(&self) -> &str {
        "publisher"
    }

    async fn run_iteration(&mut self) -> Result<bool, TaskError> {
        let p = &self.pipeline;
        let read = self.db.read().map_err(db_error)?;
        let Some((_, (plan, bytes))) = TO_PUBLISH.peek(&read).map_err(db_error)? else {
            return Ok(false);
        };
        let Some(active) = p.active(&read)? else { return Ok(false) };
        drop(read);
        let tx: bitcoin::Transaction = deserialize(&bytes).map_err(TaskError::fatal)?;
        p.network.publish(&tx).await?;
        let txid = tx.compute_txid();
        tracing::info!(plan = %hex::encode(plan), %txid, "published");
        p.metrics.published.inc();
        let mut txn = self.db.write().map_err(db_error)?;
        TO_PUBLISH.pop(&mut txn).map_err(db_error)?;
        p.send(
            &mut txn,
            completed(active.session, plan, bitcoin::hashes::Hash::to_byte_array(txid).to_vec()),
        )?;
        txn.commit().map_err(db_error)?;
        Ok(true)
    }
}
