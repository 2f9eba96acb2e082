//! Key rotations (docs/rotation.md): which set hands over to which, and when.
//!
//! Every confirmed set of a network that is not the newest hands over to the newest, but
//! never while a set handing over to it is still live: a set that others forward to must
//! not retire before they did (what they forward would be stranded on its key). So a set
//! elected while a rotation runs waits, and the set before it hands over once its own
//! predecessor retired. [`reconcile`] applies this rule; it runs when a key is confirmed
//! and when a set retires.
use std::collections::BTreeMap;

use bus::Mailbox;
use db::WriteTxn;
use messages::{CoordinatorMessage, Party, Session, SettlementEvent};
use primitives::codec::Versioned;
use primitives::NetworkId;

use crate::config::SetConfig;
use crate::keygen::SimError;
use crate::signing::set_settlement;
use crate::state::{set_key, Rotation, ROTATIONS, SETS};

/// Whether the set with rotation `rotation` and `threshold` key holders retired.
pub fn retired(rotation: &Rotation, threshold: u16) -> bool {
    rotation.retired.len() >= usize::from(threshold)
}

/// Starts every rotation of `network` the rule allows now (see the module documentation),
/// in `txn`: records it and sends `Rotation` to the outgoing set's key holders. Its close
/// block is `close_after` blocks after the later of the successor's activation block and
/// the outgoing set's last settled block.
pub fn reconcile(
    txn: &mut WriteTxn,
    sets: &[SetConfig],
    mailbox: &Mailbox,
    network: NetworkId,
    close_after: u64,
) -> Result<(), SimError> {
    let mut confirmed = BTreeMap::new();
    for config in sets.iter().filter(|s| s.network == network) {
        if let Some(state) = SETS.get(txn, &config.key())?.filter(|s| s.confirmed.is_some()) {
            confirmed.insert(config.session, state);
        }
    }
    let Some((&newest, newest_state)) = confirmed.iter().next_back() else { return Ok(()) };
    let successor_key = newest_state.confirmed.as_ref().map(|c| c.network_key.clone());
    let activation = newest_state.confirmed.as_ref().and_then(|c| c.activation_block);
    let (Some(successor_key), newest_state) = (successor_key, newest_state.clone()) else {
        return Ok(());
    };
    let mut rotations = BTreeMap::new();
    for &session in confirmed.keys() {
        if let Some(r) = ROTATIONS.get(txn, &set_key(network, session))? {
            rotations.insert(session, r);
        }
    }
    for (&session, state) in confirmed.iter().filter(|(s, _)| **s != newest) {
        if rotations.contains_key(&session) {
            continue;
        }
        // Someone still forwards to this set: it hands over once they retired.
        let forwarded_to = rotations.iter().any(|(from, r)| {
            r.successor == session
                && !retired(r, confirmed.get(from).map_or(u16::MAX, |s| s.threshold))
        });
        if forwarded_to {
            tracing::info!(
                session,
                successor = newest,
                "rotation deferred: an older set still forwards to this one"
            );
            continue;
        }
        let key = set_key(network, session);
        // Closing starts after: the successor's activation; this set's own activation and
        // its last settled block (it may have joined after the newest); and every block at
        // which a set that forwarded to it retired (its last forward is in that block or
        // before, and this set must apply it before it may retire).
        let last = set_settlement(txn, key)?.last_block.map(|b| b + 1);
        let own = state.confirmed.as_ref().and_then(|c| c.activation_block);
        let forwarded_until = rotations
            .values()
            .filter(|r| r.successor == session)
            .flat_map(|r| r.retired.values().map(|b| b + 1))
            .max();
        let close_block = [activation, own, last, forwarded_until]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0)
            .saturating_add(close_after);
        let rotation = Rotation {
            successor: newest,
            successor_key: successor_key.clone(),
            close_block,
            retired: BTreeMap::new(),
        };
        ROTATIONS.put(txn, &key, &rotation)?;
        for to in &state.participants {
            let event = SettlementEvent::Rotation {
                session: Session(session),
                successor: Session(newest),
                successor_key: successor_key.clone(),
                close_block,
            };
            let message = CoordinatorMessage::Settlement(event);
            mailbox.send(txn, Party::Processor { network, validator: *to }, message.encode())?;
        }
        tracing::info!(
            from = session,
            to = newest_state.session,
            close_block,
            "rotation: the set forwards its funds to the newest set and closes"
        );
    }
    Ok(())
}
