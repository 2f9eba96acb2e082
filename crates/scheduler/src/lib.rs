//! Pure UTXO scheduling: given the outputs we control and the payments we owe, decide
//! which transactions to make. No I/O, no clock, no randomness: the caller persists
//! [`State`] and runs the kernels inside its own transaction.
//!
//! Guarantees (each property-tested in `tests/properties.rs`):
//! - **Conservation**: in every planned [`Tx`], the inputs equal the payments (net of
//!   fees) plus the branch outputs plus the change plus the fee.
//! - **No double spend**: an output is spent by at most one [`Tx`], and a spent output
//!   leaves [`State`].
//! - **Exactly once**: every payment is, at any time, in exactly one place: queued in
//!   [`State`], paid by a [`Tx`], carried by a [`Branch`] not yet funded, or dropped as
//!   dust ([`Dropped`]) with the fee share that made it dust.
//! - **Order**: payments are funded in the order the settlement layer gave them; a payment
//!   that cannot be funded yet blocks the ones after it (nobody is overtaken).
//! - **Fees come out of the payments they serve**, evenly: a transaction's fee is split
//!   over every payment it carries directly or through its branches; the remainder of the
//!   division falls on the first payments, one unit each.
//! - **Dust**: payments below dust after their fee share are dropped and recorded;
//!   change below dust is given to the fee; outputs worth less than the cost of spending
//!   them are kept but not used.
//! - **Consolidation**: when the first payment needs more than the best `max_inputs`
//!   outputs but all usable outputs together would fund it, the best ones are merged into
//!   one change output first, and only if that change is at least dust; otherwise the
//!   payment waits. A payment larger than anything the outputs could fund (even
//!   `u64::MAX`) waits too: no amount makes scheduling fail.
//! - **Determinism**: the result depends only on the set of outputs (not on the order
//!   they were given in), the payment queue, the limits and the fee model.
#![deny(missing_docs)]

use std::collections::VecDeque;

use borsh::{BorshDeserialize, BorshSerialize};
use primitives::{Amount, ExternalAddress};

/// An output we control and may spend.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct Utxo {
    /// The network's canonical, unique output id.
    pub id: Vec<u8>,
    /// Its value.
    pub amount: Amount,
}

/// A payment owed to an external address (a Burn), identified by its position in the
/// settlement layer's order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct Payment {
    /// Position in the settlement layer's order (unique, increasing).
    pub id: u64,
    /// The payee.
    pub address: ExternalAddress,
    /// What is owed before fees.
    pub amount: Amount,
}

/// A payment made by a transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Paid {
    /// The payment.
    pub payment: Payment,
    /// Its share of the fees of every transaction on its path.
    pub fee: Amount,
    /// What the payee receives: `payment.amount - fee`.
    pub net: Amount,
}

/// A branch output: funds a later transaction that makes `payments`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Branch {
    /// The output's value: the sum of `payments`' amounts.
    pub amount: Amount,
    /// The payments it funds, their amounts already reduced by the fee shares paid so far.
    pub payments: Vec<Payment>,
    /// Fee shares already taken from each payment (same order), for the record.
    pub fees_so_far: Vec<Amount>,
}

/// One planned transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Tx {
    /// Deterministic id: a hash of the spent output ids.
    pub id: [u8; 32],
    /// The outputs spent, in order.
    pub inputs: Vec<Utxo>,
    /// Payments made directly.
    pub payments: Vec<Paid>,
    /// Branch outputs, after the payments.
    pub branches: Vec<Branch>,
    /// Change back to us, last, if any.
    pub change: Option<Amount>,
    /// The fee: what the inputs leave after all outputs.
    pub fee: Amount,
}

/// A payment not made because its fee share left less than dust.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Dropped {
    /// The payment.
    pub payment: Payment,
    /// The fee share it would have borne (on top of earlier shares).
    pub fee: Amount,
}

/// The network's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most inputs per transaction (at least 1).
    pub max_inputs: usize,
    /// Most outputs per transaction, change included (at least 2).
    pub max_outputs: usize,
    /// Smallest amount worth paying or keeping as change.
    pub dust: Amount,
}

/// What a transaction of a given shape costs, from the network's fee rate and size rules.
pub trait FeeModel {
    /// The fee of a transaction with `inputs` inputs, paying `payments`, with `branches`
    /// branch outputs and, if `change`, a change output.
    fn fee(
        &self,
        inputs: usize,
        payments: &[&ExternalAddress],
        branches: usize,
        change: bool,
    ) -> Amount;
}

/// What a kernel decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scheduled {
    /// Transactions to sign, in order.
    pub txs: Vec<Tx>,
    /// Payments dropped as dust.
    pub dropped: Vec<Dropped>,
    /// Outputs left unspent because every payment they were to fund was dropped (only
    /// from [`fund_branch`]; [`State::schedule`] keeps them in the state). The caller
    /// adds them to its [`State`].
    pub unused: Vec<Utxo>,
}

/// The scheduler's persistent state.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct State {
    /// Outputs available to spend.
    pub utxos: Vec<Utxo>,
    /// Payments waiting for funds, in order.
    pub queue: VecDeque<Payment>,
}

/// Why a kernel refused its input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    /// The limits cannot describe a working network.
    #[error("invalid limits: need max_inputs >= 1 and max_outputs >= 2")]
    InvalidLimits,
    /// An output id appears twice.
    #[error("output {0} is known twice")]
    DuplicateOutput(String),
    /// Amounts overflowed.
    #[error("amount overflow")]
    Overflow,
}

fn sum(amounts: impl IntoIterator<Item = Amount>) -> Result<Amount, ScheduleError> {
    amounts
        .into_iter()
        .try_fold(Amount::ZERO, |a, b| a.checked_add(b).map_err(|_| ScheduleError::Overflow))
}

fn tx_id(inputs: &[Utxo]) -> [u8; 32] {
    let ids: Vec<&[u8]> = inputs.iter().map(|u| u.id.as_slice()).collect();
    primitives::hash(b"tc-scheduler/v1/tx", &ids)
}

/// Canonical order: largest first, ties by id.
fn sort_utxos(utxos: &mut [Utxo]) {
    utxos.sort_by(|a, b| b.amount.cmp(&a.amount).then_with(|| a.id.cmp(&b.id)));
}

/// The marginal fee of one more input.
fn input_cost(fee: &impl FeeModel) -> Amount {
    let one = fee.fee(1, &[], 0, true);
    let two = fee.fee(2, &[], 0, true);
    Amount(two.0.saturating_sub(one.0))
}

impl State {
    /// Adds outputs (confirmed deposits, change, branch outputs not tied to a branch).
    pub fn add_utxos(
        &mut self,
        utxos: impl IntoIterator<Item = Utxo>,
    ) -> Result<(), ScheduleError> {
        for u in utxos {
            if self.utxos.iter().any(|have| have.id == u.id) {
                return Err(ScheduleError::DuplicateOutput(hex_of(&u.id)));
            }
            self.utxos.push(u);
        }
        sort_utxos(&mut self.utxos);
        Ok(())
    }

    /// Queues payments, in the order given, after those already queued.
    pub fn add_payments(&mut self, payments: impl IntoIterator<Item = Payment>) {
        self.queue.extend(payments);
    }

    /// Plans as many queued payments as the available outputs fund. See the crate
    /// documentation for the rules.
    pub fn schedule(
        &mut self,
        limits: Limits,
        fee: &impl FeeModel,
    ) -> Result<Scheduled, ScheduleError> {
        if limits.max_inputs == 0 || limits.max_outputs < 2 {
            return Err(ScheduleError::InvalidLimits);
        }
        sort_utxos(&mut self.utxos);
        let mut out = Scheduled::default();
        loop {
            // Drop payments that are dust before any fee.
            while let Some(p) = self.queue.front() {
                if p.amount >= limits.dust {
                    break;
                }
                let p = self.queue.pop_front().unwrap_or_else(|| unreachable!());
                out.dropped.push(Dropped { payment: p, fee: Amount::ZERO });
            }
            if self.queue.is_empty() {
                return Ok(out);
            }
            let cost = input_cost(fee);
            let usable: Vec<usize> = (0..self.utxos.len())
                .filter(|i| self.utxos[*i].amount > cost)
                .take(limits.max_inputs)
                .collect();
            let funds = sum(usable.iter().map(|i| self.utxos[*i].amount))?;
            // The longest prefix of the queue the best `max_inputs` outputs fund.
            let mut gross = Amount::ZERO;
            let mut count = 0;
            for p in &self.queue {
                // A sum past `u64::MAX` is past the funds too: the payment waits (a
                // huge amount must never turn into an error that stops scheduling).
                match gross.checked_add(p.amount) {
                    Ok(next) if next <= funds => gross = next,
                    _ => break,
                }
                count += 1;
            }
            if count == 0 {
                // Not enough in the best outputs. If all usable outputs together would
                // fund the first payment, consolidate the largest ones first.
                let all_usable =
                    sum(self.utxos.iter().filter(|u| u.amount > cost).map(|u| u.amount))?;
                // Only when what comes back is worth keeping: inputs barely above their
                // own cost could not pay the consolidation's fee, or would leave dust.
                let f = fee.fee(usable.len(), &[], 0, true);
                let change = funds.checked_sub(f).ok().filter(|c| *c >= limits.dust);
                let helps = usable.len() == limits.max_inputs
                    && usable.len() >= 2
                    && all_usable >= self.queue[0].amount;
                if let Some(change) = change.filter(|_| helps) {
                    let inputs: Vec<Utxo> = usable.iter().map(|i| self.utxos[*i].clone()).collect();
                    self.take(&inputs);
                    // The consolidated output comes back as change and is used later.
                    out.txs.push(Tx {
                        id: tx_id(&inputs),
                        inputs,
                        payments: vec![],
                        branches: vec![],
                        change: Some(change),
                        fee: f,
                    });
                    continue;
                }
                return Ok(out);
            }
            // Inputs: largest first until the payments are covered.
            let mut inputs = vec![];
            let mut covered = Amount::ZERO;
            for i in &usable {
                if covered >= gross {
                    break;
                }
                covered = covered
                    .checked_add(self.utxos[*i].amount)
                    .map_err(|_| ScheduleError::Overflow)?;
                inputs.push(self.utxos[*i].clone());
            }
            let payments: Vec<Payment> = self.queue.drain(..count).collect();
            self.take(&inputs);
            let payments = payments.into_iter().map(|p| (p, Amount::ZERO)).collect();
            let (tx, dropped) = plan_tx(inputs.clone(), payments, limits, fee)?;
            out.dropped.extend(dropped);
            match tx {
                Some(tx) => out.txs.push(tx),
                // Every payment was dust: the inputs stay ours, unspent.
                None => self.add_utxos(inputs)?,
            }
        }
    }

    /// What one transaction can move to `to` when nothing else is owed (a retiring key
    /// forwarding its funds): the outputs [`State::schedule`] would spend for one payment
    /// of their sum (the best `max_inputs` worth more than the cost of spending them), and
    /// that sum. `None` when nothing is worth moving: the sum would not pay the
    /// transaction's fee and leave at least dust. Queued as one payment of that sum, the
    /// scheduler spends exactly these outputs, with no change, and the payee receives
    /// the sum less the fee.
    pub fn forwardable(
        &self,
        limits: Limits,
        fee: &impl FeeModel,
        to: &ExternalAddress,
    ) -> Option<(Vec<Utxo>, Amount)> {
        let cost = input_cost(fee);
        let mut utxos = self.utxos.clone();
        sort_utxos(&mut utxos);
        let usable: Vec<Utxo> =
            utxos.into_iter().filter(|u| u.amount > cost).take(limits.max_inputs.max(1)).collect();
        let total = sum(usable.iter().map(|u| u.amount)).ok()?;
        let needed = fee.fee(usable.len(), &[to], 0, false).checked_add(limits.dust).ok()?;
        (!usable.is_empty() && total >= needed).then_some((usable, total))
    }

    fn take(&mut self, inputs: &[Utxo]) {
        self.utxos.retain(|u| !inputs.iter().any(|i| i.id == u.id));
    }
}

/// Plans the transaction that a branch output funds, once that output exists.
/// `output.amount` may differ from `branch.amount` only if the network changed it (it
/// never does for Bitcoin); any difference is amortized like a fee (a surplus becomes
/// change if above dust, else fee).
pub fn fund_branch(
    branch: Branch,
    output: Utxo,
    limits: Limits,
    fee: &impl FeeModel,
) -> Result<Scheduled, ScheduleError> {
    if limits.max_inputs == 0 || limits.max_outputs < 2 {
        return Err(ScheduleError::InvalidLimits);
    }
    let mut payments: Vec<(Payment, Amount)> =
        branch.payments.into_iter().zip(branch.fees_so_far).collect();
    let mut dropped = vec![];
    // A shortfall is taken from the payments like a fee, before planning.
    let shortfall = branch.amount.0.saturating_sub(output.amount.0);
    if shortfall > 0 {
        let shares = shares(Amount(shortfall), payments.len());
        for ((p, so_far), share) in payments.iter_mut().zip(shares) {
            p.amount = Amount(p.amount.0.saturating_sub(share.0));
            *so_far = Amount(so_far.0 + share.0);
        }
        let (keep, dust): (Vec<_>, Vec<_>) =
            payments.into_iter().partition(|(p, _)| p.amount >= limits.dust);
        dropped.extend(dust.into_iter().map(|(payment, fee)| Dropped { payment, fee }));
        payments = keep;
    }
    let (tx, more) = plan_tx(vec![output.clone()], payments, limits, fee)?;
    dropped.extend(more);
    Ok(match tx {
        Some(tx) => Scheduled { txs: vec![tx], dropped, unused: vec![] },
        None => Scheduled { txs: vec![], dropped, unused: vec![output] },
    })
}

/// A payment with the fee shares it has borne so far.
type Owed = (Payment, Amount);

/// `total` split over `n` payments: the quotient each, plus one unit on the first
/// `total % n`.
fn shares(total: Amount, n: usize) -> Vec<Amount> {
    if n == 0 {
        return vec![];
    }
    let n64 = n as u64;
    let (each, rem) = (total.0 / n64, total.0 % n64);
    (0..n64).map(|i| Amount(each + u64::from(i < rem))).collect()
}

/// Groups more payments than one transaction carries into branches of at most
/// `max_outputs` each (a branch's transaction has no change), as few as possible.
fn group(
    payments: Vec<(Payment, Amount)>,
    limits: Limits,
    change: bool,
) -> (Vec<Owed>, Vec<Vec<Owed>>) {
    // Room for direct outputs, one kept for change if there is any. A branch's own
    // transaction spends exactly its payments' sum, so it has no change and all
    // `max_outputs` fit: nesting always terminates.
    let room = limits.max_outputs - usize::from(change);
    if payments.len() <= room {
        return (payments, vec![]);
    }
    // As many branches as there is room for (at least one), of near-equal size; a branch
    // with more payments than one transaction carries branches again when funded.
    let groups = payments.len().div_ceil(limits.max_outputs).clamp(1, room.max(1));
    let size = payments.len().div_ceil(groups);
    let mut branches = vec![];
    let mut rest = payments;
    while !rest.is_empty() {
        let tail = rest.split_off(size.min(rest.len()));
        branches.push(rest);
        rest = tail;
    }
    (vec![], branches)
}

/// One transaction spending `inputs` for `payments` (amount, fee share so far), with
/// fees amortized and dust dropped until stable. `None` when every payment was dropped:
/// no transaction is made (it would only burn fees), the inputs stay unspent.
fn plan_tx(
    inputs: Vec<Utxo>,
    mut payments: Vec<(Payment, Amount)>,
    limits: Limits,
    fee: &impl FeeModel,
) -> Result<(Option<Tx>, Vec<Dropped>), ScheduleError> {
    let total = sum(inputs.iter().map(|u| u.amount))?;
    let mut dropped = vec![];
    loop {
        let gross = sum(payments.iter().map(|(p, _)| p.amount))?;
        let leftover = total.checked_sub(gross).map_err(|_| ScheduleError::Overflow)?;
        let change = leftover >= limits.dust;
        let (direct, branches) = group(payments.clone(), limits, change);
        let addresses: Vec<&ExternalAddress> = direct.iter().map(|(p, _)| &p.address).collect();
        let f = fee.fee(inputs.len(), &addresses, branches.len(), change);
        // Every payment served bears an equal share; the order is direct payments, then
        // each branch's payments in order.
        let served = direct.len() + branches.iter().map(Vec::len).sum::<usize>();
        let shares = shares(f, served);
        // Payments whose share leaves less than dust are dropped, then we plan again.
        let mut share_of = shares.iter();
        let mut all = direct.iter().chain(branches.iter().flatten());
        let mut dust = vec![];
        for (i, ((p, _), share)) in (&mut all).zip(&mut share_of).enumerate() {
            if p.amount.0 < share.0 + limits.dust.0 {
                dust.push((i, *share));
            }
        }
        if served == 0 || !dust.is_empty() {
            // Map positions (direct then branches) back to `payments`' order, which is
            // the same order: `group` keeps it.
            let mut keep = vec![];
            for (i, (p, so_far)) in payments.into_iter().enumerate() {
                match dust.iter().find(|(d, _)| *d == i) {
                    Some((_, share)) => {
                        dropped.push(Dropped { payment: p, fee: Amount(so_far.0 + share.0) })
                    }
                    None => keep.push((p, so_far)),
                }
            }
            payments = keep;
            if payments.is_empty() {
                return Ok((None, dropped));
            }
            continue;
        }
        let mut shares = shares.into_iter();
        let mut take = |(p, so_far): (Payment, Amount)| {
            let share = shares.next().unwrap_or(Amount::ZERO);
            (p, so_far, share)
        };
        let paid: Vec<Paid> = direct
            .into_iter()
            .map(&mut take)
            .map(|(payment, so_far, share)| {
                let net = Amount(payment.amount.0 - share.0);
                Paid { fee: Amount(so_far.0 + share.0), net, payment }
            })
            .collect();
        let branches: Vec<Branch> = branches
            .into_iter()
            .map(|group| {
                let (payments, fees_so_far): (Vec<Payment>, Vec<Amount>) = group
                    .into_iter()
                    .map(&mut take)
                    .map(|(mut p, so_far, share)| {
                        p.amount = Amount(p.amount.0 - share.0);
                        (p, Amount(so_far.0 + share.0))
                    })
                    .unzip();
                let amount = sum(payments.iter().map(|p| p.amount))?;
                Ok(Branch { amount, payments, fees_so_far })
            })
            .collect::<Result<_, ScheduleError>>()?;
        let fee_paid = if change { f } else { Amount(f.0 + leftover.0) };
        return Ok((
            Some(Tx {
                id: tx_id(&inputs),
                inputs,
                payments: paid,
                branches,
                change: change.then_some(leftover),
                fee: fee_paid,
            }),
            dropped,
        ));
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
