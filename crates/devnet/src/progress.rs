//! Live progress for the scenario's long waits: a bar redrawn in place when standard error
//! is a terminal (its clock ticking even while the count stands still), and otherwise (a
//! log, CI) a plain line whenever the count moved, at most one a second, plus the last.
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Characters in a bar.
const WIDTH: usize = 24;

/// One wait's progress line.
#[derive(Debug)]
pub struct Bar {
    enabled: bool,
    tty: bool,
    started: Instant,
    label: String,
    unit: &'static str,
    shown: Option<(u64, u64)>,
    last_line: Option<Instant>,
}

impl Bar {
    /// A bar for `label`, counting in `unit`, stamped with the time since `started`.
    /// Prints nothing unless `enabled`.
    pub fn new(enabled: bool, started: Instant, label: &str, unit: &'static str) -> Bar {
        Bar {
            enabled,
            tty: std::io::stderr().is_terminal(),
            started,
            label: label.into(),
            unit,
            shown: None,
            last_line: None,
        }
    }

    /// Shows `done` of `total`.
    pub fn update(&mut self, done: u64, total: u64) {
        let changed = self.shown != Some((done, total));
        let since = |d: Duration| self.last_line.is_none_or(|t| t.elapsed() >= d);
        // A terminal's line also redraws to keep its clock going; a log gets a line only
        // when the count moved.
        let due = if self.tty {
            changed || since(Duration::from_millis(250))
        } else {
            changed && since(Duration::from_secs(1))
        };
        if !self.enabled || !due {
            return;
        }
        self.shown = Some((done, total));
        let line = render(self.started.elapsed(), &self.label, done, total, self.unit);
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r{line}\x1b[K");
            let _ = err.flush();
        } else {
            let _ = writeln!(err, "{line}");
        }
        self.last_line = Some(Instant::now());
    }

    /// Ends the line, showing `done` of `total` last.
    pub fn finish(mut self, done: u64, total: u64) {
        self.last_line = None;
        self.update(done, total);
        if self.enabled && self.tty && self.shown.is_some() {
            eprintln!();
        }
    }
}

/// `[  12.3s]   credited [#########---------------]  7/20 payees (35%)`.
pub fn render(elapsed: Duration, label: &str, done: u64, total: u64, unit: &str) -> String {
    let fraction = if total == 0 { 1.0 } else { (done as f64 / total as f64).clamp(0.0, 1.0) };
    let filled = ((fraction * WIDTH as f64).floor() as usize).min(WIDTH);
    format!(
        "[{:>6.1}s]   {label:<8} [{}{}] {done}/{total} {unit} ({:.0}%)",
        elapsed.as_secs_f64(),
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        fraction * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar_of(line: &str) -> &str {
        let open = line.find(" [").map_or(0, |i| i + 2);
        let close = line[open..].find(']').map_or(line.len(), |i| open + i);
        &line[open..close]
    }

    #[test]
    fn the_bar_fills_in_proportion_and_never_overflows() {
        let at = |done, total| render(Duration::from_millis(12_345), "paid", done, total, "payees");
        assert_eq!(
            at(0, 20),
            format!("[  12.3s]   paid     [{}] 0/20 payees (0%)", "-".repeat(24))
        );
        assert_eq!(bar_of(&at(10, 20)), format!("{}{}", "#".repeat(12), "-".repeat(12)));
        assert_eq!(bar_of(&at(19, 20)).matches('#').count(), 22);
        assert_eq!(bar_of(&at(20, 20)), "#".repeat(24));
        // More than expected (a count that overshoots) and nothing to wait for: full.
        assert_eq!(bar_of(&at(30, 20)), "#".repeat(24));
        assert!(at(30, 20).ends_with("30/20 payees (100%)"));
        assert_eq!(bar_of(&at(0, 0)), "#".repeat(24));
    }
}
