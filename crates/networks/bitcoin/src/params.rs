//! Chain parameters: Bitcoin and Litecoin differ only here. The coin, chain and address
//! parameters live in `bitcoin-address` (re-exported here); this adds what scanning,
//! planning and fees need.
pub use bitcoin_address::{AddressParams, Chain, Coin};
use primitives::{Amount, NetworkId};
use scanner::NetworkParams;

/// Everything chain-specific the implementation needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// The coin.
    pub coin: Coin,
    /// The chain.
    pub chain: Chain,
    /// How the chain writes addresses (`AsRef` gives it to [`crate::Address`]).
    pub address: AddressParams,
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
    /// Which blocks carry an MWEB extension block (a HogEx and the extension after the
    /// transactions): checked on every block, so that a node can neither strip one nor
    /// add one.
    pub mweb: MwebRule,
    /// Whether the coin's nodes accept BIP125 replacements by default (the processor's
    /// fee bumps replace a stuck payout): Bitcoin Core does; Litecoin Core does not
    /// (`DEFAULT_ENABLE_REPLACEMENT = false`, only with `-mempoolreplacement`), so Litecoin
    /// payouts are never replaced.
    pub replaceable: bool,
}

/// Which blocks carry an MWEB extension block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MwebRule {
    /// None does (Bitcoin).
    Never,
    /// Every block from this height does, none before (MWEB's activation).
    From(u64),
    /// Not pinned here: a block is taken with or without one, as served (Litecoin's
    /// testnet, whose activation height is not recorded here).
    Unpinned,
}

/// MWEB's activation on Litecoin's mainnet: the first block of the 8,064-block signalling
/// period after its lock-in (which began at 2,257,920), in May 2022.
pub const LITECOIN_MAINNET_MWEB: u64 = 2_265_984;
/// MWEB's activation on Litecoin's regtest with litecoind's defaults (the third 144-block
/// period); a node started with other `-vbparams` for MWEB does not fit.
pub const LITECOIN_REGTEST_MWEB: u64 = 432;

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
        let (network, confirmations) = match coin {
            Coin::Bitcoin => (NetworkId::Bitcoin, 6),
            Coin::Litecoin => (NetworkId::Litecoin, 12),
        };
        Params {
            coin,
            chain,
            address: AddressParams::new(coin, chain),
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
            mweb: match (coin, chain) {
                (Coin::Bitcoin, _) => MwebRule::Never,
                (Coin::Litecoin, Chain::Mainnet) => MwebRule::From(LITECOIN_MAINNET_MWEB),
                (Coin::Litecoin, Chain::Regtest) => MwebRule::From(LITECOIN_REGTEST_MWEB),
                (Coin::Litecoin, _) => MwebRule::Unpinned,
            },
            replaceable: coin == Coin::Bitcoin,
        }
    }

    /// Parses `bitcoin` / `litecoin` and `mainnet` / `testnet` / `regtest`.
    pub fn from_names(coin: &str, chain: &str) -> Option<Params> {
        Some(Params::new(Coin::from_name(coin)?, Chain::from_name(chain)?))
    }
}

/// So that `Address::parse(&params, ..)` and `address.display(&params)` take the whole
/// parameter set.
impl AsRef<AddressParams> for Params {
    fn as_ref(&self) -> &AddressParams {
        &self.address
    }
}
