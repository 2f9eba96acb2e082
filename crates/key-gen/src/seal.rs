//! Sealing secrets at rest: XChaCha20-Poly1305 under a key derived with Argon2id from the
//! operator's secret.
//!
//! The database stores a random salt, the KDF parameters and a *check value* (a known
//! plaintext sealed under the derived key). Unlocking with a different secret fails to
//! open the check value, so a processor started with the wrong secret refuses to run
//! before it reads or writes any sealed data. A copy of the database alone reveals no
//! sealed plaintext.

use argon2::{Algorithm, Argon2, Params, Version};
use borsh::{BorshDeserialize, BorshSerialize};
use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    XChaCha20Poly1305, XNonce,
};
use db::{Db, DbError, Table};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

/// The KDF parameters and check value of a database's sealing key.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
struct SealParams {
    salt: [u8; 16],
    /// Argon2id memory in KiB, iterations, parallelism.
    m_cost: u32,
    t_cost: u32,
    p_cost: u32,
    check: Vec<u8>,
}

const SEAL_PARAMS: Table<(), SealParams> = Table::new("seal/v1/params");

/// Argon2id parameters for new databases (OWASP's recommended minimum: 19 MiB, 2 passes).
const M_COST_KIB: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

const CHECK_AAD: &[u8] = b"tc/seal/v1/check";
const CHECK_PLAINTEXT: &[u8] = b"threshold-custody sealing key check";
const NONCE_LEN: usize = 24;

/// Why sealing or unsealing failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The secret does not open this database's check value.
    #[error(
        "the DB sealing secret does not match the one this database was sealed with; start \
         the processor with the original secret (PROCESSOR_DB_SECRET or secrets.db_secret_file)"
    )]
    WrongSecret,
    /// A sealed value did not authenticate: it was altered, or sealed for another purpose.
    #[error("sealed value failed authentication (corrupt, or tampered with)")]
    Corrupt,
    /// The KDF rejected its parameters (a corrupt parameter record).
    #[error("key derivation failed: {0}")]
    Kdf(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A derived sealing key. Zeroized on drop; never printed.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

fn derive(secret: &[u8], p: &SealParams) -> Result<XChaCha20Poly1305, SealError> {
    let params = Params::new(p.m_cost, p.t_cost, p.p_cost, Some(32))
        .map_err(|e| SealError::Kdf(e.to_string()))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(secret, &p.salt, key.as_mut())
        .map_err(|e| SealError::Kdf(e.to_string()))?;
    Ok(XChaCha20Poly1305::new(key.as_ref().into()))
}

impl Sealer {
    /// Derives the sealing key of `db` from `secret`. On a database's first unlock, it
    /// records a fresh salt and the check value (committed before returning). Afterwards
    /// the same secret is required: any other yields [`SealError::WrongSecret`].
    pub fn unlock(db: &Db, secret: &[u8]) -> Result<Sealer, SealError> {
        if let Some(params) = SEAL_PARAMS.get(&db.read()?, &())? {
            let sealer = Sealer { cipher: derive(secret, &params)? };
            return match sealer.open(CHECK_AAD, &params.check) {
                Ok(plain) if plain.as_slice() == CHECK_PLAINTEXT => Ok(sealer),
                _ => Err(SealError::WrongSecret),
            };
        }
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let mut params =
            SealParams { salt, m_cost: M_COST_KIB, t_cost: T_COST, p_cost: P_COST, check: vec![] };
        let sealer = Sealer { cipher: derive(secret, &params)? };
        params.check = sealer.seal(CHECK_AAD, CHECK_PLAINTEXT);
        let mut txn = db.write()?;
        // Another unlock may have raced us: the first committed parameters win.
        if let Some(existing) = SEAL_PARAMS.get(&txn, &())? {
            drop(txn);
            let sealer = Sealer { cipher: derive(secret, &existing)? };
            return match sealer.open(CHECK_AAD, &existing.check) {
                Ok(plain) if plain.as_slice() == CHECK_PLAINTEXT => Ok(sealer),
                _ => Err(SealError::WrongSecret),
            };
        }
        SEAL_PARAMS.put(&mut txn, &(), &params)?;
        txn.commit()?;
        Ok(sealer)
    }

    /// Seals `plaintext`, bound to `aad` (say, what it is and whose): a random 24-byte
    /// nonce followed by the ciphertext and tag.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend(ciphertext);
        out
    }

    /// Opens a value sealed with the same key and `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Corrupt);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad })
            .map(Zeroizing::new)
            .map_err(|_| SealError::Corrupt)
    }
}
