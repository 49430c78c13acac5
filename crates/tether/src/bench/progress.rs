//! Progress on stderr: `indicatif` bars when stderr is a terminal, plain lines otherwise (at most
//! one a second, so logs of scripted runs stay short). stdout is left for the report.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress goes.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    tty: bool,
}

impl Ui {
    /// Bars when stderr is a terminal, lines otherwise.
    pub fn new() -> Self {
        Self { tty: std::io::stderr().is_terminal() }
    }

    /// A line on stderr (above any bar).
    pub fn line(&self, text: &str) {
        eprintln!("{text}");
    }

    /// Progress of opening `total` connections.
    pub fn ramp(&self, label: &str, total: u64) -> RampProgress {
        let bar = self.tty.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len} {msg} ({elapsed})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_owned());
            bar
        });
        let started = Instant::now();
        RampProgress { ui: *self, bar, label: label.to_owned(), total, started, last: Mutex::new(started) }
    }

    /// A status line for a running phase, redrawn in place on a terminal.
    pub fn status(&self) -> Status {
        let bar = self.tty.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
            bar
        });
        Status { ui: *self, bar }
    }
}

/// See [`Ui::ramp`].
pub struct RampProgress {
    ui: Ui,
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    started: Instant,
    /// When the last plain line was printed.
    last: Mutex<Instant>,
}

impl RampProgress {
    pub fn set(&self, opened: u64, failed: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(opened + failed);
            if failed > 0 {
                bar.set_message(format!("{failed} failed"));
            }
            return;
        }
        let mut last = self.last.lock().expect("not poisoned");
        if last.elapsed() >= Duration::from_secs(1) {
            *last = Instant::now();
            if opened + failed < self.total {
                self.ui.line(&format!("{}: {}/{} opened, {failed} failed", self.label, opened, self.total));
            }
        }
    }

    pub fn finish(&self, opened: u64, failed: u64) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.ui.line(&format!(
            "{}: {opened}/{} opened, {failed} failed, in {:.2} s",
            self.label,
            self.total,
            self.started.elapsed().as_secs_f64()
        ));
    }
}

/// See [`Ui::status`].
pub struct Status {
    ui: Ui,
    bar: Option<ProgressBar>,
}

impl Status {
    pub fn update(&self, text: String) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(text);
                bar.tick();
            }
            None => self.ui.line(&text),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
