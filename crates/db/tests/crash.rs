//! Crash test: a child process pushes to a queue (plus a second write in the same
//! transaction) in a loop and is killed with SIGKILL at random points; after each kill
//! the database is reopened and must hold every committed item exactly once and nothing
//! uncommitted.
//!
//! The test re-executes its own binary, running only `child_writer` with
//! `TC_DB_CRASH_CHILD` set; without that variable `child_writer` does nothing.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use borsh::{BorshDeserialize, BorshSerialize};
use db::{Db, Queue, Schema, Table};

const SCHEMA: Schema = Schema { app: "tc-db-crash-test", version: 1 };
const QUEUE: Queue<Entry> = Queue::new("crash/v1/queue");
const COUNTER: Table<(), u64> = Table::new("crash/v1/counter");

const CHILD_ENV: &str = "TC_DB_CRASH_CHILD";
/// Printed by the child after each commit. Searched for anywhere in a line: libtest
/// prints `test child_writer ... ` without a newline right before the first one.
const MARKER: &str = "TC_DB_COMMITTED ";
const START_ENV: &str = "TC_DB_CRASH_START";
const ROUNDS: u32 = 24;
/// The child stops on its own after this many pushes, in case the parent is gone.
const CHILD_MAX_PUSHES: u64 = 10_000;
/// Per-round limit on waiting for the child's output.
const ROUND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct Entry {
    i: u64,
    payload: Vec<u8>,
}

/// 1-4 KiB of bytes determined by `i`, so a torn or misplaced write is detected.
fn payload(i: u64) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let len = 1024 + (x % 3072) as usize;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Runs in the child process only: push `i`, set `counter = i`, commit, report; repeat.
#[test]
fn child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let start: u64 = std::env::var(START_ENV).unwrap().parse().unwrap();
    let db = Db::open(&path, SCHEMA).unwrap();
    let mut stdout = std::io::stdout();
    for i in start..start + CHILD_MAX_PUSHES {
        let mut txn = db.write().unwrap();
        let index = QUEUE.push(&mut txn, &Entry { i, payload: payload(i) }).unwrap();
        assert_eq!(index, i, "queue index must equal the item number");
        COUNTER.put(&mut txn, &(), &i).unwrap();
        txn.commit().unwrap();
        writeln!(stdout, "{MARKER}{i}").unwrap();
        stdout.flush().unwrap();
    }
}

/// xorshift64*, seeded, so a failing run can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn spawn_child(path: &Path, start: u64) -> Child {
    Command::new(std::env::current_exe().expect("path of the test binary"))
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .env(START_ENV, start.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child writer")
}

/// Forwards what follows [`MARKER`] in the child's output lines until its stdout closes.
fn read_commits(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some((_, n)) = line.split_once(MARKER) {
                if tx.send(n.trim().to_owned()).is_err() {
                    break;
                }
            }
        }
    });
    rx
}

/// Records one reported commit, checking that reports are contiguous from `start`, so
/// that a report the parent failed to see cannot pass unnoticed.
fn record(round: u32, start: u64, last: &mut Option<u64>, reported: &str) {
    let i: u64 = reported.parse().unwrap_or_else(|_| panic!("bad report {reported:?}"));
    let expected = last.map_or(start, |l| l + 1);
    assert_eq!(i, expected, "round {round}: child reports are not contiguous");
    *last = Some(i);
}

#[test]
fn sigkill_during_queue_writes_loses_and_duplicates_nothing() {
    let seed =
        std::env::var("TC_DB_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
                as u64
                | 1
        });
    println!("crash test seed {seed} (replay with TC_DB_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let began = Instant::now();

    // Everything committed so far: items 0..next are committed; items below `popped`
    // were consumed by this process and checked already.
    let mut next: u64 = 0;
    let mut popped: u64 = 0;
    let mut in_flight_commits = 0u32; // rounds where the in-flight txn made it to disk

    for round in 0..ROUNDS {
        let mut child = spawn_child(&path, next);
        let commits = read_commits(&mut child);

        // Kill after a random number of reported commits (0 = during startup or the
        // first transaction), then after a random extra delay of up to 3 ms, so kills
        // land in every phase of a transaction, including inside commit's fsyncs.
        let wait_for = rng.below(25);
        let mut last_printed: Option<u64> = None;
        for _ in 0..wait_for {
            match commits.recv_timeout(ROUND_TIMEOUT) {
                Ok(reported) => record(round, next, &mut last_printed, &reported),
                Err(e) => {
                    let _ = child.kill();
                    panic!("round {round}: child reported no commit within {ROUND_TIMEOUT:?}: {e}");
                }
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(3000)));
        child.kill().unwrap(); // SIGKILL on unix
        let status = child.wait().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            const SIGKILL: i32 = 9;
            assert_eq!(
                status.signal(),
                Some(SIGKILL),
                "round {round}: child died otherwise: {status}"
            );
        }
        assert!(!status.success(), "round {round}: child exited by itself: {status}");
        // Drain what it printed before dying; the channel closes at EOF.
        for reported in commits.iter() {
            record(round, next, &mut last_printed, &reported);
        }

        // The lower bound: what the child confirmed, or what was there before this round.
        let confirmed_end = last_printed.map_or(next, |i| i + 1);

        // Reopen (redb repairs after the unclean shutdown) and check.
        let db = Db::open(&path, SCHEMA).unwrap();
        let read = db.read().unwrap();
        let items = QUEUE.items(&read).unwrap();
        let counter = COUNTER.get(&read, &()).unwrap();
        drop(read);
        let end = popped + items.len() as u64;
        for (k, (index, entry)) in items.iter().enumerate() {
            let expected = popped + k as u64;
            assert_eq!(*index, expected, "round {round}: indices not contiguous");
            assert_eq!(entry.i, expected, "round {round}: item {expected} missing or repeated");
            assert!(entry.payload == payload(entry.i), "round {round}: item {expected} torn");
        }
        assert!(
            end >= confirmed_end,
            "round {round}: committed item {} lost (queue ends at {end})",
            confirmed_end - 1
        );
        assert!(
            end <= confirmed_end + 1,
            "round {round}: {end} items but only {confirmed_end} confirmed; more than the one \
             in-flight transaction survived"
        );
        if end == confirmed_end + 1 {
            in_flight_commits += 1;
        }
        // The second write of each transaction is there exactly when its push is.
        assert_eq!(counter, end.checked_sub(1), "round {round}: counter disagrees with queue");
        assert_eq!(QUEUE.len(&db.read().unwrap()).unwrap(), end - popped);

        // Every other round, consume everything (as the queue's reader would), so the
        // children also push into a queue that was emptied; indices must continue.
        if round % 2 == 1 {
            let mut txn = db.write().unwrap();
            while let Some((index, entry)) = QUEUE.pop(&mut txn).unwrap() {
                assert_eq!((index, entry.i), (popped, popped));
                popped += 1;
            }
            txn.commit().unwrap();
            assert_eq!(popped, end);
        }
        drop(db);
        next = end;
    }

    let elapsed = began.elapsed();
    println!(
        "crash test: {ROUNDS} SIGKILL rounds, {next} items committed and checked exactly once \
         ({in_flight_commits} rounds committed the in-flight transaction before reporting), \
         {elapsed:?}"
    );
    assert!(next > 0, "no item was ever committed: the test exercised nothing");
    assert!(elapsed < Duration::from_secs(30), "crash test took {elapsed:?}");
}
