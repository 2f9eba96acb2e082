//! Planning and eventuality kernels shared by UTXO networks (the Bitcoin family, and the
//! in-memory test network): one copy of the rules the scheduler relies on, so that every
//! UTXO planner charges, keeps change and recognises completions the same way.
use crate::{Completion, NetworkParams, Plan, PlanError};

/// Sums `values`, or [`PlanError::Overflow`].
pub fn checked_sum(values: impl IntoIterator<Item = u64>) -> Result<u64, PlanError> {
    values.into_iter().try_fold(0u64, |acc, v| acc.checked_add(v)).ok_or(PlanError::Overflow)
}

/// Refuses a plan with no input or no output ([`PlanError::Empty`]), beyond the limits
/// ([`PlanError::TooLarge`]), or paying less than dust ([`PlanError::Dust`]).
pub fn check_shape<O, A>(plan: &Plan<O, A>, params: &NetworkParams) -> Result<(), PlanError> {
    let outputs = plan.payments.len() + plan.branches.len() + usize::from(plan.change);
    if plan.inputs.is_empty() || outputs == 0 {
        return Err(PlanError::Empty);
    }
    if plan.inputs.len() > params.max_inputs || outputs > params.max_outputs {
        return Err(PlanError::TooLarge {
            inputs: plan.inputs.len(),
            outputs,
            max_inputs: params.max_inputs,
            max_outputs: params.max_outputs,
        });
    }
    if let Some((index, p)) = plan.payments.iter().enumerate().find(|(_, p)| p.amount < params.dust)
    {
        return Err(PlanError::Dust { index, amount: p.amount });
    }
    Ok(())
}

/// The change and the fee of a transaction spending `inputs` to pay `paid` (payments and
/// branches), as the scheduler expects them:
/// - with `want_change`, the fee is `fee_with_change()` and the change what is left, kept
///   only if it is at least `dust`;
/// - otherwise (or if that change would be below dust), there is no change output and
///   everything left over is the fee, provided it covers `fee_without_change()`; else
///   [`PlanError::InsufficientFunds`].
///
/// Returns `(change, fee)`.
pub fn change_and_fee(
    inputs: u64,
    paid: u64,
    want_change: bool,
    dust: u64,
    fee_with_change: impl FnOnce() -> u64,
    fee_without_change: impl FnOnce() -> u64,
) -> Result<(Option<u64>, u64), PlanError> {
    if want_change {
        let fee = fee_with_change();
        let change = paid.checked_add(fee).and_then(|spent| inputs.checked_sub(spent));
        if let Some(change) = change.filter(|c| *c >= dust) {
            return Ok((Some(change), fee));
        }
    }
    let needed = fee_without_change();
    match inputs.checked_sub(paid).filter(|left| *left >= needed) {
        Some(left) => Ok((None, left)),
        None => Err(PlanError::InsufficientFunds {
            inputs: primitives::Amount(inputs),
            outputs: primitives::Amount(paid),
            fee: primitives::Amount(needed),
        }),
    }
}

/// What a block's transactions say about pending eventualities that are "this
/// transaction, spending these outputs": for each transaction (in block order, as `(its
/// id, the outputs it spends)`) and each pending eventuality (`(its transaction id, the
/// outputs it spends)`) sharing a spent output, [`Completion::Completed`] if the ids are
/// equal, else [`Completion::Conflict`]. Each (eventuality, transaction) once.
pub fn spends_against<'a, K: Ord + 'a, T: PartialEq + AsRef<[u8]> + 'a>(
    txs: impl IntoIterator<Item = (T, Vec<K>)>,
    pending: impl IntoIterator<Item = (&'a T, &'a [K])>,
) -> Vec<Completion> {
    let pending: Vec<(&T, &[K])> = pending.into_iter().collect();
    let mut by_spend: std::collections::BTreeMap<&K, Vec<usize>> = Default::default();
    for (index, (_, spends)) in pending.iter().enumerate() {
        for spend in *spends {
            by_spend.entry(spend).or_default().push(index);
        }
    }
    let mut found = vec![];
    let mut seen = std::collections::BTreeSet::new();
    for (position, (id, spent)) in txs.into_iter().enumerate() {
        for input in &spent {
            for &index in by_spend.get(input).into_iter().flatten() {
                if !seen.insert((index, position)) {
                    continue;
                }
                let tx = id.as_ref().to_vec();
                found.push(if *pending[index].0 == id {
                    Completion::Completed { index, tx }
                } else {
                    Completion::Conflict { index, tx }
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_kept_dropped_or_refused() {
        // Change at least dust: kept.
        assert_eq!(change_and_fee(1_000, 500, true, 100, || 50, || 40), Ok((Some(450), 50)));
        // Change below dust: no change, the leftover is the fee.
        assert_eq!(change_and_fee(1_000, 900, true, 100, || 50, || 40), Ok((None, 100)));
        // No change asked: the leftover is the fee.
        assert_eq!(change_and_fee(1_000, 500, false, 100, || 50, || 40), Ok((None, 500)));
        // The leftover does not cover the fee without change.
        assert!(matches!(
            change_and_fee(1_000, 970, true, 100, || 50, || 40),
            Err(PlanError::InsufficientFunds { .. })
        ));
        // Exactly enough.
        assert_eq!(change_and_fee(1_000, 960, false, 100, || 50, || 40), Ok((None, 40)));
    }

    #[test]
    fn completions_and_conflicts_once_each() {
        let planned = [7u8; 32];
        let other = [9u8; 32];
        let spends = [1u32, 2];
        let pending = [(&planned, &spends[..])];
        // The planned transaction spends both: completed once.
        let found = spends_against([(planned, vec![1, 2])], pending);
        assert_eq!(found, vec![Completion::Completed { index: 0, tx: planned.to_vec() }]);
        // Another transaction spends one of them: a conflict.
        let found = spends_against([(other, vec![3, 2])], pending);
        assert_eq!(found, vec![Completion::Conflict { index: 0, tx: other.to_vec() }]);
        // Unrelated spends: nothing.
        assert!(spends_against([(other, vec![3])], pending).is_empty());
    }
}
