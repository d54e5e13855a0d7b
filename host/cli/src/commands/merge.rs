//! `larmon merge DIR/<run>`: combines the per-file plugin snapshots that `larmon run --shard`
//! wrote (on one node or many) into the run's report — the same report a single `larmon run`
//! over all files writes (`larmon_pipeline::merge_shards`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use larmon_pipeline::modes::shards::read_manifests;
use larmon_pipeline::{LarmonConfig, merge_shards};

/// Merge the shards of a run into its report.
///
/// Reads DIR/<run>/shards/file-*/ (one per input file: calibration statistics, time span and a
/// snapshot of every plugin), checks that every file of the run is there and was processed by
/// the same plugin components, merges the snapshots in file order and writes
/// DIR/<run>/report.json with the figures, exactly as `larmon run` over all files would.
///
/// Examples (NERSC: docs/batch.md has the Slurm job-array script):
///   larmon run f0.h5 f1.h5 f2.h5 f3.h5 --out reports --run r42 --shard 0/2   # node 0
///   larmon run f0.h5 f1.h5 f2.h5 f3.h5 --out reports --run r42 --shard 1/2   # node 1
///   larmon merge reports/r42
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The run directory (DIR/<run>) the shards wrote into.
    run_dir: PathBuf,
    /// Detector configuration, `[plugins.NAME]` and `[checks]` (as given to the shards).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Built-in detector: 2x2 (the default), single-module, sim-module (the simulation
    /// fixtures' module); replaces `detector` of the configuration. `larmon detector show`
    /// prints what it holds.
    #[arg(long, value_name = "NAME")]
    detector: Option<String>,
    /// The run's kind (beam, cosmic, …), which picks its reference runs (`larmon reference
    /// --kind`); without it, the configuration's `[[run_kinds]]` rules tell the kind from the
    /// run's metrics.
    #[arg(long, value_name = "KIND")]
    run_kind: Option<String>,
    /// The plugins (as given to the shards) and their limits.
    #[command(flatten)]
    plugin_args: super::run::PluginArgs,
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    // The shards are checked before anything is loaded: a missing one is said at once.
    let manifests = read_manifests(&args.run_dir)?;
    let config = LarmonConfig::load_for(args.config.as_deref(), args.detector.as_deref())?
        .with_run_kind(args.run_kind.as_deref())?;
    let plugins = args.plugin_args.load()?;
    let written = merge_shards(&args.run_dir, &manifests, &config, &plugins)?;
    println!("{}", written.summary_line(started.elapsed().as_secs_f64()));
    Ok(())
}
