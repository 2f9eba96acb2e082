use proptest::prelude::*;

use crate::{codec::encode_body, testing, *};

proptest! {
    #[test]
    fn batch_round_trips(batch in testing::batch()) {
        let bytes = batch.encode();
        prop_assert!(bytes.len() <= MAX_BATCH_SIZE);
        prop_assert_eq!(Batch::decode(&bytes).unwrap(), batch);
    }

    #[test]
    fn in_instruction_round_trips_within_bound(i in testing::in_instruction()) {
        let bytes = i.encode();
        prop_assert!(bytes.len() <= InInstruction::MAX_ENCODED_LEN);
        prop_assert_eq!(InInstruction::decode(&bytes).unwrap(), i);
    }

    #[test]
    fn truncation_and_extension_are_rejected(batch in testing::batch(), cut in any::<prop::sample::Index>()) {
        let bytes = batch.encode();
        let cut = cut.index(bytes.len());
        prop_assert!(Batch::decode(&bytes[..cut]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        let rejected = matches!(
            Batch::decode(&longer),
            Err(CodecError::TrailingBytes(1)) | Err(CodecError::TooLong { .. })
        );
        prop_assert!(rejected);
    }

    #[test]
    fn split_keeps_order_and_bound(
        instructions in prop::collection::vec(testing::in_instruction_with_balance(), 0..400),
        first in 0u32..1000,
    ) {
        let batches = Batch::split(NetworkId::Bitcoin, 3, first, (BlockHash([7; 32]), 40), instructions.clone());
        prop_assert!(!batches.is_empty());
        let mut rejoined = vec![];
        for (i, b) in batches.iter().enumerate() {
            prop_assert_eq!(b.id, first + i as u32);
            prop_assert_eq!((b.session, b.number), (3, 40));
            prop_assert!(b.encode().len() <= MAX_BATCH_SIZE);
            rejoined.extend(b.instructions.iter().cloned());
        }
        prop_assert_eq!(rejoined, instructions);
    }

    #[test]
    fn amount_arithmetic_matches_u128(a in any::<u64>(), b in any::<u64>()) {
        let wide = a as u128 + b as u128;
        prop_assert_eq!(Amount(a).checked_add(Amount(b)).ok(), u64::try_from(wide).ok().map(Amount));
        prop_assert_eq!(Amount(a).checked_sub(Amount(b)).ok(), a.checked_sub(b).map(Amount));
    }
}

#[test]
fn split_fills_batches_near_the_bound() {
    let ins = InInstructionWithBalance {
        instruction: InInstruction {
            account: SettlementAccount([1; 32]),
            return_address: Some(ExternalAddress::new(vec![2; MAX_ADDRESS_LEN]).unwrap()),
        },
        balance: Balance { coin: Coin::Bitcoin, amount: Amount(5) },
    };
    let per = encode_body(&ins).len();
    let batches = Batch::split(NetworkId::Bitcoin, 0, 0, (BlockHash([0; 32]), 0), vec![ins; 1000]);
    for b in &batches[..batches.len() - 1] {
        let len = b.encode().len();
        // Full batches leave less room than one more instruction.
        assert!(len <= MAX_BATCH_SIZE && len + per > MAX_BATCH_SIZE, "len {len}");
    }
    assert_eq!(batches.iter().map(|b| b.instructions.len()).sum::<usize>(), 1000);
}

#[test]
fn empty_block_yields_one_empty_batch() {
    let batches = Batch::split(NetworkId::Monero, 1, 9, (BlockHash([0; 32]), 5), vec![]);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].id, 9);
    assert_eq!(batches[0].encode().len(), 1 + 1 + 4 + 4 + 32 + 8 + 4);
}

#[test]
fn codec_errors_are_typed() {
    assert!(matches!(Batch::decode(&[]), Err(CodecError::Empty)));
    let mut bytes =
        Batch::split(NetworkId::Bitcoin, 0, 0, (BlockHash([0; 32]), 0), vec![])[0].encode();
    bytes[0] = 9;
    assert!(matches!(
        Batch::decode(&bytes),
        Err(CodecError::UnknownVersion { found: 9, expected: 2 })
    ));
    assert!(matches!(
        Batch::decode(&vec![1; MAX_BATCH_SIZE + 1]),
        Err(CodecError::TooLong { len, max: MAX_BATCH_SIZE }) if len == MAX_BATCH_SIZE + 1
    ));
    // An unknown network discriminant is malformed, not a panic.
    bytes[0] = 2;
    bytes[1] = 200;
    assert!(matches!(Batch::decode(&bytes), Err(CodecError::Malformed(_))));
}

#[test]
fn oversized_address_is_rejected_on_decode_and_construction() {
    assert_eq!(
        ExternalAddress::new(vec![0; MAX_ADDRESS_LEN + 1]),
        Err(AddressTooLong(MAX_ADDRESS_LEN + 1))
    );
    let mut body = ((MAX_ADDRESS_LEN + 1) as u32).to_le_bytes().to_vec();
    body.extend(vec![0; MAX_ADDRESS_LEN + 1]);
    assert!(codec::decode_body::<ExternalAddress>(&body).is_err());
}

#[test]
fn hash_is_domain_separated_and_unambiguous() {
    assert_ne!(hash(b"a", &[b"bc"]), hash(b"ab", &[b"c"]));
    assert_ne!(hash(b"x", &[b"ab", b"c"]), hash(b"x", &[b"a", b"bc"]));
}
