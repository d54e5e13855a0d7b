//! The one path from per-file plugin snapshots to a plugin's report entry, shared by
//! `larmon run` (snapshots merged as each file ends), `larmon merge` (snapshots read from the
//! shards) and `larmon watch` (the latest snapshot of every file of a run): a fresh instance
//! merges them in file order, the first failure is kept with the file it came from, and the
//! merged instance writes the report entry and figures.

use std::fmt::Display;
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use larmon_report::PluginEntry;
use larmon_runtime::{LoadedPlugin, PluginFailure, PluginRun, RunBudget, Runtime};

use crate::output::report::finish_plugin;
use crate::plugins::open_instance;

/// A plugin's run instance that merges the per-file snapshots of a run.
pub struct PluginMerge<'a> {
    plugin: &'a LoadedPlugin,
    run: Result<PluginRun, PluginFailure>,
    failure: Option<String>,
    logs: Vec<String>,
}

impl<'a> PluginMerge<'a> {
    /// A fresh run instance of `plugin` with its configuration and the detector's pixels.
    pub fn open(
        plugin: &'a LoadedPlugin,
        runtime: &Runtime,
        config: &str,
        pixels: &RecordBatch,
        budget: &Arc<RunBudget>,
    ) -> Self {
        let run = open_instance(plugin, runtime, config, pixels, budget);
        Self { plugin, run, failure: None, logs: Vec::new() }
    }

    /// The run instance made of the first file's own instance: what merging its snapshot into
    /// a fresh instance gives, without the snapshot, the merge and a second instance's memory
    /// (a one-file run, the usual case, never copies its state).
    pub fn adopt(plugin: &'a LoadedPlugin, mut first_file: PluginRun) -> Self {
        // The first file's lines come first, the run instance's own (its report) last.
        let logs = first_file.take_log();
        Self { plugin, run: Ok(first_file), failure: None, logs }
    }

    /// Merges the snapshot of the next file (`source` names it in an error); a failed snapshot
    /// or merge is kept as the plugin's first failure and the plugin is reported as failed.
    pub fn add(&mut self, source: impl Display, snapshot: Result<&[u8], &PluginFailure>) {
        let outcome = snapshot.map_err(Clone::clone).and_then(|bytes| match self.run.as_mut() {
            Ok(run) => run.merge(bytes),
            Err(e) => Err(e.clone()),
        });
        if let Err(e) = outcome {
            self.failure.get_or_insert(format!("{source}: {e}"));
        }
    }

    /// Records a failure that did not come from a snapshot (e.g. a per-file instance that
    /// could not be opened); only the first one is kept.
    pub fn fail(&mut self, source: impl Display, error: impl Display) {
        self.failure.get_or_insert(format!("{source}: {error}"));
    }

    /// Adds the log lines of per-file instances (they come before the merged instance's own).
    pub fn add_logs(&mut self, logs: impl IntoIterator<Item = String>) {
        self.logs.extend(logs);
    }

    /// Asks the merged instance for the plugin's report and writes its figures under
    /// `run_dir`.
    pub fn finish(self, run_dir: &Path) -> PluginEntry {
        finish_plugin(self.plugin, self.run, self.failure, self.logs, run_dir)
    }
}
