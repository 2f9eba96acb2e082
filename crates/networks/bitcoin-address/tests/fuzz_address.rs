//! The address decoders fed directly (see `primitives::testing::fuzz`):
//! `Address::from_external`, which every burn target and refund address from the
//! coordinator or the chain goes through, and the human-readable parsers
//! (`Address::parse`, `decode_segwit`). None may panic or allocate from a length field;
//! whatever they accept must be written back exactly (`display`, the segwit encoding) and
//! parse again to the same address.
//!
//! `TC_FUZZ_ITERATIONS` sets the number of mutants per decoder; `TC_FUZZ_SEED` the seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitcoin::bech32::{self, Fe32, Hrp};
use bitcoin_address::{decode_segwit, Address, AddressParams, Chain, Coin};
use primitives::{
    testing::fuzz::{self, fuzz, Outcome, TrackingAllocator},
    ExternalAddress,
};

#[global_allocator]
static ALLOCATOR: TrackingAllocator = TrackingAllocator;

fn chains() -> Vec<AddressParams> {
    let mut all = vec![];
    for coin in [Coin::Bitcoin, Coin::Litecoin] {
        for chain in [Chain::Mainnet, Chain::Testnet, Chain::Regtest] {
            all.push(AddressParams::new(coin, chain));
        }
    }
    all
}

/// One script of every standard type, and two that are not.
fn scripts() -> Vec<Vec<u8>> {
    vec![
        [&[0x76, 0xa9, 0x14][..], &[0x11; 20], &[0x88, 0xac]].concat(),
        [&[0xa9, 0x14][..], &[0x22; 20], &[0x87]].concat(),
        [&[0x00, 0x14][..], &[0x33; 20]].concat(),
        [&[0x00, 0x20][..], &[0x44; 32]].concat(),
        [&[0x51, 0x20][..], &[0x55; 32]].concat(),
        [&[0x52, 0x10][..], &[0x66; 16]].concat(),
        vec![0x6a, 0x01, 0x00],
    ]
}

#[test]
fn external_addresses_are_standard_scripts_that_round_trip() {
    let chains = chains();
    let report = fuzz("Address::from_external", &scripts(), fuzz::iterations(), |bytes| {
        let Ok(external) = ExternalAddress::new(bytes.to_vec()) else { return Outcome::Rejected };
        match Address::from_external(&external) {
            Ok(address) => {
                assert_eq!(address.script().as_bytes(), bytes);
                assert_eq!(address.to_external(), external);
                // Written on a chain the input picks (all six, over the run).
                let sum = bytes.iter().map(|b| usize::from(*b)).sum::<usize>();
                let params = &chains[sum % chains.len()];
                let shown = address.display(params);
                assert_eq!(Address::parse(params, &shown).as_ref(), Ok(&address), "{shown}");
                Outcome::Accepted
            }
            Err(_) => Outcome::Rejected,
        }
    });
    assert!(report.accepted > 0 && report.rejected > report.inputs / 2);
}

/// Every standard address written on every chain, plus upper-case bech32 and Litecoin's
/// legacy P2SH prefix (both accepted, written differently).
fn strings() -> Vec<Vec<u8>> {
    let mut all = vec![];
    for params in chains() {
        for script in scripts().into_iter().take(5) {
            let shown = Address::from_script(script.into()).unwrap().display(&params);
            if shown.starts_with(params.hrp) {
                all.push(shown.to_uppercase().into_bytes());
            }
            all.push(shown.into_bytes());
        }
        if let [_, legacy] = params.p2sh_versions {
            let payload = [&[*legacy][..], &[0x77; 20]].concat();
            all.push(bitcoin::base58::encode_check(&payload).into_bytes());
        }
    }
    all
}

#[test]
fn human_readable_addresses_parse_to_what_they_display() {
    let chains = chains();
    let seeds = strings();
    let report = fuzz("Address::parse", &seeds, fuzz::iterations(), |bytes| {
        let text = String::from_utf8_lossy(bytes);
        // The chain the string claims (by HRP, else by version byte), so that mutants of
        // a valid address are judged by its own chain's rules; any chain if it claims none.
        let lower = text.to_ascii_lowercase();
        let by_hrp = chains
            .iter()
            .find(|p| lower.strip_prefix(p.hrp).is_some_and(|rest| rest.starts_with('1')));
        let base58 = match by_hrp {
            Some(_) => None,
            None => bitcoin::base58::decode_check(&text).ok(),
        };
        let by_version = || {
            let version = *base58.as_ref()?.first()?;
            chains.iter().find(|p| p.p2pkh_version == version || p.p2sh_versions.contains(&version))
        };
        let params = by_hrp.or_else(by_version).unwrap_or(&chains[bytes.len() % chains.len()]);
        match Address::parse(params, &text) {
            Ok(address) => {
                let shown = address.display(params);
                assert_eq!(Address::parse(params, &shown).as_ref(), Ok(&address), "{shown}");
                // Written back exactly, but in lower case (bech32) or with the first P2SH
                // prefix (a legacy Litecoin one).
                let legacy = base58
                    .as_ref()
                    .is_some_and(|data| params.p2sh_versions[1..].contains(&data[0]));
                assert!(
                    shown == text || shown == text.to_lowercase() || legacy,
                    "{text:?} is shown as {shown:?}"
                );
                Outcome::Accepted
            }
            Err(_) => Outcome::Rejected,
        }
    });
    assert!(report.accepted > 0 && report.rejected > report.inputs / 2);
}

#[test]
fn segwit_strings_decode_to_what_they_encode() {
    let seeds: Vec<Vec<u8>> = strings()
        .into_iter()
        .filter(|s| decode_segwit(&String::from_utf8_lossy(s)).is_ok())
        .collect();
    assert!(seeds.len() >= 6 * 3 * 2);
    let report = fuzz("decode_segwit", &seeds, fuzz::iterations(), |bytes| {
        let text = String::from_utf8_lossy(bytes);
        match decode_segwit(&text) {
            Ok((hrp, version, program)) => {
                let hrp = Hrp::parse(&hrp).unwrap();
                let version = Fe32::try_from(version).unwrap();
                let encoded = bech32::segwit::encode(hrp, version, &program).unwrap();
                assert_eq!(encoded, text.to_lowercase());
                Outcome::Accepted
            }
            Err(_) => Outcome::Rejected,
        }
    });
    assert!(report.accepted > 0 && report.rejected > report.inputs / 2);
}
