//! The plugin runtime: WebAssembly components of the `larmon:plugin` world (`wit/plugin.wit`)
//! run sandboxed inside the host.
//!
//! - one [`Runtime`] (one wasmtime `Engine`) per process, an epoch ticker thread for CPU
//!   deadlines, and an on-disk cache of compiled components keyed by the component's SHA-256
//!   and the engine's compatibility hash;
//! - per plugin a [`LoadedPlugin`] (type-checked against the world once, `info()` read);
//! - per run a [`PluginRun`]: its own `Store` with one memory cap over all its memories and
//!   tables, a time limit per call that also covers time blocked in host calls (calls are
//!   async: wasm yields at every epoch tick and the call's timeout cancels it, sleeping or not),
//!   a time budget per plugin over the whole run ([`RunBudget`]), no filesystem, network or
//!   environment (WASI with nothing granted), stdout/stderr and `host.log` into a bounded log,
//!   and rules on the report (size of everything, number of figures, figure file names). A
//!   trap stops that run only: it is recorded with a reason and every later call returns it.

mod plugin_run;
mod report_rules;
mod sandbox;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store};

pub use plugin_run::{Check, CheckStatus, Figure, Metric, PluginFailure, PluginReport, PluginRun};
pub use report_rules::{is_plugin_name, printable};
pub use sandbox::RunBudget;

/// The plugin world's types and calls, generated from `wit/plugin.wit` (their docs are the WIT's;
/// the generator leaves some items undocumented).
#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        world: "dqm-plugin",
        path: "../../wit",
        exports: { default: async },
    });
}

pub use bindings::exports::larmon::plugin::plugin::PluginInfo;
pub use bindings::larmon::plugin::types::StreamRequest;

/// Resource limits applied to every plugin call.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Memory of one plugin instance, bytes: all its linear memories and tables together.
    pub memory_bytes: usize,
    /// Time of one call into a plugin (in wasm and in the host calls it makes).
    pub call_timeout: Duration,
    /// Time a plugin may spend in calls over a whole run (all its instances of the run).
    pub run_budget: Duration,
    /// Size of one report (every text: SVGs, plotted data, names, units, messages), bytes.
    pub max_report_bytes: usize,
    /// Figures in one report.
    pub max_figures: usize,
    /// Captured log (stdout, stderr, host.log) per plugin run, bytes each.
    pub max_log_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            call_timeout: Duration::from_secs(10),
            run_budget: Duration::from_secs(1800),
            max_report_bytes: 32 << 20,
            max_figures: 100,
            max_log_bytes: 64 << 10,
        }
    }
}

/// Why a plugin could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine could not be set up.
    #[error("wasm engine: {0}")]
    Engine(String),
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not a valid component of the larmon plugin world.
    #[error("{plugin}: not a larmon plugin component: {reason}")]
    Invalid {
        /// The plugin (file name).
        plugin: String,
        /// Why.
        reason: String,
    },
}

/// The tick of the epoch clock that enforces CPU deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine, the linker and the compiled-component cache.
pub struct Runtime {
    engine: Engine,
    linker: Linker<plugin_run::HostState>,
    cache_dir: Option<PathBuf>,
    limits: Limits,
}

/// How a component came to be compiled.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum CompileSource {
    /// Loaded from the on-disk cache.
    Cache,
    /// Compiled now (and written to the cache if there is one).
    Compiled,
}

/// A plugin component, compiled and type-checked.
pub struct LoadedPlugin {
    pre: bindings::DqmPluginPre<plugin_run::HostState>,
    info: PluginInfo,
    label: String,
    sha256: String,
    source: CompileSource,
    load_time: Duration,
}

impl Runtime {
    /// Sets up the engine (epoch interruption on) and, if `cache_dir` is given, the cache.
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Result<Arc<Self>, RuntimeError> {
        let mut config = Config::new();
        config.epoch_interruption(true).wasm_component_model(true);
        // Memory is reserved lazily: an instance's address-space reservation is not RSS; what
        // it touches is bounded by the limiter (sandbox.rs).
        // `LARMON_WASM_PERFMAP=1 perf record …` names plugin functions in perf profiles.
        if std::env::var_os("LARMON_WASM_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("larmon-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        bindings::DqmPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir)
                .map_err(|source| RuntimeError::Io { path: dir.clone(), source })?;
        }
        Ok(Arc::new(Self { engine, linker, cache_dir, limits }))
    }

    /// The limits every run gets.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Loads a component from a file.
    pub fn load_file(&self, path: &Path) -> Result<LoadedPlugin, RuntimeError> {
        let wasm =
            std::fs::read(path).map_err(|source| RuntimeError::Io { path: path.into(), source })?;
        let label = path
            .file_name()
            .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
        self.load(&wasm, &label)
    }

    /// Compiles (or takes from the cache) and type-checks a component, and reads its `info()`.
    pub fn load(&self, wasm: &[u8], label: &str) -> Result<LoadedPlugin, RuntimeError> {
        let started = Instant::now();
        let invalid = |reason: String| RuntimeError::Invalid { plugin: label.into(), reason };
        let sha256: String = Sha256::digest(wasm).iter().map(|b| format!("{b:02x}")).collect();
        let (component, source) = self.compile(wasm, &sha256).map_err(invalid)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(bindings::DqmPluginPre::new)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let budget = RunBudget::new(self.limits.run_budget);
        let mut run = PluginRun::start(self, &pre, label, budget)
            .map_err(|e| invalid(format!("instantiating: {e}")))?;
        let info = run.info().map_err(|e| invalid(format!("info(): {e}")))?;
        if !is_plugin_name(&info.name) {
            return Err(invalid(format!(
                "its name {} is not a plugin name (1-64 letters, digits, '-', '_' or '.', \
                 starting with a letter or digit)",
                printable(&format!("{:?}", info.name))
            )));
        }
        Ok(LoadedPlugin {
            pre,
            info,
            label: label.into(),
            sha256,
            source,
            load_time: started.elapsed(),
        })
    }

    fn compile(&self, wasm: &[u8], sha256: &str) -> Result<(Component, CompileSource), String> {
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, wasm)
                .map(|c| (c, CompileSource::Compiled))
                .map_err(|e| format!("{e:#}"));
        };
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut hasher);
        let path = dir.join(format!("{sha256}-{:016x}.cwasm", hasher.finish()));
        if path.exists() {
            // SAFETY: the file was written by this host from `Engine::precompile_component`
            // under a key that includes the engine's compatibility hash; wasmtime rejects blobs
            // of other versions with an error.
            if let Ok(component) = unsafe { Component::deserialize_file(&self.engine, &path) } {
                return Ok((component, CompileSource::Cache));
            }
        }
        let compiled = self.engine.precompile_component(wasm).map_err(|e| format!("{e:#}"))?;
        // A temporary name of this process and this write: components are loaded in parallel.
        static WRITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let write = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = path.with_extension(format!("tmp{}-{write}", std::process::id()));
        if std::fs::write(&temp, &compiled).and_then(|()| std::fs::rename(&temp, &path)).is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        // SAFETY: `compiled` was just produced by this engine.
        let component = unsafe { Component::deserialize(&self.engine, &compiled) }
            .map_err(|e| format!("{e:#}"))?;
        Ok((component, CompileSource::Compiled))
    }
}

impl LoadedPlugin {
    /// What the plugin says it is and consumes.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }
    /// Whether the plugin asks for `stream` (what [`PluginRun::wants`] says of an instance).
    pub fn wants(&self, stream: &str) -> bool {
        self.info.consumes.iter().any(|r| r.stream == stream)
    }
    /// The name it was loaded under (file name).
    pub fn label(&self) -> &str {
        &self.label
    }
    /// SHA-256 of the component bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// Whether it came from the cache.
    pub fn compile_source(&self) -> &CompileSource {
        &self.source
    }
    /// Time to load it (compile or deserialize, type-check, `info()`).
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// Starts a run: a fresh sandboxed instance opened with `config_json`, with a budget of
    /// its own.
    pub fn open(&self, runtime: &Runtime, config_json: &str) -> Result<PluginRun, PluginFailure> {
        self.open_with_budget(runtime, config_json, RunBudget::new(runtime.limits.run_budget))
    }

    /// Starts a run charging `budget` (shared by the plugin's instances of one run).
    pub fn open_with_budget(
        &self,
        runtime: &Runtime,
        config_json: &str,
        budget: Arc<RunBudget>,
    ) -> Result<PluginRun, PluginFailure> {
        let mut run = PluginRun::start(runtime, &self.pre, &self.label, budget)?;
        run.open(config_json, &self.info)?;
        Ok(run)
    }
}

/// Creates a store for one run.
fn new_store(runtime: &Runtime, state: plugin_run::HostState) -> Store<plugin_run::HostState> {
    let mut store = Store::new(&runtime.engine, state);
    store.limiter(|s| &mut s.limiter);
    store
}
