//! Deadlines: an attempt without progress is reattempted without the members that did not
//! send what its stage needed.
use db::{Get, WriteTxn};
use messages::{Participant, SignKind};

use super::*;
use crate::keygen::SimError;

impl SignCoordinator {
    /// Whether some item's attempt is past its deadline (read-only).
    pub fn timeout_due(&self, txn: &impl Get) -> Result<bool, SimError> {
        let now = self.clock.now_ms();
        for item in active_items(txn)? {
            if self.overdue(txn, &item, now)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether `item`'s attempt is past its deadline: the timeout, or
    /// [`SIGNED_TIMEOUT_FACTOR`] times it for a plan whose shares were all relayed and that
    /// a member of the set reports signed (its transaction exists, or a member's blame
    /// will say otherwise; only a crash of every honest member needs the deadline then).
    fn overdue(&self, txn: &impl Get, item: &SignItem, now: u64) -> Result<bool, SimError> {
        if !self.configured(item.set()) {
            return Ok(false);
        }
        let mut timeout = self.timeout_ms;
        // The members of the set (or open session) whose shares were all relayed.
        let mut signed_by: Vec<Participant> = vec![];
        if item.stage == SignStage::Completing {
            signed_by.extend(&item.selected);
        }
        for session in item.open.iter().filter(|o| o.stage == SignStage::Completing) {
            signed_by.extend(&session.selected);
        }
        if matches!(item.kind, SignKind::Plan(_)) {
            for member in &signed_by {
                if COMPLETION_REPORTS.get(txn, &(item.id(), *member))?.is_some() {
                    timeout = timeout.saturating_mul(SIGNED_TIMEOUT_FACTOR);
                    break;
                }
            }
        }
        Ok(now.saturating_sub(item.last_progress_ms) >= timeout)
    }

    /// Reattempts every item past its deadline, without the members that did not send
    /// what its stage needed. Returns whether anything changed.
    pub fn check_timeouts(&self, txn: &mut WriteTxn) -> Result<bool, SimError> {
        let now = self.clock.now_ms();
        let mut changed = false;
        for mut item in active_items(txn)? {
            if !self.overdue(txn, &item, now)? {
                continue;
            }
            let Ok(signer) = self.signer(txn, item.network, item.session)? else { continue };
            // Silent: who the forming attempt waits for, and the members of open sessions
            // (ROAST) that never sent their share.
            // While a session signs (all its shares relayed), the forming attempt asked
            // nobody more: only the open sessions' missing shares are silence.
            let signing = item.open.iter().any(|o| o.stage == SignStage::Completing);
            let mut silent = if signing { vec![] } else { waiting_for(txn, &item)? };
            for owing in self.owing(txn, &item)?.into_values() {
                silent.extend(owing);
            }
            silent.sort_unstable();
            silent.dedup();
            let span = tracing::info_span!("sign", network = %item.network, session = item.session, kind = %kind_name(&item.kind), attempt = item.attempt);
            let _enter = span.enter();
            tracing::warn!(stage = item.stage.name(), ?silent, "signing attempt timed out");
            let outcome =
                format!("timed out in the {} stage waiting for {silent:?}", item.stage.name());
            self.reattempt(txn, &signer, &mut item, silent, outcome)?;
            ITEMS.put(txn, &item.id(), &item)?;
            changed = true;
        }
        Ok(changed)
    }
}
