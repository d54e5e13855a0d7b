//! Batch processing over a cluster: a run's files cut into contiguous shards, each shard's
//! per-file plugin snapshots and statistics on disk (`<run>/shards/file-NNNNNN/`), and the merge
//! that turns all of them into the run's report — the same report one pass over all files
//! writes, because that one merges the same per-file snapshots in the same order.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use larmon_calibrate::output::pixels_record_batch;

use crate::config::LarmonConfig;
use crate::error::{IoContext, PipelineError, Result};
use crate::input::charge::RunCalibration;
use crate::input::{add_host_stats, join_span};
use crate::output::report::{RunTotals, WrittenReport, provenance, unusable_entry, write_report};
use crate::output::safe_name;
use crate::plugins::PluginSet;
use crate::plugins::merge::PluginMerge;

/// Shard `index` of `count` (0-based) of a run's files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, 0-based.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

impl Shard {
    /// Parses `I/N` (0 <= I < N).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (i, n) = text.split_once('/').ok_or("write the shard as I/N, e.g. 0/4")?;
        let (index, count): (usize, usize) = (
            i.parse().map_err(|_| "I is not a number")?,
            n.parse().map_err(|_| "N is not a number")?,
        );
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: need 0 <= I < N"));
        }
        Ok(Self { index, count })
    }

    /// The files (indices into the run's file list of `files` files) of this shard: a
    /// contiguous block; the shards of a run cover every file once.
    pub fn files(self, files: usize) -> Range<usize> {
        (self.index * files / self.count)..((self.index + 1) * files / self.count)
    }
}

/// Per-file output of a shard: `run_dir/shards/file-<k>/`.
pub fn file_dir(run_dir: &Path, file_index: usize) -> PathBuf {
    run_dir.join("shards").join(format!("file-{file_index:06}"))
}

/// A file a shard writes per input file and plugin: `extension` "snapshot" (the plugin's
/// state) or "log.json" (its captured log).
pub fn shard_plugin_file(run_dir: &Path, index: usize, plugin: &str, extension: &str) -> PathBuf {
    file_dir(run_dir, index).join(format!("{}.{extension}", safe_name(plugin)))
}

/// What a shard writes per file beside the plugin snapshots.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct FileManifest {
    /// The file.
    pub file: PathBuf,
    /// Its index in the run's file list.
    pub index: usize,
    /// Calibration statistics of the file.
    pub host: serde_json::Value,
    /// Unix seconds of its first and last timestamp row.
    pub span: Option<(u64, u64)>,
    /// Plugin name → component SHA-256 that wrote the snapshot.
    pub plugins: BTreeMap<String, String>,
}

/// Reads the manifests of every file of the run in `run_dir`, in file order; refuses when a
/// file of the run is missing (a shard that failed or has not run).
pub fn read_manifests(run_dir: &Path) -> Result<Vec<FileManifest>> {
    let shards = run_dir.join("shards");
    let entries = std::fs::read_dir(&shards).map_err(|e| {
        PipelineError::Shards(format!(
            "{}: no shards (run `larmon run --shard I/N` first): {e}",
            shards.display()
        ))
    })?;
    let mut manifests: Vec<FileManifest> = Vec::new();
    for entry in entries {
        let path = entry.at(&shards)?.path().join("manifest.json");
        if path.exists() {
            let text = std::fs::read_to_string(&path).at(&path)?;
            manifests.push(
                serde_json::from_str(&text)
                    .map_err(|source| PipelineError::State { path: path.clone(), source })?,
            );
        }
    }
    manifests.sort_by_key(|m| m.index);
    let missing: Vec<usize> = (0..manifests.last().map_or(0, |m| m.index + 1))
        .filter(|k| !manifests.iter().any(|m| m.index == *k))
        .collect();
    if manifests.is_empty() || !missing.is_empty() {
        return Err(PipelineError::Shards(format!(
            "{}: files missing from the shards (indices {missing:?}); did a shard fail? Re-run it, then merge",
            shards.display()
        )));
    }
    Ok(manifests)
}

/// Merges the shards of the run in `run_dir`, whose manifests [`read_manifests`] gave, into
/// its report: every plugin's snapshots in file order (refused per plugin when a snapshot was
/// written by another build of it).
pub fn merge_shards(
    run_dir: &Path,
    manifests: &[FileManifest],
    config: &LarmonConfig,
    plugins: &PluginSet,
) -> Result<WrittenReport> {
    let geometry = config.detector.geometry().map_err(|source| PipelineError::Calibration {
        what: "reading the detector layout",
        source,
    })?;
    let pixels = pixels_record_batch(&geometry);
    let run_name = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| PipelineError::Shards("the run directory has no name".into()))?;
    let mut entries = Vec::new();
    for (plugin, budget) in plugins.plugins.iter().zip(plugins.budgets()) {
        let name = &plugin.info().name;
        let mut merge = PluginMerge::open(
            plugin,
            &plugins.runtime,
            &config.settings_for(plugin.info()),
            &pixels,
            &budget,
        );
        for m in manifests {
            let source = format!("file {}", m.index + 1);
            match m.plugins.get(name) {
                Some(sha) if sha == plugin.sha256() => {}
                Some(sha) => {
                    merge.fail(
                        &source,
                        format!(
                            "snapshot written by component {} but merging with {}",
                            &sha[..12.min(sha.len())],
                            &plugin.sha256()[..12]
                        ),
                    );
                    continue;
                }
                None => {
                    merge.fail(&source, "no snapshot of this plugin");
                    continue;
                }
            }
            let file = |extension| shard_plugin_file(run_dir, m.index, name, extension);
            match std::fs::read(file("snapshot")) {
                Ok(bytes) => {
                    if let Ok(text) = std::fs::read_to_string(file("log.json")) {
                        let logs = serde_json::from_str::<Vec<String>>(&text).unwrap_or_default();
                        merge.add_logs(logs);
                    }
                    merge.add(&source, Ok(&bytes));
                }
                Err(e) => merge.fail(&source, format!("snapshot: {e}")),
            }
        }
        entries.push(merge.finish(run_dir));
    }
    entries.extend(plugins.unusable.iter().map(|(file, reason)| unusable_entry(file, reason)));
    let mut host = serde_json::json!({});
    let mut span = None;
    for m in manifests {
        add_host_stats(&mut host, &m.host);
        span = join_span(span, m.span);
    }
    let files = manifests.iter().map(|m| m.file.clone()).collect();
    let calibration = RunCalibration::new(config.detector.clone())?;
    let totals = RunTotals {
        files,
        span,
        host,
        detector: calibration.summary(),
        provenance: provenance(config, calibration.sha256(), plugins),
        version: None,
    };
    write_report(&run_name, run_dir, totals, entries, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_file_once() {
        for files in 0..12 {
            for count in 1..6 {
                let covered: Vec<usize> =
                    (0..count).flat_map(|index| Shard { index, count }.files(files)).collect();
                assert_eq!(covered, (0..files).collect::<Vec<_>>(), "{files} files, {count}");
            }
        }
    }

    #[test]
    fn shard_text_is_checked() {
        assert_eq!(Shard::parse("1/4"), Ok(Shard { index: 1, count: 4 }));
        assert!(Shard::parse("4/4").unwrap_err().contains("0 <= I < N"));
        assert!(Shard::parse("x/4").is_err() && Shard::parse("3").is_err());
    }
}
