//! Address encoding against the BIP173/BIP350 test vectors, and each chain's prefixes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitcoin::ScriptBuf;
use bitcoin_address::{decode_segwit, Address, AddressError, AddressParams, Chain, Coin};

/// BIP350 "valid segwit addresses": address, scriptPubKey.
const VALID: &[(&str, &str)] = &[
    ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "0014751e76e8199196d454941c45d1b3a323f1433bd6"),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
    ),
    (
        "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
        "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6",
    ),
    ("BC1SW50QGDZ25J", "6002751e"),
    ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "5210751e76e8199196d454941c45d1b3a323"),
    (
        "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
        "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
        "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
    ),
];

/// BIP350's invalid address whose only fault is its HRP ("tc" is no chain's): a valid
/// bech32m string that every chain must refuse.
const INVALID_HRP: &str = "tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut";

/// The rest of BIP350's "invalid segwit addresses".
const INVALID: &[&str] = &[
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
    "tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf",
    "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
    "tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47",
    "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4",
    "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R",
    "bc1pw5dgrnzv",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav",
    "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",
    "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf",
    "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j",
    "bc1gmk9yu",
];

fn script_of(version: u8, program: &[u8]) -> String {
    let op = if version == 0 { 0 } else { 0x50 + version };
    let mut s = vec![op, u8::try_from(program.len()).unwrap()];
    s.extend_from_slice(program);
    hex::encode(s)
}

#[test]
fn bip350_valid_vectors_decode_to_their_scripts() {
    for (address, script) in VALID {
        let (hrp, version, program) = decode_segwit(address).expect(address);
        assert!(hrp == "bc" || hrp == "tb", "{address}");
        assert_eq!(&script_of(version, &program), script, "{address}");
    }
}

#[test]
fn bip350_invalid_vectors_are_rejected() {
    for address in INVALID {
        assert!(decode_segwit(address).is_err(), "{address} was accepted");
    }
    for address in INVALID.iter().chain([&INVALID_HRP]) {
        for chain in [Chain::Mainnet, Chain::Testnet, Chain::Regtest] {
            for coin in [Coin::Bitcoin, Coin::Litecoin] {
                let params = AddressParams::new(coin, chain);
                assert!(Address::parse(&params, address).is_err(), "{address} was accepted");
            }
        }
    }
}

#[test]
fn standard_vectors_round_trip_and_others_are_refused() {
    for (address, script) in VALID {
        let chain =
            if address.to_lowercase().starts_with("bc1") { Chain::Mainnet } else { Chain::Testnet };
        let params = AddressParams::new(Coin::Bitcoin, chain);
        let script = ScriptBuf::from_bytes(hex::decode(script).unwrap());
        let standard = script.is_p2wpkh() || script.is_p2wsh() || script.is_p2tr();
        match Address::parse(&params, address) {
            Ok(parsed) => {
                assert!(standard, "{address} is not standard but was accepted");
                assert_eq!(parsed.script(), &script);
                // Re-encoding gives the canonical lowercase form.
                assert_eq!(parsed.display(&params), address.to_lowercase());
            }
            Err(e) => {
                assert!(!standard, "{address}: {e}");
                assert_eq!(e, AddressError::NonStandard);
            }
        }
    }
}

#[test]
fn base58_addresses_of_known_keys() {
    // Hash160 of the generator's compressed key, 751e76e8199196d454941c45d1b3a323f1433bd6,
    // is 1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH on Bitcoin mainnet.
    let btc = AddressParams::new(Coin::Bitcoin, Chain::Mainnet);
    let a = Address::parse(&btc, "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH").unwrap();
    assert_eq!(
        hex::encode(a.script().as_bytes()),
        "76a914751e76e8199196d454941c45d1b3a323f1433bd688ac"
    );
    assert_eq!(a.display(&btc), "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH");
    // The same script on Litecoin mainnet uses version byte 0x30 (an "L" address), and the
    // Bitcoin string is refused there.
    let ltc = AddressParams::new(Coin::Litecoin, Chain::Mainnet);
    let l = a.display(&ltc);
    assert!(l.starts_with('L'), "{l}");
    assert_eq!(Address::parse(&ltc, &l).unwrap(), a);
    assert!(matches!(
        Address::parse(&ltc, "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"),
        Err(AddressError::WrongChain { .. })
    ));
    // A bad checksum is an encoding error.
    assert!(matches!(
        Address::parse(&btc, "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMJ"),
        Err(AddressError::Encoding(_))
    ));
}

#[test]
fn segwit_hrps_per_chain() {
    let program = hex::decode("751e76e8199196d454941c45d1b3a323f1433bd6").unwrap();
    let script = ScriptBuf::from_bytes([&[0x00, 0x14][..], &program].concat());
    let address = Address::from_script(script).unwrap();
    for (coin, chain, prefix) in [
        (Coin::Bitcoin, Chain::Mainnet, "bc1q"),
        (Coin::Bitcoin, Chain::Testnet, "tb1q"),
        (Coin::Bitcoin, Chain::Regtest, "bcrt1q"),
        (Coin::Litecoin, Chain::Mainnet, "ltc1q"),
        (Coin::Litecoin, Chain::Testnet, "tltc1q"),
        (Coin::Litecoin, Chain::Regtest, "rltc1q"),
    ] {
        let params = AddressParams::new(coin, chain);
        let s = address.display(&params);
        assert!(s.starts_with(prefix), "{s}");
        assert_eq!(Address::parse(&params, &s).unwrap(), address);
        // Another chain's HRP is refused with a clear error.
        let other = AddressParams::new(
            coin,
            if chain == Chain::Mainnet { Chain::Regtest } else { Chain::Mainnet },
        );
        assert!(Address::parse(&other, &s).is_err());
    }
    assert_eq!(
        address.display(&AddressParams::new(Coin::Bitcoin, Chain::Mainnet)),
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    );
}

#[test]
fn names_parse_to_their_chains() {
    for (coin, chain, expected) in [
        ("bitcoin", "mainnet", (Coin::Bitcoin, Chain::Mainnet)),
        ("bitcoin", "main", (Coin::Bitcoin, Chain::Mainnet)),
        ("bitcoin", "test", (Coin::Bitcoin, Chain::Testnet)),
        ("litecoin", "testnet", (Coin::Litecoin, Chain::Testnet)),
        ("litecoin", "regtest", (Coin::Litecoin, Chain::Regtest)),
    ] {
        assert_eq!(
            AddressParams::from_names(coin, chain),
            Some(AddressParams::new(expected.0, expected.1)),
            "{coin} {chain}"
        );
    }
    for (coin, chain) in
        [("monero", "regtest"), ("ethereum", "mainnet"), ("bitcoin", "signet"), ("Bitcoin", "main")]
    {
        assert_eq!(AddressParams::from_names(coin, chain), None, "{coin} {chain}");
    }
}
