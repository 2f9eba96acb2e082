//! Chain parameters: Bitcoin and Litecoin differ only here.
use primitives::{Amount, NetworkId};
use scanner::NetworkParams;

/// Which coin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Coin {
    /// Bitcoin (Bitcoin Core).
    Bitcoin,
    /// Litecoin (Litecoin Core, a Bitcoin Core fork with the same RPC).
    Litecoin,
}

/// Which chain of that coin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Chain {
    /// The real network.
    Mainnet,
    /// The public test network.
    Testnet,
    /// A private regression-test chain.
    Regtest,
}

/// Everything chain-specific the implementation needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// The coin.
    pub coin: Coin,
    /// The chain.
    pub chain: Chain,
    /// Bech32 human-readable part of segwit addresses.
    pub hrp: &'static str,
    /// Base58 version byte of P2PKH addresses.
    pub p2pkh_version: u8,
    /// Base58 version bytes of P2SH addresses (the first is the one written; Litecoin
    /// still accepts its legacy P2SH prefix).
    pub p2sh_versions: &'static [u8],
    /// Confirmations, output limits, dust, fee-rate bounds (sat per 1,000 vbytes; the
    /// floor at least the node's minimum relay fee, the ceiling a tenth of
    /// `sendrawtransaction`'s default `maxfeerate`) and the supply (21 million BTC, 84
    /// million LTC).
    pub network: NetworkParams,
    /// The fee rate (sat per 1,000 vbytes) used when the node has no estimate (a fresh
    /// regtest chain never has one). `None`: no estimate is a transient error.
    pub fallback_fee_rate: Option<u64>,
    /// `estimatesmartfee`'s confirmation target.
    pub fee_target_blocks: u16,
}

/// Default output and input limits: far below the 400,000-weight standardness limit
/// (500 key-path inputs and 500 outputs weigh about 200,000).
pub const DEFAULT_MAX_INPUTS: usize = 500;
/// See [`DEFAULT_MAX_INPUTS`].
pub const DEFAULT_MAX_OUTPUTS: usize = 500;

impl Params {
    /// The defaults for a coin and chain: 6 confirmations for Bitcoin and 12 for Litecoin
    /// (about 1 hour and 30 minutes), dust 10,000 units (worth paying out at any sane fee
    /// rate), and a regtest fallback fee rate.
    pub fn new(coin: Coin, chain: Chain) -> Params {
        let (hrp, p2pkh_version, p2sh_versions): (_, _, &'static [u8]) = match (coin, chain) {
            (Coin::Bitcoin, Chain::Mainnet) => ("bc", 0x00, &[0x05]),
            (Coin::Bitcoin, Chain::Testnet) => ("tb", 0x6f, &[0xc4]),
            (Coin::Bitcoin, Chain::Regtest) => ("bcrt", 0x6f, &[0xc4]),
            (Coin::Litecoin, Chain::Mainnet) => ("ltc", 0x30, &[0x32, 0x05]),
            (Coin::Litecoin, Chain::Testnet) => ("tltc", 0x6f, &[0x3a, 0xc4]),
            (Coin::Litecoin, Chain::Regtest) => ("rltc", 0x6f, &[0x3a, 0xc4]),
        };
        let (network, confirmations) = match coin {
            Coin::Bitcoin => (NetworkId::Bitcoin, 6),
            Coin::Litecoin => (NetworkId::Litecoin, 12),
        };
        Params {
            coin,
            chain,
            hrp,
            p2pkh_version,
            p2sh_versions,
            network: NetworkParams {
                network,
                confirmations,
                max_inputs: DEFAULT_MAX_INPUTS,
                max_outputs: DEFAULT_MAX_OUTPUTS,
                dust: Amount(10_000),
                // Bitcoin Core relays from 1 sat/vB; Litecoin Core from 10 sat/vB.
                min_fee_rate: match coin {
                    Coin::Bitcoin => 1_000,
                    Coin::Litecoin => 10_000,
                },
                // 1,000 sat/vB, 0.01 coin per 1,000 vbytes.
                max_fee_rate: 1_000_000,
                max_money: match coin {
                    Coin::Bitcoin => 21_000_000 * 100_000_000,
                    Coin::Litecoin => 84_000_000 * 100_000_000,
                },
            },
            // 20 sat/vB: above Litecoin's 10 sat/vB minimum relay fee.
            fallback_fee_rate: (chain == Chain::Regtest).then_some(20_000),
            fee_target_blocks: 6,
        }
    }

    /// Parses `bitcoin` / `litecoin` and `mainnet` / `testnet` / `regtest`.
    pub fn from_names(coin: &str, chain: &str) -> Option<Params> {
        let coin = match coin {
            "bitcoin" => Coin::Bitcoin,
            "litecoin" => Coin::Litecoin,
            _ => return None,
        };
        let chain = match chain {
            "mainnet" | "main" => Chain::Mainnet,
            "testnet" | "test" => Chain::Testnet,
            "regtest" => Chain::Regtest,
            _ => return None,
        };
        Some(Params::new(coin, chain))
    }
}
