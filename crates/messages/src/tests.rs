use primitives::codec::{CodecError, Versioned};
use proptest::prelude::*;
use rand_core::OsRng;

use crate::{testing::*, *};

struct World {
    coordinator: Identity,
    processor: Identity,
    processor_party: Party,
    /// What the processor pins.
    at_processor: KeyRegistry,
    /// What the coordinator pins.
    at_coordinator: KeyRegistry,
}

fn world() -> World {
    let coordinator = Identity::generate(&mut OsRng);
    let processor = Identity::generate(&mut OsRng);
    let processor_party =
        Party::Processor { network: primitives::NetworkId::Bitcoin, validator: 1 };
    let mut at_processor = KeyRegistry::new();
    at_processor.insert(Party::Coordinator, coordinator.public());
    let mut at_coordinator = KeyRegistry::new();
    at_coordinator.insert(processor_party, processor.public());
    World { coordinator, processor, processor_party, at_processor, at_coordinator }
}

fn to_processor(w: &World, m: &CoordinatorMessage, seq: u64) -> Vec<u8> {
    seal(&w.coordinator, Party::Coordinator, w.processor_party, seq, Body::Message(m.encode()))
        .encode()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn coordinator_messages_round_trip(m in coordinator_message(), seq in 1u64..u64::MAX) {
        let w = world();
        let bytes = to_processor(&w, &m, seq);
        let opened = open(&bytes, &w.at_processor, w.processor_party).unwrap();
        prop_assert_eq!(opened.sender, Party::Coordinator);
        prop_assert_eq!(opened.sequence, seq);
        prop_assert_eq!(opened.intent, Some(Intent::of(Party::Coordinator, w.processor_party, &m.encode())));
        prop_assert_eq!(opened.content, Content::Coordinator(m));
    }

    #[test]
    fn processor_messages_round_trip(m in processor_message(), seq in 1u64..1000) {
        let w = world();
        let bytes = seal(&w.processor, w.processor_party, Party::Coordinator, seq, Body::Message(m.encode())).encode();
        let opened = open(&bytes, &w.at_coordinator, Party::Coordinator).unwrap();
        prop_assert_eq!(opened.sender, w.processor_party);
        prop_assert_eq!(opened.content, Content::Processor(m));
    }

    #[test]
    fn acks_round_trip(through in any::<u64>()) {
        let w = world();
        let bytes = seal(&w.processor, w.processor_party, Party::Coordinator, 0, Body::Ack { through }).encode();
        let opened = open(&bytes, &w.at_coordinator, Party::Coordinator).unwrap();
        prop_assert_eq!(opened.content, Content::Ack { through });
        prop_assert_eq!(opened.intent, None);
    }

    #[test]
    fn truncated_envelopes_are_rejected(m in coordinator_message(), cut in any::<prop::sample::Index>()) {
        let w = world();
        let bytes = to_processor(&w, &m, 1);
        let cut = cut.index(bytes.len());
        let err = open(&bytes[..cut], &w.at_processor, w.processor_party).unwrap_err();
        prop_assert!(matches!(err, EnvelopeError::Envelope(_)), "{:?}", err);
    }

    #[test]
    fn extended_envelopes_are_rejected(m in coordinator_message(), extra in prop::collection::vec(any::<u8>(), 1..64)) {
        let w = world();
        let mut bytes = to_processor(&w, &m, 1);
        bytes.extend(extra);
        let err = open(&bytes, &w.at_processor, w.processor_party).unwrap_err();
        prop_assert!(matches!(err, EnvelopeError::Envelope(CodecError::TrailingBytes(_))), "{:?}", err);
    }

    /// Any single flipped bit is caught: by decoding, by the recipient/route checks, or by
    /// the signature. Nothing flipped is ever accepted.
    #[test]
    fn bit_flips_are_rejected(m in coordinator_message(), bit in any::<prop::sample::Index>()) {
        let w = world();
        let mut bytes = to_processor(&w, &m, 7);
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(open(&bytes, &w.at_processor, w.processor_party).is_err());
    }

    /// Random bytes never panic and are never accepted.
    #[test]
    fn random_bytes_are_rejected(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let w = world();
        prop_assert!(open(&bytes, &w.at_processor, w.processor_party).is_err());
    }

    /// Envelopes that decode, carrying random bodies, never panic the message decoder.
    #[test]
    fn random_message_bodies_are_rejected_or_canonical(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let w = world();
        let bytes = seal(&w.coordinator, Party::Coordinator, w.processor_party, 1, Body::Message(body.clone())).encode();
        match open(&bytes, &w.at_processor, w.processor_party) {
            Ok(Opened { content: Content::Coordinator(m), .. }) => prop_assert_eq!(m.encode(), body),
            Ok(other) => prop_assert!(false, "unexpected {:?}", other),
            Err(e) => prop_assert!(matches!(e, EnvelopeError::Message { .. } | EnvelopeError::NonCanonical), "{:?}", e),
        }
    }

    #[test]
    fn intents_differ_by_route_and_content(a in coordinator_message(), b in coordinator_message(), p in processor(), q in processor()) {
        let (ea, eb) = (a.encode(), b.encode());
        prop_assert_eq!(ea == eb, Intent::of(Party::Coordinator, p, &ea) == Intent::of(Party::Coordinator, p, &eb));
        prop_assert_eq!(p == q, Intent::of(Party::Coordinator, p, &ea) == Intent::of(Party::Coordinator, q, &ea));
    }
}

#[test]
fn wrong_version_is_rejected() {
    let w = world();
    let m = CoordinatorMessage::Status(Status::Ping { nonce: 1 });
    let mut bytes = to_processor(&w, &m, 1);
    bytes[0] = 2;
    let err = open(&bytes, &w.at_processor, w.processor_party).unwrap_err();
    assert!(matches!(
        err,
        EnvelopeError::Envelope(CodecError::UnknownVersion { found: 2, expected: 1 })
    ));
    assert_eq!(err.reason(), "unknown_version");

    // A message of an unknown version inside a valid envelope.
    let mut inner = m.encode();
    inner[0] = 9;
    let bytes =
        seal(&w.coordinator, Party::Coordinator, w.processor_party, 1, Body::Message(inner))
            .encode();
    let err = open(&bytes, &w.at_processor, w.processor_party).unwrap_err();
    assert!(matches!(
        err,
        EnvelopeError::Message { source: CodecError::UnknownVersion { found: 9, .. }, .. }
    ));
}

#[test]
fn oversized_envelopes_are_rejected_before_parsing() {
    let w = world();
    let bytes = vec![1u8; Envelope::MAX_ENCODED_LEN + 1];
    let err = open(&bytes, &w.at_processor, w.processor_party).unwrap_err();
    assert_eq!(err.reason(), "oversized");

    // A validly signed message over the message limit.
    let huge = vec![0u8; MAX_MESSAGE_LEN + 1];
    let bytes = seal(&w.coordinator, Party::Coordinator, w.processor_party, 1, Body::Message(huge))
        .encode();
    let err = open(&bytes, &w.at_processor, w.processor_party).unwrap_err();
    assert!(
        matches!(err, EnvelopeError::Message { source: CodecError::TooLong { .. }, .. }),
        "{err:?}"
    );
}

#[test]
fn wrong_signature_unknown_sender_and_misroutes_are_rejected() {
    let w = world();
    let m = CoordinatorMessage::Status(Status::Ping { nonce: 5 }).encode();
    // Signed by the processor's key while claiming to be the coordinator.
    let forged =
        seal(&w.processor, Party::Coordinator, w.processor_party, 1, Body::Message(m.clone()))
            .encode();
    let err = open(&forged, &w.at_processor, w.processor_party).unwrap_err();
    assert!(matches!(err, EnvelopeError::BadSignature(Party::Coordinator)));

    // From a processor nobody pinned.
    let stranger = Party::Processor { network: primitives::NetworkId::Monero, validator: 9 };
    let p = ProcessorMessage::Status(Status::Ping { nonce: 1 }).encode();
    let unknown = seal(
        &Identity::generate(&mut OsRng),
        stranger,
        Party::Coordinator,
        1,
        Body::Message(p.clone()),
    )
    .encode();
    assert!(matches!(
        open(&unknown, &w.at_coordinator, Party::Coordinator).unwrap_err(),
        EnvelopeError::UnknownSender(s) if s == stranger
    ));

    // Addressed to another processor.
    let other = Party::Processor { network: primitives::NetworkId::Bitcoin, validator: 2 };
    let misaddressed =
        seal(&w.coordinator, Party::Coordinator, other, 1, Body::Message(m.clone())).encode();
    assert!(matches!(
        open(&misaddressed, &w.at_processor, w.processor_party).unwrap_err(),
        EnvelopeError::WrongRecipient { .. }
    ));

    // Processor to processor is never legal, even when signed by a pinned key.
    let mut registry = w.at_processor.clone();
    registry.insert(other, w.processor.public());
    let p2p = seal(&w.processor, other, w.processor_party, 1, Body::Message(p)).encode();
    assert!(matches!(
        open(&p2p, &registry, w.processor_party).unwrap_err(),
        EnvelopeError::IllegalRoute { .. }
    ));

    // Sequence 0 is reserved for acks, and acks carry only sequence 0.
    let zero =
        seal(&w.coordinator, Party::Coordinator, w.processor_party, 0, Body::Message(m)).encode();
    assert!(matches!(
        open(&zero, &w.at_processor, w.processor_party).unwrap_err(),
        EnvelopeError::BadSequence(0)
    ));
    let ack =
        seal(&w.coordinator, Party::Coordinator, w.processor_party, 3, Body::Ack { through: 1 })
            .encode();
    assert!(matches!(
        open(&ack, &w.at_processor, w.processor_party).unwrap_err(),
        EnvelopeError::BadSequence(3)
    ));
}

/// A `KeyGenRequest::Commitments` whose map has entries from `senders`, in that order.
fn commitments_body(senders: &[u16]) -> Vec<u8> {
    let id = KeyGenId { session: Session(1), attempt: 0 };
    let mut body = vec![PROTOCOL_VERSION, 0 /* KeyGen */, 1 /* Commitments */];
    body.extend(primitives::codec::encode_body(&id));
    body.extend(u32::try_from(senders.len()).unwrap().to_le_bytes());
    for who in senders {
        body.extend(who.to_le_bytes());
        body.extend(1u32.to_le_bytes());
        body.push(*who as u8);
    }
    body
}

#[test]
fn non_canonical_maps_are_rejected() {
    // Two entries in descending order: decodes in some borsh versions, but is not the
    // canonical encoding, so it must not be accepted (it would have a second intent).
    let w = world();
    let body = commitments_body(&[2, 1]);
    let bytes = seal(&w.coordinator, Party::Coordinator, w.processor_party, 1, Body::Message(body))
        .encode();
    let err = open(&bytes, &w.at_processor, w.processor_party).unwrap_err();
    assert!(matches!(err, EnvelopeError::NonCanonical | EnvelopeError::Message { .. }), "{err:?}");
}

#[test]
fn the_message_decoders_refuse_unordered_and_duplicate_map_keys() {
    // Found by tests/fuzz_messages.rs: `Versioned::decode` itself accepted a map in
    // descending order (only `open`'s re-encoding refused it) until borsh's
    // `de_strict_order` was enabled. Duplicate keys collapsed into one entry the same way.
    assert!(CoordinatorMessage::decode(&commitments_body(&[1, 2])).is_ok());
    for senders in [&[2u16, 1][..], &[1, 1], &[1, 3, 2]] {
        let result = CoordinatorMessage::decode(&commitments_body(senders));
        assert!(matches!(result, Err(CodecError::Malformed(_))), "{senders:?}: {result:?}");
    }
}

#[test]
fn oversized_batches_inside_messages_are_rejected() {
    use primitives::*;
    let w = world();
    let big = InInstructionWithBalance {
        instruction: InInstruction {
            account: SettlementAccount([1; 32]),
            return_address: Some(ExternalAddress::new(vec![2; MAX_ADDRESS_LEN]).unwrap()),
        },
        balance: Balance { coin: Coin::Bitcoin, amount: Amount(1) },
    };
    let batch = |n| Batch {
        network: NetworkId::Bitcoin,
        session: 0,
        id: 0,
        block: BlockHash([0; 32]),
        number: 0,
        instructions: vec![big.clone(); n],
    };
    let send = |b: Batch| {
        let m = ProcessorMessage::Batch(BatchReport::Batch(b)).encode();
        let bytes =
            seal(&w.processor, w.processor_party, Party::Coordinator, 1, Body::Message(m)).encode();
        open(&bytes, &w.at_coordinator, Party::Coordinator)
    };
    // Each instruction encodes to 174 bytes: 140 fit in 25,000 bytes, 150 do not.
    assert!(send(batch(140)).is_ok());
    let err = send(batch(150)).unwrap_err();
    assert!(
        matches!(
            err,
            EnvelopeError::Message { source: CodecError::TooLong { max: MAX_BATCH_SIZE, .. }, .. }
        ),
        "{err:?}"
    );
}

#[test]
fn identity_debug_hides_the_secret() {
    let id = Identity::from_secret(&[0x42; 32]);
    let shown = format!("{id:?}");
    assert!(!shown.contains(&hex::encode([0x42u8; 32])));
    assert!(shown.contains(&hex::encode(id.public().as_bytes())));
}
