//! Proptest strategies for the primitive types, and the mutation fuzzer every decoder
//! test uses ([`fuzz`]) (feature `testing`).
#![allow(missing_docs)]

use proptest::prelude::*;

use crate::*;

pub mod fuzz;

pub fn network() -> impl Strategy<Value = NetworkId> {
    prop::sample::select(NetworkId::ALL.to_vec())
}

pub fn coin() -> impl Strategy<Value = Coin> {
    network().prop_map(NetworkId::native_coin)
}

pub fn balance() -> impl Strategy<Value = Balance> {
    (coin(), any::<u64>()).prop_map(|(coin, amount)| Balance { coin, amount: Amount(amount) })
}

pub fn address() -> impl Strategy<Value = ExternalAddress> {
    prop::collection::vec(any::<u8>(), 0..=MAX_ADDRESS_LEN)
        .prop_map(|b| ExternalAddress::new(b).expect("bounded by the strategy"))
}

pub fn in_instruction() -> impl Strategy<Value = InInstruction> {
    (any::<[u8; 32]>(), prop::option::of(address())).prop_map(|(a, return_address)| InInstruction {
        account: SettlementAccount(a),
        return_address,
    })
}

pub fn in_instruction_with_balance() -> impl Strategy<Value = InInstructionWithBalance> {
    (in_instruction(), balance())
        .prop_map(|(instruction, balance)| InInstructionWithBalance { instruction, balance })
}

pub fn payment() -> impl Strategy<Value = Payment> {
    (address(), balance()).prop_map(|(address, balance)| Payment { address, balance })
}

pub fn block_hash() -> impl Strategy<Value = BlockHash> {
    any::<[u8; 32]>().prop_map(BlockHash)
}

/// Batches small enough to always fit [`MAX_BATCH_SIZE`].
pub fn batch() -> impl Strategy<Value = Batch> {
    (
        network(),
        (any::<u32>(), any::<u32>()),
        (block_hash(), any::<u64>()),
        prop::collection::vec(in_instruction_with_balance(), 0..20),
    )
        .prop_map(|(network, (session, id), (block, number), instructions)| Batch {
            network,
            session,
            id,
            block,
            number,
            instructions,
        })
}
