//! `larmon merge DIR/<run>`: combines the per-file plugin snapshots that `larmon run --shard`
//! wrote (on one node or many) into the run's report — the same report a single `larmon run`
//! over all files writes, because that one merges the same per-file snapshots in the same order.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use larmon_calibrate::output::pixels_record_batch;

use super::run::{
    FileManifest, add_host_stats, finish_plugin, join_span, open_instance, read_config,
    shard_plugin_file, write_report,
};

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
    /// The plugins (as given to the shards) and their limits.
    #[command(flatten)]
    plugin_args: super::run::PluginArgs,
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let shards = args.run_dir.join("shards");
    let mut manifests: Vec<FileManifest> = Vec::new();
    let entries = std::fs::read_dir(&shards).with_context(|| {
        format!("{}: no shards (run `larmon run --shard I/N` first)", shards.display())
    })?;
    for entry in entries {
        let path = entry?.path().join("manifest.json");
        if path.exists() {
            let text = std::fs::read_to_string(&path)?;
            manifests
                .push(serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?);
        }
    }
    manifests.sort_by_key(|m| m.index);
    let missing: Vec<usize> = (0..manifests.last().map_or(0, |m| m.index + 1))
        .filter(|k| !manifests.iter().any(|m| m.index == *k))
        .collect();
    if manifests.is_empty() || !missing.is_empty() {
        bail!(
            "{}: files missing from the shards (indices {missing:?}); did a shard fail? Re-run it, then merge",
            shards.display()
        );
    }
    let (detector, plugin_configs, checks) = read_config(args.config.as_deref())?;
    let (runtime, plugins) = args.plugin_args.load()?;
    let pixels = pixels_record_batch(&detector.geometry().context("reading the detector layout")?);
    let run_name = args
        .run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("the run directory has no name")?;
    let mut entries = Vec::new();
    for plugin in &plugins {
        let name = &plugin.info().name;
        let config = plugin_configs.get(name).cloned().unwrap_or_else(|| "{}".into());
        let mut failure = None;
        let mut logs = Vec::new();
        let mut run = open_instance(plugin, &runtime, &config, &pixels);
        for m in &manifests {
            let outcome = (|| -> Result<(), String> {
                match m.plugins.get(name) {
                    Some(sha) if sha == plugin.sha256() => {}
                    Some(sha) => {
                        return Err(format!(
                            "snapshot written by component {} but merging with {}",
                            &sha[..12.min(sha.len())],
                            &plugin.sha256()[..12]
                        ));
                    }
                    None => return Err("no snapshot of this plugin".into()),
                }
                let file = |extension| shard_plugin_file(&args.run_dir, m.index, name, extension);
                let bytes =
                    std::fs::read(file("snapshot")).map_err(|e| format!("snapshot: {e}"))?;
                if let Ok(text) = std::fs::read_to_string(file("log.json")) {
                    logs.extend(serde_json::from_str::<Vec<String>>(&text).unwrap_or_default());
                }
                match run.as_mut() {
                    Ok(r) => r.merge(&bytes),
                    Err(e) => Err(e.clone()),
                }
            })();
            if let Err(e) = outcome {
                failure.get_or_insert(format!("file {}: {e}", m.index + 1));
            }
        }
        entries.push(finish_plugin(plugin, run, failure, logs, &args.run_dir));
    }
    let mut host = serde_json::json!({});
    let mut span = None;
    for m in &manifests {
        add_host_stats(&mut host, &m.host);
        span = join_span(span, m.span);
    }
    let files = manifests.iter().map(|m| m.file.clone()).collect();
    write_report(&run_name, &args.run_dir, files, span, host, entries, &checks, started)
}
