//! larmon's pipeline as a library: the files of a run through calibration to the sandboxed plot
//! plugins and into a report, in one pass, in shards over a cluster, or live from a DAQ folder.
//! The `larmon` command line is a thin layer of argument parsing and printing over this crate.
//!
//! Data flows through the modules in this order:
//! - [`config`]: the one configuration (detector, plugin settings, checks) every command reads;
//! - [`streams`]: the stream vocabulary — names, schemas, and the stage producing each;
//! - [`input`]: charge files calibrated file by file, light files matched to charge triggers;
//! - [`plugins`]: which plugins run with which limits, and the one snapshot → merge → report
//!   path;
//! - [`output`]: report.json with checks and the quality flag, and the figures;
//! - [`modes`]: [`modes::run`] (one pass or one shard), [`modes::shards`] (the merge of shards)
//!   and [`modes::watch`] (realtime, checkpointed).
//!
//! ```no_run
//! use larmon_pipeline::{LarmonConfig, PluginOptions, RunOptions, RunOutcome, Silent, run_files};
//! let config = LarmonConfig::load(None)?;
//! let plugins = PluginOptions::default().load()?;
//! let options = RunOptions {
//!     files: vec!["run.h5".into()],
//!     out: "reports".into(),
//!     ..RunOptions::default()
//! };
//! if let RunOutcome::Report(written) = run_files(&options, &config, &plugins, &Silent)? {
//!     println!("{}", written.summary_line(0.0));
//! }
//! # Ok::<(), larmon_pipeline::PipelineError>(())
//! ```

pub mod config;
pub mod error;
pub mod input;
pub mod known_bad;
pub mod modes;
pub mod output;
pub mod plugins;
pub mod progress;
pub mod streams;

pub use config::LarmonConfig;
pub use error::{PipelineError, Result, error_text};
pub use modes::run::{RunOptions, RunOutcome, run_files};
pub use modes::shards::{Shard, merge_shards};
pub use modes::watch::{DaqWatch, Notice, WatchOptions, finished_files};
pub use plugins::{PluginOptions, PluginSet};
pub use progress::{Progress, ProgressBar, Silent};
pub use streams::Stream;
