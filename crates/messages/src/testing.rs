//! Proptest strategies for every message (feature `testing`).
#![allow(missing_docs)]

use std::collections::BTreeMap;

use primitives::testing as p;
use proptest::prelude::*;

use crate::*;

pub fn party() -> impl Strategy<Value = Party> {
    prop_oneof![
        Just(Party::Coordinator),
        (p::network(), 1u16..200)
            .prop_map(|(network, validator)| Party::Processor { network, validator }),
    ]
}

pub fn processor() -> impl Strategy<Value = Party> {
    (p::network(), 1u16..200)
        .prop_map(|(network, validator)| Party::Processor { network, validator })
}

fn blob() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..300)
}

fn by_participant() -> impl Strategy<Value = BTreeMap<u16, Vec<u8>>> {
    prop::collection::btree_map(1u16..100, blob(), 0..6)
}

pub fn key_gen_id() -> impl Strategy<Value = KeyGenId> {
    (any::<u32>(), any::<u32>()).prop_map(|(s, attempt)| KeyGenId { session: Session(s), attempt })
}

pub fn sign_id() -> impl Strategy<Value = SignId> {
    let kind = prop_oneof![
        any::<u32>().prop_map(SignKind::Batch),
        any::<[u8; 32]>().prop_map(SignKind::Plan)
    ];
    (any::<u32>(), kind, any::<u32>()).prop_map(|(s, kind, attempt)| SignId {
        session: Session(s),
        kind,
        attempt,
    })
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        any::<u64>().prop_map(|nonce| Status::Ping { nonce }),
        (any::<u64>(), any::<u32>())
            .prop_map(|(nonce, protocol_version)| Status::Pong { nonce, protocol_version }),
    ]
}

pub fn coordinator_message() -> impl Strategy<Value = CoordinatorMessage> {
    let key_gen = prop_oneof![
        (
            key_gen_id(),
            p::network(),
            any::<u16>(),
            prop::collection::vec(any::<u16>(), 0..10),
            any::<u16>()
        )
            .prop_map(|(id, network, threshold, participants, me)| {
                KeyGenRequest::GenerateKey { id, network, threshold, participants, me }
            }),
        (key_gen_id(), by_participant())
            .prop_map(|(id, commitments)| KeyGenRequest::Commitments { id, commitments }),
        (key_gen_id(), by_participant())
            .prop_map(|(id, shares)| KeyGenRequest::Shares { id, shares }),
    ];
    let sign = prop_oneof![
        (sign_id(), by_participant())
            .prop_map(|(id, preprocesses)| SignRequest::Preprocesses { id, preprocesses }),
        (sign_id(), by_participant()).prop_map(|(id, shares)| SignRequest::Shares { id, shares }),
        sign_id().prop_map(|id| SignRequest::Reattempt { id }),
        (any::<u32>(), any::<[u8; 32]>(), blob())
            .prop_map(|(s, plan, tx)| SignRequest::Completed { session: Session(s), plan, tx }),
    ];
    let settlement = prop_oneof![
        (any::<u32>(), any::<[u8; 32]>(), blob(), any::<Option<u64>>(), any::<Option<[u64; 7]>>())
            .prop_map(|(s, ristretto_key, network_key, activation_block, settings)| {
                SettlementEvent::ConfirmKeyPair {
                    session: Session(s),
                    ristretto_key,
                    network_key,
                    activation_block,
                    settings: settings.map(chain_settings),
                }
            }),
        (
            (any::<u32>(), any::<u64>()),
            p::block_hash(),
            prop::collection::vec(any::<u32>(), 0..5),
            prop::collection::vec(p::payment(), 0..5)
        )
            .prop_map(|((s, settlement_block), network_block, batches, burns)| {
                SettlementEvent::BlockAcknowledged {
                    session: Session(s),
                    settlement_block,
                    network_block,
                    batches,
                    burns,
                }
            }),
        (any::<u32>(), any::<u32>(), blob(), any::<u64>()).prop_map(
            |(s, successor, successor_key, close_block)| SettlementEvent::Rotation {
                session: Session(s),
                successor: Session(successor),
                successor_key,
                close_block,
            }
        ),
    ];
    prop_oneof![
        key_gen.prop_map(CoordinatorMessage::KeyGen),
        sign.prop_map(CoordinatorMessage::Sign),
        settlement.prop_map(CoordinatorMessage::Settlement),
        status().prop_map(CoordinatorMessage::Status),
    ]
}

/// Settings from seven numbers, in field order.
fn chain_settings(s: [u64; 7]) -> ChainSettings {
    ChainSettings {
        confirmations: s[0],
        max_inputs: s[1],
        max_outputs: s[2],
        dust: s[3],
        min_fee_rate: s[4],
        max_fee_rate: s[5],
        max_money: s[6],
    }
}

pub fn processor_message() -> impl Strategy<Value = ProcessorMessage> {
    let key_gen = prop_oneof![
        (key_gen_id(), blob())
            .prop_map(|(id, commitments)| KeyGenResponse::Commitments { id, commitments }),
        (key_gen_id(), by_participant())
            .prop_map(|(id, shares)| KeyGenResponse::Shares { id, shares }),
        (key_gen_id(), any::<u16>(), blob())
            .prop_map(|(id, accused, evidence)| KeyGenResponse::Blame { id, accused, evidence }),
        (key_gen_id(), any::<[u8; 32]>(), blob(), any::<Option<u64>>(), any::<Option<[u64; 7]>>())
            .prop_map(|(id, ristretto_key, network_key, proposed_activation, settings)| {
                KeyGenResponse::GeneratedKeyPair {
                    id,
                    ristretto_key,
                    network_key,
                    proposed_activation,
                    settings: settings.map(chain_settings),
                }
            }),
        (key_gen_id(), "[ -~]{0,64}")
            .prop_map(|(id, reason)| KeyGenResponse::Refused { id, reason }),
    ];
    let sign = prop_oneof![
        (sign_id(), blob())
            .prop_map(|(id, preprocess)| SignResponse::Preprocess { id, preprocess }),
        (sign_id(), blob()).prop_map(|(id, share)| SignResponse::Share { id, share }),
        (sign_id(), blob()).prop_map(|(id, statement)| SignResponse::Statement { id, statement }),
        (sign_id(), any::<u16>()).prop_map(|(id, accused)| SignResponse::Blame { id, accused }),
        (any::<u32>(), any::<[u8; 32]>(), blob())
            .prop_map(|(s, plan, tx)| SignResponse::Completed { session: Session(s), plan, tx }),
    ];
    let batch = prop_oneof![
        p::batch().prop_map(BatchReport::Batch),
        (p::batch(), any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(batch, a, b)| {
            let mut signature = [0; 64];
            signature[..32].copy_from_slice(&a);
            signature[32..].copy_from_slice(&b);
            BatchReport::SignedBatch { batch, signature }
        }),
    ];
    let settlement = (any::<u32>(), any::<u64>())
        .prop_map(|(s, block)| SettlementReport::Retired { session: Session(s), block });
    prop_oneof![
        key_gen.prop_map(ProcessorMessage::KeyGen),
        sign.prop_map(ProcessorMessage::Sign),
        batch.prop_map(ProcessorMessage::Batch),
        status().prop_map(ProcessorMessage::Status),
        settlement.prop_map(ProcessorMessage::Settlement),
    ]
}
