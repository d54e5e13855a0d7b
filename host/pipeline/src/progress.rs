//! How the pipeline reports progress on long work without printing anything itself: the caller
//! (the CLI draws indicatif bars on a terminal) hands in a [`Progress`]; [`Silent`] draws none.

/// Makes progress bars.
pub trait Progress: Sync {
    /// A bar over `total` units named `unit` (e.g. "bytes"), labelled `label`.
    fn bar(&self, label: &str, total: u64, unit: &str) -> Box<dyn ProgressBar>;
}

/// One bar.
pub trait ProgressBar {
    /// `done` of the total units are done.
    fn set_position(&self, done: u64);
    /// The work is over: remove the bar.
    fn finish(&self);
}

/// No progress bars (libraries, tests, notebooks).
pub struct Silent;

impl Progress for Silent {
    fn bar(&self, _: &str, _: u64, _: &str) -> Box<dyn ProgressBar> {
        Box::new(Silent)
    }
}

impl ProgressBar for Silent {
    fn set_position(&self, _: u64) {}
    fn finish(&self) {}
}
