//! The runner against scripted tasks, on Tokio's paused clock: every timing below is exact
//! simulated time, and a test that waits "an hour" finishes at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use task::{run, FatalError, RunConfig, Shutdown, Task, TaskError, TaskStats, TaskWaker};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};

const MS: Duration = Duration::from_millis(1);
const HOUR: Duration = Duration::from_secs(3600);
/// More iterations than any test legitimately runs.
const RUNAWAY: usize = 10_000;

/// What a scripted iteration does.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// `Ok(true)`.
    Progress,
    /// `Ok(false)`.
    Idle,
    /// A transient error.
    Transient,
    /// A fatal error.
    Fatal,
    /// Sleeps, then returns `Ok(progress)`: an iteration that takes time.
    Slow(Duration, bool),
    /// A bug.
    Panic,
}

#[derive(Debug, thiserror::Error)]
#[error("config invalid")]
struct ConfigInvalid(#[source] std::io::Error);

/// What the scripted task observed, shared with the test.
#[derive(Debug, Default)]
struct Observed {
    /// When each iteration started.
    started: Mutex<Vec<Instant>>,
    /// `consecutive_failures` as each iteration started.
    failures_at_start: Mutex<Vec<u32>>,
    /// Iterations that ran to their end.
    completed: AtomicU64,
}

impl Observed {
    fn started(&self) -> Vec<Instant> {
        self.started.lock().expect("not poisoned").clone()
    }
    fn count(&self) -> usize {
        self.started().len()
    }
}

struct Scripted {
    name: &'static str,
    steps: VecDeque<Step>,
    /// Played once `steps` is exhausted, forever.
    then: Step,
    observed: Arc<Observed>,
    stats: Arc<TaskStats>,
}

impl Task for Scripted {
    fn name(&self) -> &str {
        self.name
    }

    async fn run_iteration(&mut self) -> Result<bool, TaskError> {
        {
            let mut started = self.observed.started.lock().expect("not poisoned");
            // A runner that spins (never waits) would freeze the paused clock and hang the
            // test: fail it instead.
            assert!(started.len() < RUNAWAY, "{}: runaway loop, never waits", self.name);
            started.push(Instant::now());
        }
        self.observed
            .failures_at_start
            .lock()
            .expect("not poisoned")
            .push(self.stats.consecutive_failures());
        let step = self.steps.pop_front().unwrap_or(self.then);
        let result = match step {
            Step::Progress => Ok(true),
            Step::Idle => Ok(false),
            Step::Transient => Err(TaskError::transient(std::io::Error::other("node down"))),
            Step::Fatal => Err(TaskError::fatal(ConfigInvalid(std::io::Error::other("no key")))),
            Step::Slow(duration, progress) => {
                sleep(duration).await;
                Ok(progress)
            }
            Step::Panic => panic!("invariant broken"),
        };
        self.observed.completed.fetch_add(1, Ordering::SeqCst);
        result
    }
}

/// A running scripted task and the handles to poke it.
struct Harness {
    handle: JoinHandle<Result<(), FatalError>>,
    observed: Arc<Observed>,
    stats: Arc<TaskStats>,
    waker: TaskWaker,
    shutdown: Shutdown,
}

fn spawn(
    name: &'static str,
    steps: &[Step],
    then: Step,
    config: RunConfig,
    dependents: Vec<TaskWaker>,
    shutdown: Shutdown,
) -> Harness {
    let observed = Arc::new(Observed::default());
    let stats = Arc::new(TaskStats::default());
    let waker = TaskWaker::new();
    let task = Scripted {
        name,
        steps: steps.iter().copied().collect(),
        then,
        observed: observed.clone(),
        stats: stats.clone(),
    };
    let handle =
        tokio::spawn(run(task, config, waker.clone(), dependents, shutdown.clone(), stats.clone()));
    Harness { handle, observed, stats, waker, shutdown }
}

fn config(idle_poll: Duration, backoff_base: Duration, backoff_cap: Duration) -> RunConfig {
    RunConfig { idle_poll, backoff_base, backoff_cap }
}

impl Harness {
    /// Triggers shutdown and expects the runner to return `Ok(())` within `within`.
    async fn stop_within(self, within: Duration) -> Arc<Observed> {
        self.shutdown.trigger();
        let result = timeout(within, self.handle).await.expect("runner did not stop in time");
        result.expect("runner panicked").expect("runner failed");
        self.observed
    }
}

fn gaps(times: &[Instant]) -> Vec<Duration> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn default_config_is_documented_values() {
    assert_eq!(
        RunConfig::default(),
        config(Duration::from_secs(5), Duration::from_millis(100), Duration::from_secs(30))
    );
}

#[tokio::test(start_paused = true)]
async fn transient_backoff_follows_schedule_and_resets_after_progress() {
    use Step::*;
    let base = Duration::from_millis(100);
    let script = [Transient, Transient, Transient, Transient, Transient, Progress, Transient];
    let h = spawn(
        "flaky",
        &script,
        Idle,
        config(HOUR, base, Duration::from_secs(30)),
        vec![],
        Shutdown::new(),
    );
    sleep(Duration::from_secs(10)).await;

    let started = h.observed.started();
    assert_eq!(started.len(), 8, "5 failures, progress, failure, then idle");
    let gaps = gaps(&started);
    // Waits after failures 1..=5: equal jitter within [d/2, d], d = 100ms * 2^(n-1).
    for (n, gap) in gaps[..5].iter().enumerate() {
        let upper = base * 2u32.pow(n as u32);
        assert!(
            *gap >= upper / 2 && *gap <= upper + MS,
            "wait after failure {}: {gap:?} not in [{:?}, {upper:?}]",
            n + 1,
            upper / 2
        );
    }
    // Progress runs again at once.
    assert_eq!(gaps[5], Duration::ZERO);
    // The failure after progress waits ~base again, not 3.2 s.
    assert!(gaps[6] >= base / 2 && gaps[6] <= base + MS, "after reset: {:?}", gaps[6]);

    let failures = h.observed.failures_at_start.lock().expect("not poisoned").clone();
    assert_eq!(failures, [0, 1, 2, 3, 4, 5, 0, 1]);
    assert_eq!(h.stats.iterations(), 8);
    assert_eq!(h.stats.progress_iterations(), 1);
    assert_eq!(h.stats.transient_errors(), 6);
    assert_eq!(h.stats.consecutive_failures(), 0, "the idle success clears the gauge");
    assert_eq!(h.stats.last_error().as_deref(), Some("node down"));
    h.stop_within(MS).await;
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped_in_the_runner() {
    let (base, cap) = (Duration::from_secs(1), Duration::from_secs(4));
    let h = spawn("down", &[], Step::Transient, config(HOUR, base, cap), vec![], Shutdown::new());
    sleep(Duration::from_secs(60)).await;
    let gaps = gaps(&h.observed.started());
    assert!(gaps.len() >= 12, "{gaps:?}");
    for gap in &gaps[3..] {
        assert!(*gap >= cap / 2 && *gap <= cap + MS, "{gap:?}");
    }
    assert_eq!(u64::from(h.stats.consecutive_failures()), h.stats.transient_errors());
    h.stop_within(MS).await;
}

#[tokio::test(start_paused = true)]
async fn fatal_error_stops_the_runner_and_names_the_task() {
    use Step::*;
    let script = [Transient, Transient, Progress, Idle, Transient, Fatal];
    let h = spawn("signer", &script, Progress, config(MS, MS, MS), vec![], Shutdown::new());

    let error = timeout(Duration::from_secs(1), h.handle)
        .await
        .expect("fatal error stops the runner")
        .expect("no panic")
        .expect_err("fatal");
    assert_eq!(error.task, "signer");
    assert_eq!(error.to_string(), "task signer failed fatally: config invalid");
    assert_eq!(error.source.to_string(), "config invalid");

    assert_eq!(h.observed.count(), 6, "no iteration after the fatal one");
    assert_eq!(h.stats.iterations(), 6);
    assert_eq!(h.stats.progress_iterations(), 1);
    assert_eq!(h.stats.transient_errors(), 3);
    assert_eq!(h.stats.consecutive_failures(), 1);
    assert_eq!(h.stats.last_error().as_deref(), Some("config invalid: no key"));
    assert!(!h.shutdown.is_triggered(), "a fatal error is reported, the binary decides");
}

#[tokio::test(start_paused = true)]
async fn panics_propagate() {
    let h = spawn("buggy", &[], Step::Panic, RunConfig::default(), vec![], Shutdown::new());
    let joined = timeout(Duration::from_secs(1), h.handle).await.expect("finished");
    assert!(joined.expect_err("panicked").is_panic());
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_an_idle_task_promptly() {
    let h = spawn("idle", &[], Step::Idle, config(HOUR, MS, MS), vec![], Shutdown::new());
    sleep(Duration::from_secs(1)).await;
    assert_eq!(h.observed.count(), 1);
    let observed = h.stop_within(MS).await;
    assert_eq!(observed.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_interrupts_a_long_backoff() {
    let h = spawn("down", &[], Step::Transient, config(MS, HOUR, HOUR), vec![], Shutdown::new());
    sleep(Duration::from_secs(1)).await;
    assert_eq!(h.observed.count(), 1);
    assert_eq!(h.stats.transient_errors(), 1);
    let observed = h.stop_within(MS).await;
    assert_eq!(observed.count(), 1, "no retry after shutdown");
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_the_iteration_in_progress_finish() {
    let iteration = Duration::from_secs(10);
    let h = spawn(
        "slow",
        &[Step::Slow(iteration, true)],
        Step::Progress,
        config(HOUR, MS, MS),
        vec![],
        Shutdown::new(),
    );
    sleep(Duration::from_secs(1)).await;
    assert_eq!(h.observed.count(), 1);
    assert_eq!(h.observed.completed.load(Ordering::SeqCst), 0, "still running");
    let began = h.observed.started()[0];

    let observed = h.stop_within(Duration::from_secs(60)).await;
    assert_eq!(observed.completed.load(Ordering::SeqCst), 1, "the iteration was not cut");
    assert!(Instant::now() - began >= iteration);
    assert_eq!(observed.count(), 1, "progress did not start another iteration");
}

#[tokio::test(start_paused = true)]
async fn triggered_shutdown_runs_no_iteration() {
    let shutdown = Shutdown::new();
    shutdown.trigger();
    let h = spawn("late", &[], Step::Progress, RunConfig::default(), vec![], shutdown);
    let observed = h.stop_within(MS).await;
    assert_eq!(observed.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn idle_task_polls_at_the_idle_interval() {
    let poll = Duration::from_secs(5);
    let h = spawn("poller", &[], Step::Idle, config(poll, MS, MS), vec![], Shutdown::new());
    sleep(Duration::from_secs(12)).await;
    assert_eq!(gaps(&h.observed.started()), [poll, poll]);
    h.stop_within(MS).await;
}

#[tokio::test(start_paused = true)]
async fn progress_runs_again_at_once() {
    use Step::*;
    let h = spawn(
        "busy",
        &[Progress, Progress, Progress],
        Idle,
        config(HOUR, MS, MS),
        vec![],
        Shutdown::new(),
    );
    sleep(Duration::from_secs(1)).await;
    assert_eq!(gaps(&h.observed.started()), [Duration::ZERO; 3]);
    assert_eq!(h.stats.progress_iterations(), 3);
    h.stop_within(MS).await;
}

#[tokio::test(start_paused = true)]
async fn wake_runs_an_idle_task_at_once() {
    let h = spawn("woken", &[], Step::Idle, config(HOUR, MS, MS), vec![], Shutdown::new());
    sleep(Duration::from_secs(1)).await;
    assert_eq!(h.observed.count(), 1);
    h.waker.wake();
    sleep(Duration::from_secs(1)).await;
    assert_eq!(gaps(&h.observed.started()), [Duration::from_secs(1)]);
    // No spurious iterations afterwards.
    sleep(Duration::from_secs(600)).await;
    assert_eq!(h.observed.count(), 2);
    h.stop_within(MS).await;
}

#[tokio::test(start_paused = true)]
async fn wakes_during_an_iteration_are_kept_and_coalesced() {
    let iteration = Duration::from_secs(10);
    let h = spawn(
        "busy",
        &[Step::Slow(iteration, false)],
        Step::Idle,
        config(HOUR, MS, MS),
        vec![],
        Shutdown::new(),
    );
    sleep(Duration::from_secs(1)).await;
    for _ in 0..3 {
        h.waker.wake();
    }
    sleep(Duration::from_secs(60)).await;
    // One more iteration, as soon as the slow one ended: not lost, not tripled.
    assert_eq!(gaps(&h.observed.started()), [iteration]);
    h.stop_within(MS).await;
}

#[tokio::test(start_paused = true)]
async fn wakes_during_backoff_wait_for_the_backoff() {
    use Step::*;
    let backoff = Duration::from_secs(100);
    let h =
        spawn("down", &[Transient], Idle, config(HOUR, backoff, backoff), vec![], Shutdown::new());
    sleep(Duration::from_secs(1)).await;
    h.waker.wake();
    sleep(Duration::from_secs(600)).await;
    let gaps = gaps(&h.observed.started());
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(gaps[0] >= backoff / 2, "the wake cut the backoff short: {gaps:?}");
    h.stop_within(MS).await;
}

#[tokio::test(start_paused = true)]
async fn progress_wakes_dependents() {
    use Step::*;
    let shutdown = Shutdown::new();
    let downstream = spawn("downstream", &[], Idle, config(HOUR, MS, MS), vec![], shutdown.clone());
    let poll = Duration::from_secs(10);
    // Idle at 0 s (wakes nobody), progress at 10 s (wakes downstream), idle after.
    let upstream = spawn(
        "upstream",
        &[Idle, Progress],
        Idle,
        config(poll, MS, MS),
        vec![downstream.waker.clone()],
        shutdown.clone(),
    );
    sleep(Duration::from_secs(1800)).await;

    let down = downstream.observed.started();
    assert_eq!(gaps(&down), [poll], "woken exactly once, by the progress");
    let up = upstream.observed.started();
    assert_eq!(up[1], down[1], "woken at the progress, not at its idle poll");
    assert!(up.len() > 100, "upstream kept polling: {}", up.len());

    upstream.stop_within(MS).await;
    downstream.stop_within(MS).await;
}

#[tokio::test(start_paused = true)]
async fn wakes_before_an_iteration_are_satisfied_by_it() {
    let iteration = Duration::from_secs(10);
    // A slow progress iteration, during which a wake arrives; the next iteration starts at
    // once anyway (progress) and sees everything the wake announced.
    let h = spawn(
        "busy",
        &[Step::Slow(iteration, true)],
        Step::Idle,
        config(HOUR, MS, MS),
        vec![],
        Shutdown::new(),
    );
    sleep(Duration::from_secs(1)).await;
    h.waker.wake();
    sleep(Duration::from_secs(60)).await;
    assert_eq!(gaps(&h.observed.started()), [iteration], "no stale third iteration");
    h.stop_within(MS).await;
}
