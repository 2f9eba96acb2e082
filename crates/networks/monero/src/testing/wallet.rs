//! A single-key wallet for tests: it owns the shared history's coinbase outputs and pays
//! deposits (with arbitrary data in `extra`, which monero-wallet-rpc cannot write) through
//! monero-wallet's own single-signer path.
use std::sync::Mutex;

use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::Scalar as DalekScalar;
use monero_wallet::address::{MoneroAddress, Network as AddressNetwork};
use monero_wallet::ed25519::{Point, Scalar};
use monero_wallet::interface::prelude::FeeRate;
use monero_wallet::ringct::RctType;
use monero_wallet::send::{Change, SignableTransaction};
use monero_wallet::{OutputWithDecoys, Scanner, ViewPair, WalletOutput};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::rpc::Node as Rpc;

/// The wallet's secret spend key (a constant: every test machine shares the history).
const SPEND: u64 = 0x7e57_5e4d;
/// Its secret view key.
const VIEW: u64 = 0x7e57_71e3;

fn scalar(k: u64) -> DalekScalar {
    DalekScalar::from(k)
}

/// A view-only pair for a fresh random address (a payee the test can scan).
pub fn random_pair() -> ViewPair {
    random_payee().0
}

/// A fresh random address's view pair and its secret view key (for a view-only wallet).
pub fn random_payee() -> (ViewPair, [u8; 32]) {
    let mut bytes = [0; 64];
    OsRng.fill_bytes(&mut bytes);
    let spend = DalekScalar::from_bytes_mod_order_wide(&bytes);
    OsRng.fill_bytes(&mut bytes);
    let view = DalekScalar::from_bytes_mod_order_wide(&bytes);
    let pair = ViewPair::new(
        Point::from(&spend * ED25519_BASEPOINT_TABLE),
        Zeroizing::new(Scalar::from(view)),
    )
    .unwrap();
    (pair, view.to_bytes())
}

/// The test wallet and its unspent coinbase outputs.
#[derive(Debug)]
pub struct TestWallet {
    outputs: Mutex<Vec<WalletOutput>>,
}

impl TestWallet {
    /// The wallet owning `outputs` (spent from the front).
    pub fn new(outputs: Vec<WalletOutput>) -> TestWallet {
        TestWallet { outputs: Mutex::new(outputs) }
    }

    /// How many of its outputs are left to spend (spent in order).
    pub fn unspent(&self) -> usize {
        self.outputs.lock().map_or(0, |o| o.len())
    }

    /// Its view pair.
    pub fn view_pair() -> ViewPair {
        ViewPair::new(
            Point::from(&scalar(SPEND) * ED25519_BASEPOINT_TABLE),
            Zeroizing::new(Scalar::from(scalar(VIEW))),
        )
        .unwrap()
    }

    /// Its address (regtest uses mainnet's format).
    pub fn address(&self) -> MoneroAddress {
        Self::view_pair().legacy_address(AddressNetwork::Mainnet)
    }

    /// Its outputs in the miner transactions of `blocks`.
    pub async fn scan_coinbase(
        &self,
        rpc: &Rpc,
        blocks: std::ops::RangeInclusive<u64>,
    ) -> Vec<WalletOutput> {
        let mut scanner = Scanner::new(Self::view_pair());
        let mut found = vec![];
        for number in blocks {
            let block = rpc.scannable_block(number).await.unwrap();
            found.extend(scanner.scan(block).unwrap().ignore_additional_timelock());
        }
        found
    }

    /// Pays `amount` to `to`, with `data` as arbitrary data in `extra`, spending as many
    /// coinbase outputs as it takes (change comes back, unused). Returns the transaction's
    /// hash; the transaction is published, not mined.
    pub async fn pay(
        &self,
        rpc: &Rpc,
        to: MoneroAddress,
        amount: u64,
        data: Option<Vec<u8>>,
    ) -> [u8; 32] {
        self.pay_many(rpc, vec![(to, amount)], data).await
    }

    /// Pays every `(address, amount)` of `payments` (at most 15) in one transaction, as
    /// [`TestWallet::pay`].
    pub async fn pay_many(
        &self,
        rpc: &Rpc,
        payments: Vec<(MoneroAddress, u64)>,
        data: Option<Vec<u8>>,
    ) -> [u8; 32] {
        let amount: u64 = payments.iter().map(|(_, a)| a).sum();
        let daemon = rpc.daemon().await.unwrap();
        // Rings of outputs unlocked 40 blocks back (judged at that block, not at the tip as
        // `OutputWithDecoys::new` does): a test's reorg, shallower than that, leaves every
        // ring member unlocked, so the deposit can be mined again at once.
        let tip = usize::try_from(rpc.tip().await.unwrap()).unwrap() - 40;
        let rate = rpc.fee_rate().await.unwrap();
        let rate = FeeRate::new(rate.per_weight(), 10_000).unwrap();
        // About 1.8 XMR of fee per input at regtest's early rate, with a margin.
        let fee_per_input = 4_000_000_000_000u64;
        let mut inputs = vec![];
        let mut total = 0u64;
        while total < amount + fee_per_input * (inputs.len() as u64 + 1) {
            let output = {
                let mut outputs = self.outputs.lock().unwrap();
                assert!(!outputs.is_empty(), "the test wallet ran out of coinbase outputs");
                outputs.remove(0)
            };
            total += output.commitment().amount;
            inputs.push(
                OutputWithDecoys::fingerprintable_deterministic_new(
                    &mut OsRng, daemon, 16, tip, output,
                )
                .await
                .unwrap(),
            );
        }
        let mut ovk = Zeroizing::new([0; 32]);
        OsRng.fill_bytes(ovk.as_mut());
        let tx = SignableTransaction::new(
            RctType::ClsagBulletproofPlus,
            ovk,
            inputs,
            payments,
            Change::new(Self::view_pair(), None),
            data.into_iter().collect(),
            rate,
        )
        .unwrap()
        .sign(&mut OsRng, &Zeroizing::new(Scalar::from(scalar(SPEND))))
        .unwrap();
        rpc.publish(&tx).await.unwrap();
        tx.hash()
    }
}
