//! What `processor status` and `/status` report, read from the database.

use bus::{Mailbox, INBOX};
use db::{DbError, Get};
use serde::{Deserialize, Serialize};

use key_gen::KeyGen;

use crate::handler::DEFERRED;

/// A point-in-time view of the processor's durable state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusReport {
    /// This processor.
    pub party: String,
    /// Messages received, not yet handled.
    pub inbox_pending: u64,
    /// Messages kept for handlers not yet available.
    pub deferred: u64,
    /// Messages sent, not yet acknowledged end to end.
    pub outbox_pending: u64,
    /// Per peer: highest sequence acknowledged and next sequence to assign.
    pub routes: Vec<Route>,
    /// Generated key pairs, by session.
    pub keys: Vec<KeyPair>,
}

/// A generated key pair (public data only).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyPair {
    /// The validator set's session.
    pub session: u32,
    /// The attempt that produced it.
    pub attempt: u32,
    /// Signers needed.
    pub threshold: u16,
    /// The validators holding shares.
    pub participants: Vec<u16>,
    /// The Ristretto group key, hex.
    pub ristretto_key: String,
    /// The network group key, hex.
    pub network_key: String,
    /// Confirmed by the coordinator: active.
    pub active: bool,
}

/// One outgoing route.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Route {
    /// The peer's database code.
    pub peer: u32,
    /// Highest sequence the peer acknowledged.
    pub acked: u64,
    /// Next sequence to assign.
    pub next: u64,
}

impl StatusReport {
    /// Reads the report in one read transaction.
    pub fn read(party: String, txn: &impl Get) -> Result<Self, DbError> {
        Ok(StatusReport {
            party,
            inbox_pending: INBOX.len(txn)?,
            deferred: DEFERRED.len(txn)?,
            outbox_pending: Mailbox::pending(txn)?.len() as u64,
            routes: Mailbox::routes(txn)?
                .into_iter()
                .map(|(peer, acked, next)| Route { peer, acked, next })
                .collect(),
            keys: KeyGen::all_generated(txn)?
                .into_iter()
                .map(|(session, g)| KeyPair {
                    session,
                    attempt: g.attempt,
                    threshold: g.threshold,
                    participants: g.participants,
                    ristretto_key: hex::encode(g.ristretto_key),
                    network_key: hex::encode(g.network_key),
                    active: g.confirmed,
                })
                .collect(),
        })
    }

    /// Lines for a terminal.
    pub fn human(&self) -> String {
        let mut out = format!(
            "processor      {}\ninbox pending  {}\ndeferred       {}\noutbox pending {}\n",
            self.party, self.inbox_pending, self.deferred, self.outbox_pending
        );
        for k in &self.keys {
            out += &format!(
                "session {} key ({}-of-{:?}, attempt {}){}: ristretto {} network {}\n",
                k.session,
                k.threshold,
                k.participants,
                k.attempt,
                if k.active { " ACTIVE" } else { " awaiting confirmation" },
                k.ristretto_key,
                k.network_key
            );
        }
        for r in &self.routes {
            out +=
                &format!("route to {:#010x}: acked through {}, next {}\n", r.peer, r.acked, r.next);
        }
        out
    }
}
