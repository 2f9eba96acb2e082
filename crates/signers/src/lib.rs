//! FROST signing for the processor.
//!
//! - [`batch`]: Batch signatures: Schnorr over Ristretto with a domain-separated
//!   challenge, signed by the session's Ristretto key and verifiable by anyone holding it.
//! - [`machine`]: one attempt's two-round protocol run behind object-safe traits
//!   ([`machine::Machine`] → [`machine::Signing`] → [`machine::Completing`]), with a
//!   generic adapter over modular-frost ([`machine::FrostMachine`]) and the Batch machine
//!   ([`machine::batch_machine`]).
//! - [`public`]: checking one signer's share from public data (preprocesses, message,
//!   verification shares), so that a blame in signing can be judged by a third party.
//! - [`attempts`]: the attempt manager ([`attempts::Signers`]), which applies the nonce
//!   rule to the coordinator's `Sign` requests.
//!
//! # Guarantees
//!
//! [`attempts::Signers`] guarantees, given that callers follow the rules below:
//! - **A preprocess is released at most once per `(session, kind, attempt)`, ever**,
//!   across restarts: before a preprocess is returned, "attempted `(session, kind,
//!   attempt)`" is written into the caller's transaction; an attempt found attempted is
//!   never answered again, nor is any attempt at or below the highest one attempted for
//!   that kind. After a restart no machine exists, so the attempts in flight are never
//!   continued: the coordinator's next `Reattempt` (a higher attempt) is answered.
//! - **Nonces are used for at most one share**: a machine is consumed by value when it
//!   signs (whatever the outcome) and none is `Clone`; a duplicate `Preprocesses` or
//!   `Shares` is ignored. A share is only produced for an attempt whose preprocess this
//!   same in-memory manager released, and only if the set's preprocess for us is ours.
//! - A `Share` is only answered for the latest attempt released for its kind (at most one
//!   unused preprocess per item): a `Reattempt` drops an older attempt's unused machine
//!   (and its nonces). Attempts that already shared keep their machines (the latest
//!   [`attempts::KEPT_ATTEMPTS`]) until their `Shares` arrive, so that concurrent sessions
//!   (ROAST) can complete an earlier attempt after a later one started.
//! - Misbehaviour is returned as data: an unreadable, over-long or invalid preprocess or
//!   share yields `Blame { accused }` (FROST identifiable abort) and drops the machine.
//! - A completed kind ([`attempts::Signers::complete`]) is never signed again: every later
//!   request for it is ignored and `start` returns `None`.
//! - An aggregated Batch signature is checked with [`batch::verify`] under the group key
//!   before it is returned.
//! - Every released preprocess is logged at info level with target `tc::nonce` and the
//!   fields `session`, `kind` (`batch/<id>` or `plan/<hex>`) and `attempt`. The line is
//!   written when the preprocess is handed to the caller: if the caller's transaction is
//!   then aborted (the preprocess never left), a later release of the same attempt logs
//!   it again.
//!
//! Callers MUST:
//! - queue every returned `Preprocess` (and any other reply) in the same write
//!   transaction that was passed in, and commit it before the message can leave;
//! - use one [`attempts::Signers`] per (session, processor) in a process, and never run
//!   two processes on the same database;
//! - call [`attempts::Signers::complete`] once an item is signed and accepted or its
//!   completion is seen on chain;
//! - use the key's participant indices in `SignRequest` maps and `me`.
//!
//! Callers SHOULD expect (and the coordinator handles) lost attempts: an attempt whose
//! transaction was aborted after its machine was consumed, or that was in flight at a
//! restart, is not resumed; liveness comes from the coordinator's `Reattempt`.
//!
//! # Storage
//!
//! Tables (the kind is its borsh encoding zero-padded to 33 bytes):
//! `signers/v1/attempted: (session u32, kind, attempt u32) -> ()`,
//! `signers/v1/latest: (session u32, kind) -> highest attempted u32` and
//! `signers/v1/complete: (session u32, kind) -> ()`.
#![deny(missing_docs)]

pub mod attempts;
pub mod batch;
pub mod machine;
pub mod public;

pub use attempts::{Handled, Signers};
pub use machine::{batch_machine, Completing, FrostMachine, Machine, SignFailure, Signing};
