//! What to do with a deposit: the one decision every network shares.
//!
//! - Below dust: recorded, never reported or refunded (refunding would cost more than it
//!   returns).
//! - A valid instruction: reported in a Batch, crediting its account.
//! - A missing or invalid instruction: refunded to the spender's address when the network
//!   knows a standard one; otherwise recorded as unattributed (kept, never lost, visible
//!   to operators).
use borsh::{BorshDeserialize, BorshSerialize};
use primitives::{
    Amount, Balance, ExternalAddress, InInstruction, InInstructionWithBalance, NetworkId,
};

use crate::{Instruction, OutputKind, ReceivedOutput};

/// The decision for one output.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Disposition {
    /// Report it: the settlement layer credits the instruction's account.
    Report(InInstructionWithBalance),
    /// Return it to where it came from.
    Refund {
        /// The spender's address.
        to: ExternalAddress,
        /// The output's amount (the refund pays it minus its fee).
        amount: Amount,
    },
    /// No usable instruction and no address to refund to: kept, recorded.
    Unattributed {
        /// The output's amount.
        amount: Amount,
    },
    /// Below the network's dust threshold: recorded and ignored.
    Dust {
        /// The output's amount.
        amount: Amount,
    },
    /// Not a deposit (our own branch, change or forwarded output).
    Internal,
}

/// Decides what an output of ours is for.
pub fn dispose<O: ReceivedOutput>(network: NetworkId, dust: Amount, output: &O) -> Disposition {
    if output.kind() != OutputKind::External {
        return Disposition::Internal;
    }
    let amount = output.amount();
    if amount < dust {
        return Disposition::Dust { amount };
    }
    match output.instruction() {
        Instruction::Valid(InInstruction { account, return_address }) => {
            // A valid instruction's own return address wins; the spender's is the fallback.
            let return_address =
                return_address.clone().or_else(|| output.refund_address().cloned());
            Disposition::Report(InInstructionWithBalance {
                instruction: InInstruction { account: *account, return_address },
                balance: Balance { coin: network.native_coin(), amount },
            })
        }
        Instruction::Missing | Instruction::Invalid => match output.refund_address() {
            Some(to) => Disposition::Refund { to: to.clone(), amount },
            None => Disposition::Unattributed { amount },
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use primitives::SettlementAccount;

    use super::*;

    struct O {
        kind: OutputKind,
        amount: u64,
        instruction: Instruction,
        refund: Option<ExternalAddress>,
    }

    impl ReceivedOutput for O {
        fn id(&self) -> Vec<u8> {
            vec![]
        }
        fn kind(&self) -> OutputKind {
            self.kind
        }
        fn amount(&self) -> Amount {
            Amount(self.amount)
        }
        fn instruction(&self) -> &Instruction {
            &self.instruction
        }
        fn refund_address(&self) -> Option<&ExternalAddress> {
            self.refund.as_ref()
        }
        fn transaction(&self) -> Vec<u8> {
            vec![]
        }
    }

    fn addr(b: u8) -> ExternalAddress {
        ExternalAddress::new(vec![b; 22]).unwrap()
    }

    #[test]
    fn every_case() {
        let dust = Amount(1_000);
        let valid = |ret| {
            Instruction::Valid(InInstruction {
                account: SettlementAccount([1; 32]),
                return_address: ret,
            })
        };
        let o = |kind, amount, instruction, refund| O { kind, amount, instruction, refund };
        let d = |o: O| dispose(NetworkId::Litecoin, dust, &o);

        assert_eq!(
            d(o(OutputKind::Change, 5_000, Instruction::Missing, None)),
            Disposition::Internal
        );
        assert_eq!(d(o(OutputKind::Branch, 5, valid(None), None)), Disposition::Internal);
        assert_eq!(
            d(o(OutputKind::External, 999, valid(None), Some(addr(1)))),
            Disposition::Dust { amount: Amount(999) }
        );
        // Valid: the instruction's return address, else the spender's.
        let Disposition::Report(r) =
            d(o(OutputKind::External, 1_000, valid(Some(addr(2))), Some(addr(1))))
        else {
            panic!()
        };
        assert_eq!(r.instruction.return_address, Some(addr(2)));
        assert_eq!(r.balance, Balance { coin: primitives::Coin::Litecoin, amount: Amount(1_000) });
        let Disposition::Report(r) = d(o(OutputKind::External, 1_000, valid(None), Some(addr(1))))
        else {
            panic!()
        };
        assert_eq!(r.instruction.return_address, Some(addr(1)));
        // Missing or invalid: refund, or unattributed.
        for bad in [Instruction::Missing, Instruction::Invalid] {
            assert_eq!(
                d(o(OutputKind::External, 2_000, bad.clone(), Some(addr(3)))),
                Disposition::Refund { to: addr(3), amount: Amount(2_000) }
            );
            assert_eq!(
                d(o(OutputKind::External, 2_000, bad, None)),
                Disposition::Unattributed { amount: Amount(2_000) }
            );
        }
    }
}
