//! The scanner task: index the next final block, scan it for our outputs, record what it
//! means for the scheduler (applied when an acknowledgement covers it, by
//! [`super::acknowledge::AckTask`]), and report its deposits ([`super::report`]).
//!
//! An iteration commits the block's index entry (`Index::advance`, when the block was not
//! indexed yet; `Index::extend` for the blocks read ahead with it) and then the scanned
//! block: each a commit a crash may follow; index entries alone are a state the next
//! iteration continues from.
use std::collections::BTreeMap;

use db::{Db, WriteTxn};
use primitives::codec::encode_body;
use primitives::{ExternalAddress, InInstructionWithBalance};
use scanner::disposition::{dispose, Disposition};
use scanner::index::Index;
use scanner::{ChainBlock, Network, NetworkError, ReceivedOutput};
use task::{Task, TaskError};

use super::state::*;
use super::{Pipeline, PipelineNetwork};

/// Records one final block per iteration (one commit each). Blocks are fetched and
/// scanned [`Network::read_ahead`] at a time, concurrently, and kept in memory until their
/// turn; while they are recorded, the next ones are fetched and scanned in the background.
/// Nothing of a block is written before its turn, and then only after it is checked
/// against the index, so a crash loses only work, and a block that changed meanwhile is
/// refused as any other.
pub struct ScanTask<N: PipelineNetwork> {
    db: Db,
    pipeline: Pipeline<N>,
    /// Blocks fetched and scanned ahead, by number, with the session of the key they
    /// were scanned for.
    ahead: BTreeMap<u64, Fetched<N>>,
    ahead_session: Option<u32>,
    /// The blocks after those, being fetched and scanned in the background: the first
    /// block, and the job.
    next: Option<(u64, ReadAhead<N>)>,
    /// The node's last final block as last read, and when (for `final_height` and
    /// `scan_lag`, read at most once a second).
    finalized: Option<(Option<u64>, std::time::Instant)>,
}

/// A background read-ahead: the blocks it fetched and scanned.
type ReadAhead<N> = tokio::task::JoinHandle<Result<Vec<Fetched<N>>, NetworkError>>;

impl<N: PipelineNetwork> std::fmt::Debug for ScanTask<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanTask")
            .field("ahead", &self.ahead.keys())
            .field("next", &self.next.as_ref().map(|(from, _)| from))
            .finish_non_exhaustive()
    }
}

impl<N: PipelineNetwork> Drop for ScanTask<N> {
    fn drop(&mut self) {
        self.forget_ahead();
    }
}

impl<N: PipelineNetwork> ScanTask<N> {
    /// A scanner over `pipeline`'s network.
    pub fn new(db: Db, pipeline: Pipeline<N>) -> Self {
        ScanTask {
            db,
            pipeline,
            ahead: BTreeMap::new(),
            ahead_session: None,
            next: None,
            finalized: None,
        }
    }

    /// Drops the blocks read ahead and stops the background job.
    fn forget_ahead(&mut self) {
        self.ahead.clear();
        if let Some((_, job)) = self.next.take() {
            job.abort();
        }
    }
}

/// Blocks `from..=to` fetched at once and scanned for `key` concurrently (no transaction
/// open).
async fn fetch_range<N: Network>(
    network: &N,
    key: &N::Key,
    from: u64,
    to: u64,
) -> Result<Vec<Fetched<N>>, NetworkError> {
    let blocks = network.blocks(from, to).await?;
    let numbers: Vec<u64> = blocks.iter().map(|b| b.block_ref().number).collect();
    if !numbers.iter().copied().eq(from..=to) {
        return Err(NetworkError::Transient(
            format!("asked the node for blocks {from}..={to}, got {numbers:?}").into(),
        ));
    }
    let scans = blocks.into_iter().map(|block| async move {
        let outputs = network.scan(&block, key).await?;
        let rate = network.block_fee_rate(&block).await?;
        let spends = network.spends(&block);
        let number = block.block_ref().number;
        Ok::<_, NetworkError>(Fetched { key: key.clone(), number, block, outputs, spends, rate })
    });
    futures::future::try_join_all(scans).await
}

/// The last block of a read-ahead from `from`: at most `ahead` blocks, all final (`None`
/// when `from` is not final yet).
async fn read_ahead_end<N: Network>(network: &N, from: u64) -> Result<Option<u64>, NetworkError> {
    Ok(read_ahead_within(network, from, network.latest_finalized().await?))
}

/// [`read_ahead_end`] with the last final block already read (`finalized`).
fn read_ahead_within<N: Network>(network: &N, from: u64, finalized: Option<u64>) -> Option<u64> {
    let ahead = u64::try_from(network.read_ahead().max(1)).unwrap_or(1);
    finalized
        .filter(|finalized| *finalized >= from)
        .map(|finalized| finalized.min(from + ahead - 1))
}

/// The first block the node does not report final: the first that can hold outputs to a
/// key activated now.
async fn first_unfinalized<N: Network>(network: &N) -> Result<u64, TaskError> {
    Ok(network.latest_finalized().await?.map_or(0, |f| f + 1))
}

/// A block fetched and scanned, before anything is written.
struct Fetched<N: Network> {
    key: N::Key,
    number: u64,
    block: N::Block,
    outputs: Vec<N::Output>,
    spends: Vec<scanner::Spend>,
    rate: u64,
}

/// Where the scanner stands before it fetches anything.
enum Start {
    /// Scan from this block with this key.
    From(Active, u64),
    /// Nothing to do now (no key; or the activation block was just recorded: progress).
    Idle { progress: bool },
}

impl<N: PipelineNetwork> ScanTask<N> {
    /// The active key and its first block; keeps this processor's activation proposal
    /// current while no key is active.
    async fn start(&self) -> Result<Start, TaskError> {
        let network = &*self.pipeline.network;
        let Some(mut active) = self.pipeline.active(&self.db.read()?)? else {
            // No key yet: keep this processor's proposal for the next key's activation
            // block current (the first block that can hold outputs to a new key).
            self.pipeline.proposal.set(first_unfinalized(network).await?);
            return Ok(Start::Idle { progress: false });
        };
        if let Some(start) = active.start {
            return Ok(Start::From(active, start));
        }
        // The confirmation carried no agreed block (no participant proposed one): the
        // first block not final here. Other processors may pick another block, and then
        // their Batches differ from ours.
        let first = first_unfinalized(network).await?;
        let mut txn = self.db.write()?;
        active.start = Some(first);
        ACTIVE.put(&mut txn, &(), &active)?;
        txn.commit()?;
        tracing::warn!(
            session = active.session,
            first,
            "no activation block was agreed for the key: scanning from this node's first non-final block"
        );
        Ok(Start::Idle { progress: true })
    }

    /// Reads the node's last final block into `final_height` and `scan_lag`: at most once
    /// a second while the scanner has final blocks to scan, and on every iteration once
    /// it is caught up (so both move while the scanner waits, and an alert sees a scanner
    /// that falls behind).
    async fn observe_final(&mut self, start: u64) -> Result<(), TaskError> {
        // Blocks from `start` on are the scanner's; the next is after the last scanned.
        let next = SCANNED.get(&self.db.read()?, &())?.map_or(start, |s| s + 1);
        let fresh = self.finalized.is_some_and(|(finalized, at)| {
            at.elapsed() < std::time::Duration::from_secs(1) && finalized >= Some(next)
        });
        if fresh {
            return Ok(());
        }
        let finalized = self.pipeline.network.latest_finalized().await?;
        self.finalized = Some((finalized, std::time::Instant::now()));
        // The next key's activation proposal (a rotation's) is the first block not final.
        self.pipeline.proposal.set(finalized.map_or(0, |f| f + 1));
        if let Some(finalized) = finalized {
            let metrics = &self.pipeline.metrics;
            metrics.final_height.set(i64::try_from(finalized).unwrap_or(i64::MAX));
            let lag = (finalized + 1).saturating_sub(next);
            metrics.scan_lag.set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
        Ok(())
    }

    /// The next block to scan, once it is final and indexed; `None` while the scanner is a
    /// full window ahead of acknowledgements or the block is not final yet.
    async fn next_block(&self, index: &Index, start: u64) -> Result<Option<u64>, TaskError> {
        let read = self.db.read()?;
        // Counted against the acknowledgements accepted, not only those applied: an
        // accepted one naming Batches this processor has yet to make (the settlement
        // layer may acknowledge several at once) must not stop the scanner that makes them.
        let made = u64::from(NEXT_BATCH.get(&read, &())?.unwrap_or(0));
        let applied = u64::from(ACKED_COUNT.get(&read, &())?.unwrap_or(0));
        let accepted = ACK_RECEIPT.get(&read, &())?.map_or(0, |r| r.next_batch);
        if made.saturating_sub(applied.max(accepted)) >= u64::from(self.pipeline.window) {
            return Ok(None);
        }
        let number = SCANNED.get(&read, &())?.map_or(start, |s| s + 1);
        let tip = index.tip(&read)?;
        drop(read);
        if tip < Some(number) && index.advance(&*self.pipeline.network, &self.db).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(number))
    }

    /// Block `number` fetched and scanned for `session`'s key (no transaction open): from
    /// the blocks read ahead, from the background job when it started there, or with the
    /// next final blocks after it.
    async fn fetch(
        &mut self,
        index: &Index,
        session: u32,
        key: N::Key,
        number: u64,
    ) -> Result<Fetched<N>, TaskError> {
        if self.ahead_session != Some(session) {
            self.forget_ahead();
            self.ahead_session = Some(session);
        }
        if !self.ahead.contains_key(&number) {
            self.ahead.clear();
            let background = match self.next.take() {
                // A job that failed is not an error here: the blocks are fetched again now,
                // and a lasting failure is reported from that.
                Some((from, job)) if from == number => job.await.ok().and_then(Result::ok),
                Some((_, job)) => {
                    job.abort();
                    None
                }
                None => None,
            };
            let fetched = match background.filter(|f| !f.is_empty()) {
                Some(fetched) => fetched,
                None => {
                    let network = &*self.pipeline.network;
                    // The last final block as `observe_final` read it this iteration
                    // (final blocks stay final): no second request for it.
                    let finalized = match self.finalized {
                        Some((finalized, _)) => finalized,
                        None => network.latest_finalized().await?,
                    };
                    let last = read_ahead_within(network, number, finalized).unwrap_or(number);
                    fetch_range(network, &key, number, last).await?
                }
            };
            // The blocks read ahead are final: indexed from what was fetched, so that each
            // is checked against the chain below it now, and against its index entry when
            // its turn comes.
            let refs: Vec<_> = fetched.iter().map(|f| f.block.block_ref()).collect();
            index.extend(&self.db, &*self.pipeline.network, &refs)?;
            self.ahead.extend(fetched.into_iter().map(|f| (f.number, f)));
        }
        let fetched = self.ahead.remove(&number).ok_or_else(|| {
            TaskError::Transient(format!("block {number} was fetched but not kept").into())
        })?;
        // While these are recorded, the next blocks are fetched and scanned (on the Tokio
        // runtime the processor runs on; without one, as in the step-by-step tests, the
        // next read-ahead waits for its turn).
        let runtime = tokio::runtime::Handle::try_current().ok();
        if let Some(runtime) = runtime.filter(|_| self.next.is_none()) {
            if self.pipeline.network.read_ahead() > 1 {
                let from = self.ahead.keys().next_back().map_or(number, |last| *last) + 1;
                let network = self.pipeline.network.clone();
                let job = runtime.spawn(async move {
                    match read_ahead_end(&*network, from).await? {
                        Some(to) => fetch_range(&*network, &key, from, to).await,
                        None => Ok(vec![]),
                    }
                });
                self.next = Some((from, job));
            }
        }
        Ok(fetched)
    }
}

/// Records the block's outputs and our outputs it spends, and decides what each deposit
/// is for. Returns the deposits to report.
///
/// An output whose id is already recorded (earlier, or earlier in this block) is ignored:
/// a network's output ids are unique by construction, except Monero's, where a later
/// output may reuse an earlier one's key ("burning bug") and only one of them can ever
/// be spent. The first is the one credited; crediting the second would pay for funds
/// the group can never move.
fn record<N: PipelineNetwork>(
    p: &Pipeline<N>,
    txn: &mut WriteTxn,
    fetched: &Fetched<N>,
    events: &mut BlockEvents,
) -> Result<Vec<InInstructionWithBalance>, TaskError> {
    let mut fresh = Vec::with_capacity(fetched.outputs.len());
    for o in &fetched.outputs {
        let id = o.id();
        if OUTPUTS.get(txn, &id)?.is_some() {
            tracing::warn!(
                block = fetched.number,
                output = %hex::encode(&id),
                amount = o.amount().0,
                "an output reuses the id of one already recorded: ignored (only one of them can be spent)"
            );
            p.metrics.reused_output_ids.inc();
            continue;
        }
        OUTPUTS.put(txn, &id, &encode_body(o))?;
        fresh.push(o);
    }
    // Our outputs this block spends (outputs created earlier in it included).
    for spend in &fetched.spends {
        if OUTPUTS.get(txn, &spend.output)?.is_some() {
            events.spends.push(spend.clone());
        }
    }
    // Deposits, and our own outputs (change, branches) coming back.
    let params = p.network.params();
    let ours = |to: &ExternalAddress| {
        p.network.address(to).is_some_and(|a| p.network.owns(&fetched.key, &a))
    };
    let mut instructions = vec![];
    let mut unreported = vec![];
    for o in fresh {
        match dispose(params.network, params.dust, o) {
            Disposition::Report(i) => {
                instructions.push(i);
                events.reported.push(o.id());
            }
            // A refund to one of our own addresses (our own transaction paid the deposit
            // address) would only come back as another deposit to refund: kept instead.
            Disposition::Refund { to, .. } if ours(&to) => {
                unreported.push(Unreported::Unattributed { output: o.id() })
            }
            Disposition::Refund { to, .. } => {
                events.refunds.push((o.id(), to.clone()));
                unreported.push(Unreported::Refund { output: o.id(), to });
            }
            Disposition::Unattributed { .. } => {
                unreported.push(Unreported::Unattributed { output: o.id() })
            }
            Disposition::Dust { .. } => unreported.push(Unreported::Dust { output: o.id() }),
            Disposition::Internal => events.internal.push(Internal {
                output: o.id(),
                kind: o.kind(),
                amount: o.amount(),
                tx: o.transaction(),
            }),
        }
    }
    if !unreported.is_empty() {
        tracing::info!(
            block = fetched.number,
            count = unreported.len(),
            "deposits not reported (refund, unattributed or dust)"
        );
        UNREPORTED.put(txn, &fetched.number, &unreported)?;
    }
    Ok(instructions)
}

impl<N: PipelineNetwork> super::SessionTask<N> for ScanTask<N> {
    fn for_session(db: Db, pipeline: Pipeline<N>) -> Self {
        ScanTask::new(db, pipeline)
    }

    /// No key yet: keeps this processor's proposal for the next key's activation block
    /// current (the first block that can hold outputs to a new key).
    async fn idle(pipelines: &super::Pipelines<N>) -> Result<bool, TaskError> {
        let base = pipelines.base();
        base.proposal.set(first_unfinalized(&*base.network).await?);
        Ok(false)
    }
}

impl<N: PipelineNetwork> Task for ScanTask<N> {
    fn name(&self) -> &str {
        "scanner"
    }

    async fn run_iteration(&mut self) -> Result<bool, TaskError> {
        let (active, start) = match self.start().await? {
            Start::From(active, start) => (active, start),
            Start::Idle { progress } => return Ok(progress),
        };
        let index = Index::new(start);
        self.observe_final(start).await?;
        let Some(number) = self.next_block(&index, start).await? else { return Ok(false) };
        let keys = self.pipeline.keys(&self.db.read()?, active.session)?;
        let key = self.pipeline.key(&keys)?;
        let fetched = self.fetch(&index, active.session, key, number).await?;
        // A block read ahead was fetched a while ago: the node's chain must still hold it
        // now, as when each block was fetched in its own iteration (a deep reorg meanwhile
        // is caught here, not blocks later).
        let now = if self.pipeline.network.read_ahead() > 1 {
            Some(self.pipeline.network.block_ref(number).await?)
        } else {
            None
        };
        let p = &self.pipeline;

        let mut txn = self.db.write()?;
        assert_eq!(
            SCANNED.get(&txn, &())?.map_or(start, |s| s + 1),
            number,
            "the scanner is the only writer of its cursor"
        );
        let checked = index
            .expect(&txn, &*p.network, &fetched.block)
            .and_then(|()| now.map_or(Ok(()), |now| index.expect_ref(&txn, &*p.network, now)));
        if let Err(e) = checked {
            // The blocks read ahead with it are as suspect: fetched again next time.
            self.forget_ahead();
            return Err(e.into());
        }
        let mut events = BlockEvents { rate: fetched.rate, ..BlockEvents::default() };
        let instructions = record(p, &mut txn, &fetched, &mut events)?;
        let block = fetched.block.block_ref();
        super::report::report(p, &mut txn, &keys, block, start, instructions, &mut events)?;
        BLOCK_EVENTS.put(&mut txn, &number, &events)?;
        SCANNED.put(&mut txn, &(), &number)?;
        txn.commit()?;
        p.metrics.scanned_height.set(i64::try_from(number).unwrap_or(i64::MAX));
        if let Some((Some(finalized), _)) = self.finalized {
            p.metrics.scan_lag.set(i64::try_from(finalized.saturating_sub(number)).unwrap_or(0));
        }
        Ok(true)
    }
}
