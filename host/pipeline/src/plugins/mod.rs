//! The plugin stage: which plugins run with which sandbox limits ([`PluginOptions`], loaded into
//! a [`PluginSet`]), instances that get the detector's pixels before any data, and the one
//! snapshot → merge → report path every mode uses ([`merge::PluginMerge`]).

pub mod merge;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use larmon_report::ReplacedPlugin;
use larmon_runtime::{
    Limits, LoadedPlugin, PluginFailure, PluginRun, RunBudget, Runtime, printable,
};

use crate::error::{IoContext, PipelineError, Result};
use crate::streams::Stream;

/// Which plugins to run and their sandbox limits.
#[derive(Clone, Debug)]
pub struct PluginOptions {
    /// Components to add (a plugin of the same name as a bundled one replaces it).
    pub extra: Vec<PathBuf>,
    /// Directory of bundled plugins (default: [`default_plugin_dir`]).
    pub plugin_dir: Option<PathBuf>,
    /// Whether to load the bundled plugins at all (false: only `extra`, e.g. to try one plugin
    /// on its own with `larmon plugin test`).
    pub bundled: bool,
    /// Time limit of one plugin call.
    pub call_timeout: Duration,
    /// Time a plugin may spend in calls over one run.
    pub run_budget: Duration,
    /// Memory limit of one plugin instance, bytes.
    pub memory_bytes: usize,
    /// Cache of compiled plugins (default: [`default_cache_dir`]).
    pub cache_dir: Option<PathBuf>,
}

impl Default for PluginOptions {
    fn default() -> Self {
        Self {
            extra: Vec::new(),
            plugin_dir: None,
            bundled: true,
            call_timeout: Duration::from_secs(10),
            run_budget: Limits::default().run_budget,
            memory_bytes: 512 << 20,
            cache_dir: None,
        }
    }
}

/// The runtime and the loaded plugins of a run.
pub struct PluginSet {
    /// The sandbox (engine, limits, compiled-component cache).
    pub runtime: Arc<Runtime>,
    /// The plugins, bundled ones by file name then the extra ones.
    pub plugins: Vec<LoadedPlugin>,
    /// Plugin files that could not be loaded (a truncated file, a component of another world,
    /// a loop in `info()`, a bad name): (file, reason). Each run reports them as failed
    /// plugins and goes on with the others.
    pub unusable: Vec<Unusable>,
    /// Bundled plugins replaced by a `--plugin` of the same name (recorded in each report).
    pub replaced: Vec<ReplacedPlugin>,
}

impl PluginSet {
    /// A fresh time budget for each plugin, for one run (shared by its instances of the run).
    pub fn budgets(&self) -> Vec<Arc<RunBudget>> {
        self.plugins.iter().map(|_| RunBudget::new(self.runtime.limits().run_budget)).collect()
    }
}

impl PluginOptions {
    /// The runtime with these limits and the plugins loaded (compiled ones from the cache).
    pub fn load(&self) -> Result<PluginSet> {
        let limits = Limits {
            memory_bytes: self.memory_bytes,
            call_timeout: self.call_timeout,
            run_budget: self.run_budget,
            ..Limits::default()
        };
        let runtime = Runtime::new(limits, self.cache_dir.clone().or_else(default_cache_dir))?;
        let LoadedPlugins { plugins, unusable, replaced } = if self.bundled {
            load_plugins(&runtime, self.plugin_dir.as_deref(), &self.extra)?
        } else {
            load_components(&runtime, &[], &self.extra)?
        };
        Ok(PluginSet { runtime, plugins, unusable, replaced })
    }
}

/// The bundled plugins: $LARMON_PLUGIN_DIR, else the build's `target/wasm32-wasip2/plugin`
/// beside the running binary.
pub fn default_plugin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("LARMON_PLUGIN_DIR") {
        return Some(dir.into());
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.join("wasm32-wasip2/plugin"))
}

/// The cache of compiled plugins: $XDG_CACHE_HOME/larmon or ~/.cache/larmon.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("larmon"))
}

/// A plugin file that could not be loaded: (file name, reason).
pub type Unusable = (String, String);

/// What [`load_plugins`] found.
pub struct LoadedPlugins {
    /// The plugins that load, bundled ones by file name then the extra ones.
    pub plugins: Vec<LoadedPlugin>,
    /// Files that cannot be loaded, with the reason.
    pub unusable: Vec<Unusable>,
    /// Bundled plugins an extra one of the same name replaced.
    pub replaced: Vec<ReplacedPlugin>,
}

/// Loads the bundled plugins and the extra ones (an extra one replaces a bundled one of the
/// same name, and the replacement is recorded); files that cannot be loaded are returned beside
/// them with the reason, so one bad file never stops a run.
pub fn load_plugins(
    runtime: &Runtime,
    plugin_dir: Option<&Path>,
    extra: &[PathBuf],
) -> Result<LoadedPlugins> {
    let mut files: Vec<PathBuf> = Vec::new();
    let dir = plugin_dir.map(Path::to_path_buf).or_else(default_plugin_dir);
    if let Some(dir) = dir.filter(|d| d.is_dir()) {
        let mut bundled: Vec<PathBuf> = std::fs::read_dir(&dir)
            .at(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        bundled.sort();
        files.extend(bundled);
    }
    load_components(runtime, &files, extra)
}

/// Loads `files` (bundled) then `extra` (each replaces a loaded plugin of the same name).
fn load_components(
    runtime: &Runtime,
    files: &[PathBuf],
    extra: &[PathBuf],
) -> Result<LoadedPlugins> {
    let mut loaded: Vec<LoadedPlugin> = Vec::new();
    let mut unusable = Vec::new();
    let mut replaced = Vec::new();
    let mut bundled_count = 0;
    let paths: Vec<&PathBuf> = files.iter().chain(extra).collect();
    for (k, (path, outcome)) in paths.iter().zip(load_in_parallel(runtime, &paths)).enumerate() {
        if k == files.len() {
            bundled_count = loaded.len();
        }
        let plugin = match outcome {
            Ok(plugin) => plugin,
            Err(e) => {
                let file = path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                let reason = printable(&e.to_string()).into_owned();
                unusable.push((printable(&file).into_owned(), reason));
                continue;
            }
        };
        let explicit = k >= files.len();
        if let Some(i) = loaded.iter().position(|p| p.info().name == plugin.info().name) {
            if explicit {
                let bundled = std::mem::replace(&mut loaded[i], plugin);
                if i < bundled_count {
                    replaced.push(ReplacedPlugin {
                        name: bundled.info().name.clone(),
                        bundled_file: bundled.label().into(),
                        bundled_sha256: bundled.sha256().into(),
                        by_file: loaded[i].label().into(),
                    });
                }
            }
            continue;
        }
        loaded.push(plugin);
    }
    if loaded.is_empty() && unusable.is_empty() {
        return Err(PipelineError::NoPlugins);
    }
    Ok(LoadedPlugins { plugins: loaded, unusable, replaced })
}

/// Loads the components on every core (rayon keeps each outcome at its file's place). Each
/// load reads and hashes the file, maps the compiled component from the cache (or compiles it)
/// and asks the instantiated plugin for its `info()`: about 13 ms per bundled plugin here, so
/// one after the other the 14 took the first 0.2 s of every run with one core idle.
fn load_in_parallel(
    runtime: &Runtime,
    paths: &[&PathBuf],
) -> Vec<std::result::Result<LoadedPlugin, larmon_runtime::RuntimeError>> {
    use rayon::prelude::*;
    paths.par_iter().with_max_len(1).map(|path| runtime.load_file(path)).collect()
}

/// Rows of the `pixels` stream per batch: the 2x2's 337 k pixels in one batch were an 18 MB
/// IPC buffer inside every plugin that draws pixels (Wasm memory never shrinks).
pub const PIXEL_BATCH_ROWS: usize = 1 << 15;

/// Schema metadata of every `pixels` batch: how many rows all of them hold, so that the SDK
/// reserves its pixel list once (grown batch by batch it doubled, and Wasm memory keeps the
/// high-water mark: the 2x2's pixel index took 23 MB of every pixel-drawing instance, not 11).
pub const PIXELS_TOTAL_ROWS: &str = "larmon.total_rows";

/// A plugin instance with its configuration, given the detector's pixels before any data, in
/// batches of [`PIXEL_BATCH_ROWS`] (every instance gets them: per-file ones and those that
/// only merge).
pub fn open_instance(
    plugin: &LoadedPlugin,
    runtime: &Runtime,
    config: &str,
    pixels: &RecordBatch,
    budget: &Arc<RunBudget>,
) -> Result<PluginRun, PluginFailure> {
    let mut instance = plugin.open_with_budget(runtime, config, budget.clone())?;
    let total = pixels.num_rows();
    let mut metadata = pixels.schema().metadata().clone();
    metadata.insert(PIXELS_TOTAL_ROWS.to_owned(), total.to_string());
    let schema = Arc::new(pixels.schema().as_ref().clone().with_metadata(metadata));
    for start in (0..total).step_by(PIXEL_BATCH_ROWS) {
        let rows = PIXEL_BATCH_ROWS.min(total - start);
        let batch = pixels.slice(start, rows).with_schema(schema.clone());
        let batch = batch.map_err(|e| PluginFailure::Host(format!("pixels: {e}")))?;
        instance.consume(Stream::Pixels.name(), &batch)?;
    }
    Ok(instance)
}
