//! A CI-sized, mutation-based fuzzer for decoders (stable Rust has no `cargo fuzz`).
//!
//! [`fuzz`] mutates valid encodings (bit flips, byte overwrites and small increments,
//! insertions, deletions, truncations, duplicated and spliced slices, length-field
//! inflation) and feeds every mutant to a decoder, which says whether it accepted it. It
//! catches nothing: a panic fails the test, after a line naming the input that caused it.
//! It also fails on an input that made the decoder allocate more than
//! [`allocation_limit`] in one piece (a length prefix trusted before the bytes behind it
//! were seen), when the test binary installs [`TrackingAllocator`].
//!
//! `TC_FUZZ_ITERATIONS` sets the number of mutants per decoder (default
//! [`DEFAULT_ITERATIONS`]); `TC_FUZZ_SEED` the seed, printed with every result so that a
//! failure replays.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    sync::OnceLock,
    time::{Duration, Instant},
};

/// Mutants per decoder unless `TC_FUZZ_ITERATIONS` says otherwise.
pub const DEFAULT_ITERATIONS: usize = 1_000_000;

/// The number of mutants per decoder: `TC_FUZZ_ITERATIONS`, or [`DEFAULT_ITERATIONS`].
pub fn iterations() -> usize {
    std::env::var("TC_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(DEFAULT_ITERATIONS)
}

/// The base seed: `TC_FUZZ_SEED`, or one drawn from the clock once per process (so that
/// every decoder of a test binary, and any corpus a test draws from it, share the
/// printed value).
pub fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        std::env::var("TC_FUZZ_SEED").ok().and_then(|v| v.trim().parse().ok()).unwrap_or_else(
            || {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                (nanos ^ u64::from(std::process::id()).rotate_left(32)) % 1_000_000_007
            },
        )
    })
}

/// A xorshift64 generator: fast, deterministic, and good enough to pick mutations.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator for `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        // SplitMix64's finalizer spreads close seeds apart; xorshift must not start at 0.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        XorShift((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform-ish in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % (n.max(1) as u64)) as usize
    }
}

/// One to four mutations of `a`; `b` (another valid input) is the source of splices.
pub fn mutate(rng: &mut XorShift, a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut m = a.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(10) {
            0 if !m.is_empty() => {
                let bit = rng.below(m.len() * 8);
                m[bit / 8] ^= 1 << (bit % 8);
            }
            1 if !m.is_empty() => {
                let i = rng.below(m.len());
                m[i] = rng.next_u64() as u8;
            }
            2 if !m.is_empty() => {
                // A small step: off-by-one lengths, counts and tags.
                let i = rng.below(m.len());
                let delta = [1u8, 2, 255, 254][rng.below(4)];
                m[i] = m[i].wrapping_add(delta);
            }
            3 => {
                let i = rng.below(m.len() + 1);
                m.insert(i, rng.next_u64() as u8);
            }
            4 if !m.is_empty() => {
                let start = rng.below(m.len());
                let end = (start + 1 + rng.below(8)).min(m.len());
                m.drain(start..end);
            }
            5 => m.truncate(rng.below(m.len() + 1)),
            6 => {
                let cut = rng.below(m.len() + 1);
                let from = rng.below(b.len() + 1);
                m.truncate(cut);
                m.extend_from_slice(&b[from..]);
            }
            7 if !m.is_empty() => {
                // Duplicate a slice in place (repeated entries, keys, points).
                let start = rng.below(m.len());
                let end = (start + 1 + rng.below(64)).min(m.len());
                let at = rng.below(m.len() + 1);
                let copy = m[start..end].to_vec();
                m.splice(at..at, copy);
            }
            8 if m.len() >= 4 => {
                // Inflate what may be a u32 length prefix.
                let i = rng.below(m.len() - 3);
                let value = [u32::MAX, u32::MAX / 2, 0x0100_0000, 0x0001_0000][rng.below(4)];
                m[i..i + 4].copy_from_slice(&value.to_le_bytes());
            }
            _ => m.push(rng.next_u64() as u8),
        }
    }
    m
}

/// What a decoder did with an input.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// It decoded (and the test checked what it decoded).
    Accepted,
    /// It was refused with an error.
    Rejected,
}

impl Outcome {
    /// `Accepted` if `accepted`.
    pub fn accepted_if(accepted: bool) -> Self {
        if accepted {
            Outcome::Accepted
        } else {
            Outcome::Rejected
        }
    }
}

/// The result of one [`fuzz`] run.
#[derive(Clone, Debug)]
pub struct Report {
    /// The decoder's name.
    pub name: String,
    /// The base seed (`TC_FUZZ_SEED` replays it).
    pub seed: u64,
    /// Mutants fed.
    pub inputs: usize,
    /// Mutants accepted.
    pub accepted: usize,
    /// Mutants rejected.
    pub rejected: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// The largest single allocation made while decoding one input, if
    /// [`TrackingAllocator`] is installed.
    pub largest_allocation: Option<usize>,
}

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// A global allocator that records, per thread, the largest single allocation (install
/// it with `#[global_allocator]` in a fuzz test binary). It delegates to [`System`].
#[derive(Clone, Copy, Debug, Default)]
pub struct TrackingAllocator;

fn note(size: usize) {
    // `try_with`: a thread being torn down has no slot, and that allocation is not ours.
    let _ = LARGEST.try_with(|largest| {
        if size > largest.get() {
            largest.set(size);
        }
    });
}

// The one unsafe impl of the workspace: `GlobalAlloc` cannot be implemented without it.
// Every method forwards to `System` with the caller's own arguments, so the contract the
// caller upholds for us is the one `System` needs; the bookkeeping only reads sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for TrackingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded unchanged (see above).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded unchanged (see above).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged (see above).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded unchanged (see above).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Whether this binary's global allocator is a [`TrackingAllocator`].
fn tracking() -> bool {
    LARGEST.with(|l| l.set(0));
    let probe: Vec<u8> = Vec::with_capacity(4321);
    let seen = LARGEST.with(Cell::get) >= 4321;
    drop(std::hint::black_box(probe));
    seen
}

/// The largest single allocation a decoder may make for an input of `len` bytes: 1 MiB,
/// or 64 bytes per input byte if more. Anything above means it sized a buffer from a
/// length field before reading what the field announces.
pub fn allocation_limit(len: usize) -> usize {
    (1 << 20usize).max(len.saturating_mul(64))
}

/// Prints which input a panic happened on (nothing is caught: the panic goes on).
struct Witness<'a> {
    name: &'a str,
    seed: u64,
    index: usize,
    input: &'a [u8],
}

impl Drop for Witness<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "fuzz {}: input {} (replay with TC_FUZZ_SEED={}) panicked or failed a check: {}",
                self.name,
                self.index,
                self.seed,
                hex::encode(self.input)
            );
        }
    }
}

/// Feeds `iterations` mutants of `seeds` (valid encodings; at least one) to `check`,
/// which decodes them, asserts what a correct decoder guarantees about an accepted input,
/// and says whether it accepted. Prints one line with the counts and the time.
pub fn fuzz(
    name: &str,
    seeds: &[Vec<u8>],
    iterations: usize,
    mut check: impl FnMut(&[u8]) -> Outcome,
) -> Report {
    assert!(!seeds.is_empty(), "fuzz {name}: no seeds");
    let seed = seed();
    // Each decoder its own stream, so that adding a decoder does not change the others'.
    let mut rng = XorShift::new(
        seed ^ u64::from_le_bytes(
            crate::hash(b"tc/fuzz", &[name.as_bytes()])[..8].try_into().expect("8 bytes"),
        ),
    );
    let tracking = tracking();
    let mut largest = 0;
    let (mut accepted, mut rejected) = (0, 0);
    let started = Instant::now();
    for index in 0..iterations {
        let a = &seeds[rng.below(seeds.len())];
        let b = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, a, b);
        let witness = Witness { name, seed, index, input: &input };
        if tracking {
            LARGEST.with(|l| l.set(0));
        }
        match check(&input) {
            Outcome::Accepted => accepted += 1,
            Outcome::Rejected => rejected += 1,
        }
        if tracking {
            let peak = LARGEST.with(Cell::get);
            assert!(
                peak <= allocation_limit(input.len()),
                "fuzz {name}: one allocation of {peak} bytes for an input of {} bytes",
                input.len()
            );
            largest = largest.max(peak);
        }
        drop(witness);
    }
    let report = Report {
        name: name.to_string(),
        seed,
        inputs: iterations,
        accepted,
        rejected,
        elapsed: started.elapsed(),
        largest_allocation: tracking.then_some(largest),
    };
    // Straight to the process's standard error, past the test harness's capture of
    // `println!`: the test command's output shows every decoder's count.
    {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "{report}");
    }
    report
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fuzz {}: {} inputs in {:.1} s (seed {}): {} accepted, {} rejected",
            self.name,
            self.inputs,
            self.elapsed.as_secs_f64(),
            self.seed,
            self.accepted,
            self.rejected
        )?;
        if let Some(largest) = self.largest_allocation {
            write!(f, "; largest allocation {largest} bytes")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutants_differ_and_are_reproducible() {
        let seeds = [vec![1u8; 40], vec![2u8; 10]];
        let run = |seed| {
            let mut rng = XorShift::new(seed);
            (0..1000)
                .map(|i| mutate(&mut rng, &seeds[i % 2], &seeds[(i + 1) % 2]))
                .collect::<Vec<_>>()
        };
        let first = run(7);
        assert_eq!(first, run(7));
        assert_ne!(first, run(8));
        let unchanged = first.iter().enumerate().filter(|(i, m)| **m == seeds[i % 2]).count();
        assert!(unchanged < 50, "{unchanged} of 1000 mutants equal their seed");
    }

    #[test]
    fn counts_what_the_check_says() {
        let report = fuzz("selftest", &[vec![0; 8]], 1000, |m| Outcome::accepted_if(m.len() == 8));
        assert_eq!(report.inputs, 1000);
        assert_eq!(report.accepted + report.rejected, 1000);
        assert!(report.accepted > 0 && report.rejected > 0);
    }
}
