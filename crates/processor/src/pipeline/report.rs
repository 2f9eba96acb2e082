//! Reporting: the Batches of a scanned block, made in the scanner's transaction, and the
//! start of their signing.
use db::WriteTxn;
use key_gen::GeneratedKeys;
use messages::{BatchReport, ProcessorMessage, SignKind};
use primitives::{Batch, BlockHash, InInstructionWithBalance};
use scanner::BlockRef;
use task::TaskError;

use super::state::*;
use super::{Pipeline, PipelineNetwork};

/// Makes the Batches of `block` (first scanned block `start`): one or more for its
/// deposits and refunds, or an empty one as a progress update when none was made for a
/// confirmation window. Each is sent and its signing started, in `txn`.
pub fn report<N: PipelineNetwork>(
    p: &Pipeline<N>,
    txn: &mut WriteTxn,
    keys: &GeneratedKeys,
    block: BlockRef,
    start: u64,
    instructions: Vec<InInstructionWithBalance>,
    events: &mut BlockEvents,
) -> Result<(), TaskError> {
    let params = p.network.params();
    let number = block.number;
    let last = LAST_BATCH_BLOCK.get(txn, &())?;
    let quiet = last.map_or(number + 1 - start, |l| number - l) >= params.confirmations;
    if instructions.is_empty() && events.refunds.is_empty() && !quiet {
        return Ok(());
    }
    let first = NEXT_BATCH.get(txn, &())?.unwrap_or(0);
    let batches =
        Batch::split(params.network, p.session, first, (BlockHash(block.id), number), instructions);
    for batch in &batches {
        BATCHES.put(txn, &batch.id, &(batch.clone(), number))?;
        events.batches.push(batch.id);
        tracing::info!(
            batch = batch.id,
            block = number,
            instructions = batch.instructions.len(),
            "batch made"
        );
        p.metrics.batches.inc();
        p.metrics.batch_sign_seconds.start(p.session, &batch.id.to_be_bytes());
        p.send(txn, ProcessorMessage::Batch(BatchReport::Batch(batch.clone())))?;
        p.start_signing(
            txn,
            SignKind::Batch(batch.id),
            signers::batch_machine(keys.ristretto.clone(), batch),
        )?;
    }
    let made = u32::try_from(batches.len()).unwrap_or(u32::MAX);
    NEXT_BATCH.put(txn, &(), &(first + made))?;
    LAST_BATCH_BLOCK.put(txn, &(), &number)?;
    Ok(())
}
