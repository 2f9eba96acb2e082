//! The chain parameters: defaults per coin, and the address parameters they carry (the
//! address code itself is tested in `bitcoin-address`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitcoin_network::address::{Address, AddressParams};
use bitcoin_network::params::{Chain, Coin, Params};

#[test]
fn confirmations_default_per_coin() {
    assert_eq!(Params::new(Coin::Bitcoin, Chain::Mainnet).network.confirmations, 6);
    assert_eq!(Params::new(Coin::Litecoin, Chain::Mainnet).network.confirmations, 12);
    assert!(Params::new(Coin::Bitcoin, Chain::Mainnet).fallback_fee_rate.is_none());
    assert!(Params::new(Coin::Litecoin, Chain::Regtest).fallback_fee_rate.is_some());
}

#[test]
fn params_carry_their_chains_address_parameters() {
    // P2WPKH of the generator's key hash.
    let address = Address::parse(
        &AddressParams::new(Coin::Bitcoin, Chain::Mainnet),
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
    )
    .unwrap();
    for coin in [Coin::Bitcoin, Coin::Litecoin] {
        for chain in [Chain::Mainnet, Chain::Testnet, Chain::Regtest] {
            let params = Params::new(coin, chain);
            assert_eq!(params.address, AddressParams::new(coin, chain));
            // The whole parameter set works wherever the address parameters do.
            let shown = address.display(&params);
            assert_eq!(shown, address.display(&params.address));
            assert_eq!(Address::parse(&params, &shown).unwrap(), address);
        }
    }
    let names = Params::from_names("litecoin", "regtest").unwrap();
    assert_eq!(names, Params::new(Coin::Litecoin, Chain::Regtest));
    assert!(address.display(&names).starts_with("rltc1q"));
    assert!(Params::from_names("monero", "regtest").is_none());
}
