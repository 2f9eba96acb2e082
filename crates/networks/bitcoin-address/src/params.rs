//! Which coin and chain, and the address parameters of each (Bitcoin and Litecoin
//! addresses differ only here).

/// Which coin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Coin {
    /// Bitcoin (Bitcoin Core).
    Bitcoin,
    /// Litecoin (Litecoin Core, a Bitcoin Core fork with the same RPC).
    Litecoin,
}

impl Coin {
    /// Parses `bitcoin` / `litecoin`.
    pub fn from_name(name: &str) -> Option<Coin> {
        match name {
            "bitcoin" => Some(Coin::Bitcoin),
            "litecoin" => Some(Coin::Litecoin),
            _ => None,
        }
    }
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

impl Chain {
    /// Parses `mainnet` (or `main`) / `testnet` (or `test`) / `regtest`.
    pub fn from_name(name: &str) -> Option<Chain> {
        match name {
            "mainnet" | "main" => Some(Chain::Mainnet),
            "testnet" | "test" => Some(Chain::Testnet),
            "regtest" => Some(Chain::Regtest),
            _ => None,
        }
    }
}

/// How one chain writes addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddressParams {
    /// Bech32 human-readable part of segwit addresses.
    pub hrp: &'static str,
    /// Base58 version byte of P2PKH addresses.
    pub p2pkh_version: u8,
    /// Base58 version bytes of P2SH addresses (the first is the one written; Litecoin
    /// still accepts its legacy P2SH prefix).
    pub p2sh_versions: &'static [u8],
}

impl AddressParams {
    /// The parameters of a coin's chain.
    pub fn new(coin: Coin, chain: Chain) -> AddressParams {
        let (hrp, p2pkh_version, p2sh_versions): (_, _, &'static [u8]) = match (coin, chain) {
            (Coin::Bitcoin, Chain::Mainnet) => ("bc", 0x00, &[0x05]),
            (Coin::Bitcoin, Chain::Testnet) => ("tb", 0x6f, &[0xc4]),
            (Coin::Bitcoin, Chain::Regtest) => ("bcrt", 0x6f, &[0xc4]),
            (Coin::Litecoin, Chain::Mainnet) => ("ltc", 0x30, &[0x32, 0x05]),
            (Coin::Litecoin, Chain::Testnet) => ("tltc", 0x6f, &[0x3a, 0xc4]),
            (Coin::Litecoin, Chain::Regtest) => ("rltc", 0x6f, &[0x3a, 0xc4]),
        };
        AddressParams { hrp, p2pkh_version, p2sh_versions }
    }

    /// Parses the coin and chain names of [`Coin::from_name`] and [`Chain::from_name`].
    pub fn from_names(coin: &str, chain: &str) -> Option<AddressParams> {
        Some(AddressParams::new(Coin::from_name(coin)?, Chain::from_name(chain)?))
    }
}

/// So that [`Address::parse`](crate::Address::parse) and
/// [`Address::display`](crate::Address::display) take these directly as well as any
/// wider parameter set that carries them.
impl AsRef<AddressParams> for AddressParams {
    fn as_ref(&self) -> &AddressParams {
        self
    }
}
