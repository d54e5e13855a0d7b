//! `larmon run`: files of one run → calibration → every plot plugin → report.json + figures.
//! The work is `larmon_pipeline::run_files`; this is its command line.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use larmon_pipeline::{
    LarmonConfig, PluginOptions, PluginSet, RunOptions, RunOutcome, Shard, run_files,
};

use crate::progress::TerminalProgress;

/// Run the plot plugins over the files of one run and write its report.
///
/// The files are read in order, calibrated (hits, events, tracks), and every batch of every
/// stream a plugin asked for is handed to it. Each plugin runs sandboxed (no files, network or
/// environment; memory, per-call and per-run time limits) in its own thread; one that fails is reported with its
/// reason while the others go on. Output: DIR/<run>/report.json with each plugin's status,
/// metrics, checks and log, and DIR/<run>/<plugin>/<figure>.svg (+ .json with the plotted data).
/// The exit code is non-zero only if larmon itself failed.
///
/// Bundled plugins are the .wasm files in --plugin-dir (default: $LARMON_PLUGIN_DIR, else the
/// build's target/wasm32-wasip2/plugin beside the larmon binary); --plugin adds one or replaces
/// the bundled plugin of the same name.
///
/// Examples:
///   larmon run tests/data/small-raw.h5 --out reports
///   larmon run run1_p0.h5 run1_p1.h5 --out reports --plugin my-dqdx.wasm --config larmon.toml
///   larmon run run1_p0.h5 --out reports --plugin my-dqdx.wasm --as alice-dqdx   (reviewer)
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Raw, packet, ndlar_flow or light files of one run.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output directory (the report goes to DIR/<run>/).
    #[arg(long)]
    out: PathBuf,
    /// Detector configuration plus `[plugins.NAME]` tables with plugin settings (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Built-in detector: 2x2 (the default), single-module, sim-module (the simulation
    /// fixtures' module); replaces `detector` of the configuration. `larmon detector show`
    /// prints what it holds.
    #[arg(long, value_name = "NAME")]
    detector: Option<String>,
    /// Run name (default: run-NNNNNNN after the first file that names its run — the name
    /// `larmon watch` gives the same run — else the first file's name without extension).
    #[arg(long)]
    run: Option<String>,
    /// The 2x2 run database (SQLite table All_global_subruns, or CSV with its columns): the
    /// run is named after its global run.
    #[arg(long, value_name = "FILE")]
    run_db: Option<PathBuf>,
    /// The run's kind (beam, cosmic, …), which picks its reference runs (`larmon reference
    /// --kind`); without it, the configuration's `[[run_kinds]]` rules tell the kind from the
    /// run's metrics.
    #[arg(long, value_name = "KIND")]
    run_kind: Option<String>,
    #[command(flatten)]
    plugin_args: PluginArgs,
    /// Light channel → detector map (JSON list of {adc, channel, tpc, det, det_type}; default:
    /// the 2x2 map) for light files in the run.
    #[arg(long)]
    light_channel_map: Option<PathBuf>,
    /// Process only shard I of N (0-based): a contiguous share of the files, written as
    /// per-file plugin snapshots to DIR/<run>/shards/ for `larmon merge` instead of a report.
    #[arg(long, value_name = "I/N", value_parser = Shard::parse)]
    shard: Option<Shard>,
    /// A reviewer's re-analysis: write the report as version NAME of the run, to
    /// DIR/<run>/versions/NAME/, beside the official one, which is left exactly as it was (a
    /// failing plugin of yours cannot change the run's flag). The run page shows the versions
    /// side by side with their metric differences.
    #[arg(long = "as", value_name = "NAME", conflicts_with = "shard")]
    as_version: Option<String>,
}

impl Args {
    /// The arguments of `larmon run FILES --out OUT --run RUN` with every other option at its
    /// default (what `larmon demo` runs).
    pub fn simple(files: Vec<PathBuf>, out: PathBuf, run: &str) -> Self {
        Self {
            files,
            out,
            config: None,
            detector: None,
            run: Some(run.into()),
            run_db: None,
            run_kind: None,
            plugin_args: PluginArgs::default(),
            light_channel_map: None,
            shard: None,
            as_version: None,
        }
    }
}

/// Which plugins to run and their sandbox limits (shared by `run`, `watch` and `merge`).
#[derive(clap::Args)]
pub struct PluginArgs {
    /// A plugin component to add (or to replace the bundled one of the same name).
    #[arg(long = "plugin")]
    plugins: Vec<PathBuf>,
    /// Directory of bundled plugins.
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    /// Time limit of one plugin call, seconds (time in the plugin and in the host calls it
    /// makes: a plugin asleep is stopped too).
    #[arg(long, default_value_t = 10.0)]
    plugin_timeout: f64,
    /// Time a plugin may spend in calls over one run, seconds; past it the plugin is stopped,
    /// reported as failed, and the run goes on without it.
    #[arg(long, default_value_t = 1800.0)]
    plugin_budget_s: f64,
    /// Memory limit of one plugin instance (all its memories and tables), MiB.
    #[arg(long, default_value_t = 512)]
    plugin_memory_mib: usize,
    /// Cache of compiled plugins (default: $XDG_CACHE_HOME/larmon or ~/.cache/larmon).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

impl Default for PluginArgs {
    fn default() -> Self {
        Self {
            plugins: Vec::new(),
            plugin_dir: None,
            plugin_timeout: 10.0,
            plugin_budget_s: 1800.0,
            plugin_memory_mib: 512,
            cache_dir: None,
        }
    }
}

impl PluginArgs {
    /// The runtime with these limits and the plugins loaded (compiled ones from the cache).
    pub fn load(&self) -> Result<PluginSet> {
        for (name, value) in
            [("--plugin-timeout", self.plugin_timeout), ("--plugin-budget-s", self.plugin_budget_s)]
        {
            anyhow::ensure!(
                value.is_finite() && value > 0.0 && value < 1e9,
                "{name} must be a positive number of seconds, not {value}"
            );
        }
        let options = PluginOptions {
            extra: self.plugins.clone(),
            plugin_dir: self.plugin_dir.clone(),
            bundled: true,
            call_timeout: Duration::from_secs_f64(self.plugin_timeout),
            run_budget: Duration::from_secs_f64(self.plugin_budget_s),
            memory_bytes: self.plugin_memory_mib << 20,
            cache_dir: self.cache_dir.clone(),
        };
        let set = options.load()?;
        for (file, reason) in &set.unusable {
            eprintln!("warning: plugin {file} not loaded: {reason} (the run goes on without it)");
        }
        Ok(set)
    }
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let config = LarmonConfig::load_for(args.config.as_deref(), args.detector.as_deref())?
        .with_run_kind(args.run_kind.as_deref())?;
    let plugins = args.plugin_args.load()?;
    let options = RunOptions {
        files: args.files,
        out: args.out,
        run: args.run,
        run_db: args.run_db.as_deref().map(larmon_catalog::runs::RunDatabase::open).transpose()?,
        light_channel_map: args.light_channel_map,
        shard: args.shard,
        version: args.as_version,
    };
    match run_files(&options, &config, &plugins, &TerminalProgress)? {
        RunOutcome::Report(written) => {
            println!("{}", written.summary_line(started.elapsed().as_secs_f64()));
        }
        RunOutcome::Shard { run, shard, files, dir, failures } => {
            for (plugin, failure) in failures {
                eprintln!("warning: {plugin}: {failure}");
            }
            println!(
                "{run}: shard {}/{}: files {}..{} of {} -> {} in {:.2} s",
                shard.index,
                shard.count,
                files.start + 1,
                files.end,
                options.files.len(),
                dir.display(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
