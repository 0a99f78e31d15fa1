//! Progress: an indicatif bar on a terminal, plain periodic lines otherwise (logs, sweeps,
//! Slurm), nothing with `--quiet`.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

enum Mode {
    Bar(ProgressBar),
    Lines {
        last: Option<Instant>,
        every: Duration,
    },
    Quiet,
}

pub struct Progress {
    mode: Mode,
    label: String,
    total: u64,
    started: Instant,
}

impl Progress {
    /// `total` counts the units (epochs) the run will report.
    pub fn new(label: &str, total: u64, quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:20}] {pos}/{len} {elapsed}<{eta} {wide_msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            Mode::Bar(bar)
        } else {
            let secs = std::env::var("STOCHLAB_PROGRESS_SECS")
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(5.0);
            Mode::Lines {
                last: None,
                every: Duration::from_secs_f64(secs),
            }
        };
        Progress {
            mode,
            label: label.to_string(),
            total,
            started: Instant::now(),
        }
    }

    /// Reports that `done` units are finished, with a short summary of the latest metrics.
    pub fn update(&mut self, done: u64, summary: &str) {
        match &mut self.mode {
            Mode::Bar(bar) => {
                bar.set_position(done);
                bar.set_message(summary.to_string());
            }
            Mode::Lines { last, every } => {
                let due = last.is_none_or(|t| t.elapsed() >= *every) || done == self.total;
                if due {
                    *last = Some(Instant::now());
                    eprintln!(
                        "[{}] epoch {done}/{} {summary} ({:.1}s)",
                        self.label,
                        self.total,
                        self.started.elapsed().as_secs_f64()
                    );
                }
            }
            Mode::Quiet => {}
        }
    }

    /// Prints a message above the bar (or as its own line); silent with --quiet.
    pub fn note(&self, msg: &str) {
        match &self.mode {
            Mode::Bar(bar) => bar.println(msg),
            Mode::Lines { .. } => eprintln!("[{}] {msg}", self.label),
            Mode::Quiet => {}
        }
    }

    pub fn finish(&self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}
