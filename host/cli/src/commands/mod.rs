//! One module per subcommand.

pub mod bench;
pub mod calibrate;
pub mod catalog;
pub mod convert;
pub mod daq;
pub mod demo;
pub mod detector;
pub mod inspect;
pub mod light;
pub mod merge;
pub mod meta;
pub mod pack;
pub mod plugin;
pub mod reference;
pub mod run;
pub mod runs;
pub mod serve;
pub mod signoff;
pub mod simulate;
pub mod streams;
pub mod transfer;
pub mod watch;

/// An error and its causes on one line, each cause once (the pipeline's formatter: library
/// errors often spell out their source already).
pub fn error_text(err: &anyhow::Error) -> String {
    larmon_pipeline::error_text(err.as_ref())
}

/// A duration from a number of seconds given on the command line: negative or NaN is 0, and at
/// most ~30 years, so that no value makes `Duration` panic.
pub fn seconds(value: f64) -> std::time::Duration {
    // Not `clamp`: NaN must become 0, and `max` does that.
    #[allow(clippy::manual_clamp)]
    std::time::Duration::from_secs_f64(value.max(0.0).min(1e9))
}
