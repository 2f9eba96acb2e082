//! The memory network's decoder of deposit instructions from its chain's transaction
//! data, `decode_instruction`, fed directly (see `primitives::testing::fuzz`): it must not
//! panic or allocate from a length field, and it may return an instruction only for the
//! exact encoding of that instruction.
//!
//! `TC_FUZZ_ITERATIONS` sets the number of mutants; `TC_FUZZ_SEED` the seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use memory_network::{decode_instruction, encode_instruction};
use primitives::{
    testing::fuzz::{self, fuzz, Outcome, TrackingAllocator},
    ExternalAddress, InInstruction, SettlementAccount, MAX_ADDRESS_LEN,
};
use scanner::Instruction;

#[global_allocator]
static ALLOCATOR: TrackingAllocator = TrackingAllocator;

#[test]
fn instructions_decode_canonically_or_not_at_all() {
    // Return addresses of every length class up to the bound (any bytes are an address).
    let seeds: Vec<Vec<u8>> = [None, Some(0), Some(1), Some(34), Some(MAX_ADDRESS_LEN)]
        .into_iter()
        .enumerate()
        .map(|(i, len)| {
            encode_instruction(&InInstruction {
                account: SettlementAccount([i as u8 + 1; 32]),
                return_address: len.map(|n| ExternalAddress::new(vec![0xa0 + i as u8; n]).unwrap()),
            })
        })
        .collect();
    assert_eq!(decode_instruction(None), Instruction::Missing);
    let report = fuzz("memory decode_instruction", &seeds, fuzz::iterations(), |data| {
        match decode_instruction(Some(data)) {
            Instruction::Valid(i) => {
                assert_eq!(encode_instruction(&i), data, "accepted a non-canonical payload");
                Outcome::Accepted
            }
            Instruction::Invalid => Outcome::Rejected,
            Instruction::Missing => panic!("data was read as no instruction"),
        }
    });
    assert!(report.rejected > report.inputs / 2, "the mutator barely mutates");
}
