//! The group's Monero keys: the spend key is the key generation's Ed25519 group key, the
//! view key a hash of it, and each [`OutputKind`] has its own address.
//!
//! - View key: `Hs("tc-monero/v1/view" || group key)` (Monero's hash-to-scalar, Keccak-256
//!   reduced). Derived from public data by design: the set needs no second key
//!   generation, and every processor derives the same one.
//! - Addresses: [`OutputKind::External`] is the main (standard) address, the one
//!   depositors pay; [`OutputKind::Branch`], [`OutputKind::Change`] and
//!   [`OutputKind::Forwarded`] are subaddresses `(0, 1)`, `(0, 2)` and `(0, 3)` in
//!   monero-wallet's *guaranteed* form: only the processors pay them, and an output to
//!   them derives its key from the paying transaction's inputs, so nobody can make a
//!   second output with the same key (the "burning bug") that scans as ours. Any other
//!   subaddress is not ours: the scanner does not look for it.
use monero_wallet::address::{MoneroAddress, Network as AddressNetwork, SubaddressIndex};
use monero_wallet::ed25519::{Point, Scalar};
use monero_wallet::{GuaranteedViewPair, ViewPair};
use primitives::OutputKind;
use zeroize::Zeroizing;

/// The group's public key on the Ed25519 curve (the untweaked key generation key).
pub type GroupKey = curve25519_dalek::EdwardsPoint;

/// The domain of the view key's hash.
pub const VIEW_KEY_DOMAIN: &[u8] = b"tc-monero/v1/view";

/// Everything scanning and planning need: the spend key, the view key derived from it,
/// and the network whose addresses we show.
#[derive(Clone)]
pub struct Keys {
    view_pair: ViewPair,
    guaranteed: GuaranteedViewPair,
    network: AddressNetwork,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The view key is derivable from public data, yet it is a key: never printed.
        f.debug_struct("Keys")
            .field("spend", &hex::encode(self.view_pair.spend().compress().to_bytes()))
            .finish_non_exhaustive()
    }
}

/// Why a group key cannot be a Monero spend key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// It has a torsion component (or is the identity): monero-wallet cannot scan for it.
    #[error("the group key is not a valid Monero spend key (torsion or identity)")]
    Invalid,
}

/// The subaddress of a kind (`None`: the main address).
pub fn subaddress(kind: OutputKind) -> Option<SubaddressIndex> {
    match kind {
        OutputKind::External => None,
        OutputKind::Branch => SubaddressIndex::new(0, 1),
        OutputKind::Change => SubaddressIndex::new(0, 2),
        OutputKind::Forwarded => SubaddressIndex::new(0, 3),
    }
}

/// The kind a scanned output's subaddress stands for (`None`: not one of ours).
pub fn kind_of(subaddress: Option<SubaddressIndex>) -> Option<OutputKind> {
    OutputKind::ALL.into_iter().find(|kind| self::subaddress(*kind) == subaddress)
}

/// The view key of a group key.
pub fn view_key(group_key: &GroupKey) -> Zeroizing<Scalar> {
    let mut preimage = VIEW_KEY_DOMAIN.to_vec();
    preimage.extend(group_key.compress().to_bytes());
    Zeroizing::new(Scalar::hash(preimage))
}

impl Keys {
    /// The keys of `group_key`, showing addresses of `network`.
    pub fn new(group_key: GroupKey, network: AddressNetwork) -> Result<Keys, KeyError> {
        use curve25519_dalek::traits::IsIdentity;
        if !group_key.is_torsion_free() || group_key.is_identity() {
            return Err(KeyError::Invalid);
        }
        let view = view_key(&group_key);
        let view_pair =
            ViewPair::new(Point::from(group_key), view.clone()).map_err(|_| KeyError::Invalid)?;
        let guaranteed =
            GuaranteedViewPair::new(Point::from(group_key), view).map_err(|_| KeyError::Invalid)?;
        Ok(Keys { view_pair, guaranteed, network })
    }

    /// The view pair (spend key, view key) of the main address.
    pub fn view_pair(&self) -> &ViewPair {
        &self.view_pair
    }

    /// The same keys, for the guaranteed subaddresses of our own outputs.
    pub fn guaranteed(&self) -> &GuaranteedViewPair {
        &self.guaranteed
    }

    /// The address network.
    pub fn network(&self) -> AddressNetwork {
        self.network
    }

    /// The view key (derived from the spend key, see the module docs).
    pub fn view_key(&self) -> Zeroizing<Scalar> {
        view_key(&self.view_pair.spend().into())
    }

    /// The group's spend key.
    pub fn spend(&self) -> Point {
        self.view_pair.spend()
    }

    /// Our address for `kind`.
    pub fn address(&self, kind: OutputKind) -> MoneroAddress {
        match subaddress(kind) {
            None => self.view_pair.legacy_address(self.network),
            Some(index) => self.guaranteed.address(self.network, Some(index), None),
        }
    }

    /// Which of our kinds `address` pays, if it pays us: its spend key is one of ours,
    /// whatever its view key (an address with our spend key is ours to receive, and
    /// paying it would only come back as an output nobody planned).
    pub fn kind_of_address(&self, address: &MoneroAddress) -> Option<OutputKind> {
        OutputKind::ALL.into_iter().find(|kind| self.address(*kind).spend() == address.spend())
    }
}
