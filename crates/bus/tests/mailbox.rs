//! The mailbox's own rules, without a transport: ordering, holding, bounds, lying acks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bus::{Mailbox, Receipt, SendError, INBOX, MAX_HELD_AHEAD};
use common::*;
use messages::{
    envelope::{seal, Body},
    Identity, MAX_MESSAGE_LEN,
};
use primitives::codec::Versioned;
use rand_core::OsRng;

/// The envelopes `node` queued, in sequence order.
fn queued(node: &Node) -> Vec<Vec<u8>> {
    Mailbox::pending(&node.db.read().unwrap())
        .unwrap()
        .into_iter()
        .map(|(_, o)| o.envelope)
        .collect()
}

#[test]
fn out_of_order_messages_are_held_then_delivered_in_order() {
    let (p, c) = pair();
    let mut txn = p.db.write().unwrap();
    for n in 0..4 {
        p.mailbox.send(&mut txn, C, ping(n)).unwrap();
    }
    txn.commit().unwrap();
    let e = queued(&p);
    for i in [2, 3, 1] {
        let r = c.mailbox.receive(&c.db, &e[i]).unwrap();
        assert!(matches!(r, Receipt::Message { through: 0, delivered: 0, .. }), "{r:?}");
    }
    assert_eq!(INBOX.len(&c.db.read().unwrap()).unwrap(), 0);
    let r = c.mailbox.receive(&c.db, &e[0]).unwrap();
    assert!(matches!(r, Receipt::Message { through: 4, delivered: 4, .. }), "{r:?}");
    let got: Vec<_> =
        INBOX.items(&c.db.read().unwrap()).unwrap().into_iter().map(|(_, r)| r.message).collect();
    assert_eq!(got, (0..4).map(ping).collect::<Vec<_>>());
}

#[test]
fn the_held_window_is_bounded() {
    let (p, c) = pair();
    let mut txn = p.db.write().unwrap();
    for n in 0..=MAX_HELD_AHEAD + 1 {
        p.mailbox.send(&mut txn, C, ping(n)).unwrap();
    }
    txn.commit().unwrap();
    let e = queued(&p);
    // Sequence 1 + MAX_HELD_AHEAD is exactly MAX_HELD_AHEAD ahead of 1: held.
    let at_limit = &e[MAX_HELD_AHEAD as usize];
    assert!(matches!(c.mailbox.receive(&c.db, at_limit).unwrap(), Receipt::Message { .. }));
    // One further is dropped (and counted); nothing is stored for it.
    let before = snapshot(&c.db);
    let beyond = &e[MAX_HELD_AHEAD as usize + 1];
    assert!(matches!(c.mailbox.receive(&c.db, beyond).unwrap(), Receipt::TooFarAhead { .. }));
    assert_eq!(snapshot(&c.db), before);
    assert_eq!(c.metrics.too_far_ahead.get(), 1);
}

#[test]
fn an_ack_for_messages_never_sent_changes_nothing() {
    let (p, c) = pair();
    let mut txn = p.db.write().unwrap();
    p.mailbox.send(&mut txn, C, ping(1)).unwrap();
    txn.commit().unwrap();
    // The coordinator "acknowledges" sequences 1..=5, but only 1 was ever sent.
    let (lying_ack, _) = c.mailbox.ack_envelope(P, 5);
    let before = snapshot(&p.db);
    assert!(matches!(p.mailbox.receive(&p.db, &lying_ack).unwrap(), Receipt::Rejected(_)));
    assert_eq!(snapshot(&p.db), before, "the lying ack removed outbox entries");
    assert_eq!(p.metrics.rejected_count("ack_beyond_sent"), 1);
    // An honest ack removes exactly what it covers.
    let (ack, _) = c.mailbox.ack_envelope(P, 1);
    assert!(matches!(p.mailbox.receive(&p.db, &ack).unwrap(), Receipt::Ack { removed: 1, .. }));
    assert!(queued(&p).is_empty());
}

#[test]
fn the_same_content_under_a_new_sequence_is_delivered_once() {
    let (p, c) = pair();
    let mut txn = p.db.write().unwrap();
    p.mailbox.send(&mut txn, C, ping(7)).unwrap();
    p.mailbox.send(&mut txn, C, ping(7)).unwrap();
    p.mailbox.send(&mut txn, C, ping(8)).unwrap();
    txn.commit().unwrap();
    for e in queued(&p) {
        c.mailbox.receive(&c.db, &e).unwrap();
    }
    let got: Vec<_> =
        INBOX.items(&c.db.read().unwrap()).unwrap().into_iter().map(|(_, r)| r.message).collect();
    assert_eq!(got, vec![ping(7), ping(8)]);
    assert_eq!(c.metrics.duplicates.get(), 1);
}

#[test]
fn oversized_messages_are_refused_before_anything_is_queued() {
    let (p, _c) = pair();
    let mut txn = p.db.write().unwrap();
    let err = p.mailbox.send(&mut txn, C, vec![0; MAX_MESSAGE_LEN + 1]).unwrap_err();
    assert!(matches!(err, SendError::TooLarge { .. }));
    txn.commit().unwrap();
    assert!(queued(&p).is_empty());
}

#[test]
fn a_valid_envelope_from_an_impostor_key_is_rejected() {
    let (_p, c) = pair();
    let before = snapshot(&c.db);
    let forged = seal(&Identity::generate(&mut OsRng), P, C, 1, Body::Message(ping(1))).encode();
    assert!(matches!(c.mailbox.receive(&c.db, &forged).unwrap(), Receipt::Rejected(_)));
    assert_eq!(snapshot(&c.db), before);
    assert_eq!(c.metrics.rejected_count("bad_signature"), 1);
}
