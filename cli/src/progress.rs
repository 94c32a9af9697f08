//! Progress bars on stderr, only when stderr is a terminal (never when piped or in tests).

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A set of bars; hidden unless stderr is a terminal.
#[derive(Debug, Clone)]
pub struct Bars {
    multi: MultiProgress,
    visible: bool,
}

impl Bars {
    pub fn new() -> Self {
        let visible = std::io::stderr().is_terminal();
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
            visible,
        }
    }

    /// A byte-counting bar for one transfer or hash.
    pub fn bytes(&self, label: &str, total: u64) -> ProgressBar {
        if !self.visible {
            return ProgressBar::hidden();
        }
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:32!} {bar:30} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {eta:>4}",
            )
            .expect("static template"),
        );
        bar.set_message(label.to_owned());
        bar
    }

    /// Print a line above the bars (or plainly when there are none).
    pub fn warn(&self, line: &str) {
        if self.visible {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }
}
