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
    /// The run instance's snapshot while it is parked ([`PluginMerge::park`]); `run` is then
    /// a placeholder error.
    parked: Option<Vec<u8>>,
    failure: Option<String>,
    logs: Vec<String>,
}

/// What `run` holds while the instance is parked (never reported: unparked first).
fn parked_placeholder() -> Result<PluginRun, PluginFailure> {
    Err(PluginFailure::Host("the run instance is parked".into()))
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
        Self { plugin, run, parked: None, failure: None, logs: Vec::new() }
    }

    /// The run instance made of the first file's own instance: what merging its snapshot into
    /// a fresh instance gives, without the snapshot, the merge and a second instance's memory
    /// (a one-file run, the usual case, never copies its state).
    pub fn adopt(plugin: &'a LoadedPlugin, mut first_file: PluginRun) -> Self {
        // The first file's lines come first, the run instance's own (its report) last.
        let logs = first_file.take_log();
        Self { plugin, run: Ok(first_file), parked: None, failure: None, logs }
    }

    /// Keeps the run instance as its snapshot and drops the instance, so that the next file's
    /// instance is the only one in memory (a run of many files otherwise holds two instances
    /// per plugin: for the 2x2, each pixel-drawing plugin's pixel index and per-channel state
    /// twice). [`PluginMerge::unpark`] brings it back: a fresh instance that merges the
    /// snapshot, which is what merging every file into a fresh instance gives anyway. An
    /// instance that cannot give its snapshot stays in memory. Costs a snapshot, an instance
    /// opened with the pixels and a merge per plugin and file: a 4-file run of 200 s 2x2
    /// files took 11.2–11.4 s instead of 10.6–10.7 s, and peaked at 361 MB instead of 475 MB.
    pub fn park(&mut self) {
        let Ok(run) = self.run.as_mut() else { return };
        self.logs.extend(run.take_log());
        if let Ok(snapshot) = run.snapshot() {
            self.parked = Some(snapshot);
            self.run = parked_placeholder();
        }
    }

    /// The run instance back from its snapshot, if parked: `open` gives a fresh instance
    /// (its opening's log lines were kept when the first one opened).
    pub fn unpark(&mut self, open: impl FnOnce() -> Result<PluginRun, PluginFailure>) {
        let Some(snapshot) = self.parked.take() else { return };
        self.run = open().and_then(|mut run| {
            run.take_log();
            run.merge(&snapshot).map(|()| run)
        });
        if let Err(e) = &self.run {
            self.failure.get_or_insert(format!("the run's state, merged back: {e}"));
        }
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

    /// The size of the run's state: its instance's Wasm memory, or its snapshot while parked.
    pub fn state_bytes(&self) -> usize {
        match (&self.run, &self.parked) {
            (_, Some(snapshot)) => snapshot.len(),
            (Ok(run), None) => run.memory_bytes(),
            (Err(_), None) => 0,
        }
    }

    /// Asks the merged instance for the plugin's report and writes its figures under
    /// `run_dir`.
    pub fn finish(self, run_dir: &Path) -> PluginEntry {
        debug_assert!(self.parked.is_none(), "unpark before the report");
        finish_plugin(self.plugin, self.run, self.failure, self.logs, run_dir)
    }
}
