//! Key-generation cost: the bare PedPoP library vs. this project's `key-gen` crate vs. the
//! full stack (n processor processes, coordinator-sim and nats-server), in one run.
//!
//! `cargo bench -p tc-devnet --bench keygen` prints the table for 3-of-4, 10-of-15 and
//! 34-of-50. Under `cargo test` (no `--bench` flag) it runs 3-of-4 only, as a smoke test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use ciphersuite::Ciphersuite;
use devnet::{Cluster, Options};
use dkg_pedpop::{KeyGenMachine, Participant, ThresholdParams};
use key_gen::dkg::{commitments, complete, shares_and_machines, KeyGenParams};
use messages::{KeyGenId, Session};
use modular_frost::curve::{Ristretto, Secp256k1};
use primitives::NetworkId;
use rand_core::OsRng;

/// All n participants of one curve's PedPoP, in this thread, messages passed in memory.
fn bare<C: Ciphersuite>(t: u16, n: u16) -> Duration {
    let start = Instant::now();
    let p = |i: u16| Participant::new(i).unwrap();
    let mut machines = HashMap::new();
    let mut r1 = HashMap::new();
    for i in 1..=n {
        let params = ThresholdParams::new(t, n, p(i)).unwrap();
        let (m, msg) = KeyGenMachine::<C>::new(params, [7; 32]).generate_coefficients(&mut OsRng);
        machines.insert(i, m);
        r1.insert(i, msg);
    }
    let mut keys = HashMap::new();
    let mut r2 = HashMap::new();
    for i in 1..=n {
        let others = r1.iter().filter(|(j, _)| **j != i).map(|(j, m)| (p(*j), m.clone())).collect();
        let (km, shares) =
            machines.remove(&i).unwrap().generate_secret_shares(&mut OsRng, others).unwrap();
        keys.insert(i, km);
        r2.insert(i, shares);
    }
    for i in 1..=n {
        let mine =
            r2.iter().filter(|(j, _)| **j != i).map(|(j, s)| (p(*j), s[&p(i)].clone())).collect();
        keys.remove(&i).unwrap().calculate_share(&mut OsRng, mine).unwrap().complete();
    }
    start.elapsed()
}

/// All n participants through `key_gen::dkg` (both curves, serialized messages).
fn crate_path(t: u16, n: u16) -> Duration {
    let start = Instant::now();
    let ps: Vec<u16> = (1..=n).collect();
    let params = |me| KeyGenParams {
        id: KeyGenId { session: Session(0), attempt: 0 },
        network: NetworkId::Bitcoin,
        threshold: t,
        participants: ps.clone(),
        me,
    };
    let entropy = |v: u16| {
        let mut e = [0u8; 32];
        e[..2].copy_from_slice(&v.to_le_bytes());
        e
    };
    let r1: BTreeMap<u16, Vec<u8>> =
        ps.iter().map(|v| (*v, commitments(&entropy(*v), &params(*v)).unwrap())).collect();
    let others = |all: &BTreeMap<u16, Vec<u8>>, me: u16| -> BTreeMap<u16, Vec<u8>> {
        all.iter().filter(|(v, _)| **v != me).map(|(v, m)| (*v, m.clone())).collect()
    };
    // Round-2 state is kept in memory between rounds, as a processor that did not restart
    // keeps it.
    let mut machines = BTreeMap::new();
    let mut r2: BTreeMap<u16, BTreeMap<u16, Vec<u8>>> = BTreeMap::new();
    for v in &ps {
        let (shares, kept) =
            shares_and_machines(&entropy(*v), &params(*v), &others(&r1, *v)).unwrap().unwrap();
        r2.insert(*v, shares);
        machines.insert(*v, kept);
    }
    for v in &ps {
        let mine = r2.iter().filter(|(s, _)| *s != v).map(|(s, m)| (*s, m[v].clone())).collect();
        let kept = machines.remove(v);
        complete(&entropy(*v), &params(*v), &others(&r1, *v), &mine, kept).unwrap().unwrap();
    }
    start.elapsed()
}

/// n processor processes + coordinator-sim + nats-server: coordinator-sim's own measure
/// from the start of key generation to the confirmation of the key pair.
fn full_stack(t: u16, n: u16) -> Duration {
    let mut cluster = Cluster::start(&Options {
        keygen_timeout: Duration::from_secs(600),
        ..Options::keys_only("bitcoin", n, t)
    })
    .unwrap();
    let elapsed = cluster
        .wait_for(Duration::from_secs(900), "the key pair's confirmation", |c| {
            c.coordinator_http_status()?["sets"][0]["confirmed"]["elapsed_ms"].as_u64()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs_tail(20)));
    Duration::from_millis(elapsed)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[(u16, u16)] = if full { &[(3, 4), (10, 15), (34, 50)] } else { &[(3, 4)] };
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!(
        "DKG of a session's two keys (Ristretto + secp256k1), {profile} build, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:>8} | {:>26} | {:>24} | {:>34} | {:>9}",
        "t-of-n",
        "bare dkg-pedpop, 1 thread",
        "key-gen crate, in-proc",
        "full stack (n procs + sim + NATS)",
        "full/bare"
    );
    for &(t, n) in sizes {
        let bare = bare::<Ristretto>(t, n) + bare::<Secp256k1>(t, n);
        let krate = crate_path(t, n);
        let stack = full_stack(t, n);
        println!(
            "{:>8} | {:>23.0?} | {:>24.0?} | {:>34.0?} | {:>8.2}x",
            format!("{t}-of-{n}"),
            bare,
            krate,
            stack,
            stack.as_secs_f64() / bare.as_secs_f64()
        );
    }
    println!("(bare: every participant's work, in sequence, both curves; key-gen crate: the same through");
    println!(" serialized messages with both curves verified in parallel; full stack: wall time measured by");
    println!(" coordinator-sim from the first GenerateKey to the confirmation, processes sharing the cores)");
}
