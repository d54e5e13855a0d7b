//! Progress bars for long work: drawn on stderr only when it is a terminal, so logs and CI
//! output stay clean. [`TerminalProgress`] draws the pipeline's bars the same way.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over `total` units named `unit` (e.g. "messages"), hidden when stderr is not a terminal.
pub fn bar(total: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let template = format!(
        "{{spinner}} {{prefix}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, {{eta}} left)"
    );
    bar.set_style(
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// The pipeline's progress as indicatif bars on stderr.
pub struct TerminalProgress;

impl larmon_pipeline::Progress for TerminalProgress {
    fn bar(&self, label: &str, total: u64, unit: &str) -> Box<dyn larmon_pipeline::ProgressBar> {
        let bar = bar(total, unit);
        bar.set_prefix(label.to_string());
        Box::new(Bar(bar))
    }
}

struct Bar(ProgressBar);

impl larmon_pipeline::ProgressBar for Bar {
    fn set_position(&self, done: u64) {
        self.0.set_position(done);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
