//! One sandboxed plugin instance for one run: its store, limits and log; batches in, report out.
//! A trap (CPU deadline, memory cap, panic, forbidden operation) ends the run with a reason;
//! every later call returns that reason without entering the plugin again.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use arrow::ipc::writer::StreamWriter;
use serde::Serialize;
use wasmtime::component::{ResourceAny, ResourceTable};
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::larmon::plugin::host::{Host, Level};
use crate::bindings::larmon::plugin::types as wit;
use crate::bindings::{DqmPlugin, DqmPluginPre};
use crate::{Limits, PluginInfo, Runtime, deadline_ticks, new_store};

/// Store data of one run.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    log: Vec<String>,
    log_bytes: usize,
    log_dropped: usize,
    max_log_bytes: usize,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl HostState {
    fn push_log(&mut self, line: String) {
        if self.log_bytes + line.len() > self.max_log_bytes {
            self.log_dropped += 1;
        } else {
            self.log_bytes += line.len();
            self.log.push(line);
        }
    }
}

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.push_log(format!("{level}: {message}"));
    }
}

/// A figure of a report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figure {
    /// File-name stem.
    pub name: String,
    /// Title.
    pub title: String,
    /// The SVG.
    #[serde(skip)]
    pub svg: String,
    /// The plotted data (JSON text).
    #[serde(skip)]
    pub data_json: String,
}

/// The metrics, checks and their outcome are report.json's own types: converted once, from the
/// plugin world's, here.
pub use larmon_report::{Check, Metric, Status as CheckStatus};

/// Why a plugin stopped: its own error, a limit of the sandbox, a trap, or the host's side.
/// Once a run instance has failed, every later call returns the same failure.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PluginFailure {
    /// The plugin returned an error from a call.
    #[error("{call} failed: {message}")]
    Reported {
        /// The call (info, open, consume, snapshot, merge, report).
        call: &'static str,
        /// The plugin's message.
        message: String,
    },
    /// The call ran longer than the CPU limit.
    #[error("stopped in {call}: ran longer than the CPU limit of {seconds:.1} s per call")]
    CpuLimit {
        /// The call.
        call: &'static str,
        /// The limit, seconds.
        seconds: f64,
    },
    /// The plugin needed more memory than allowed.
    #[error("stopped in {call}: needed more than the memory limit of {mib} MiB")]
    MemoryLimit {
        /// The call.
        call: &'static str,
        /// The limit, MiB.
        mib: usize,
    },
    /// The report is larger than allowed.
    #[error("report of {mib:.1} MiB exceeds the limit of {limit_mib} MiB")]
    ReportLimit {
        /// The report's size, MiB.
        mib: f64,
        /// The limit, MiB.
        limit_mib: usize,
    },
    /// The plugin trapped (a panic, an out-of-bounds access, …).
    #[error("trapped in {call}: {cause}{panic}")]
    Trap {
        /// The call.
        call: &'static str,
        /// The trap's root cause.
        cause: String,
        /// `: panicked: MESSAGE (at FILE:LINE:COL)` when a Rust guest printed a panic.
        panic: String,
    },
    /// The host could not instantiate the plugin or hand it data (or a caller's own reason,
    /// e.g. a snapshot that could not be read).
    #[error("{0}")]
    Host(String),
}

/// What a plugin reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PluginReport {
    /// Figures.
    pub figures: Vec<Figure>,
    /// Metrics.
    pub metrics: Vec<Metric>,
    /// Checks.
    pub checks: Vec<Check>,
    /// Structured findings by name (JSON values; text the plugin sent that is not JSON is kept
    /// as a JSON string).
    pub results: BTreeMap<String, serde_json::Value>,
}

impl From<wit::Report> for PluginReport {
    fn from(r: wit::Report) -> Self {
        Self {
            figures: r
                .figures
                .into_iter()
                .map(|f| Figure {
                    name: f.name,
                    title: f.title,
                    svg: f.svg,
                    data_json: f.data_json,
                })
                .collect(),
            metrics: r
                .metrics
                .into_iter()
                .map(|m| Metric { name: m.name, value: m.value, error: m.error, unit: m.unit })
                .collect(),
            checks: r
                .checks
                .into_iter()
                .map(|c| Check {
                    name: c.name,
                    status: match c.status {
                        wit::CheckStatus::Ok => CheckStatus::Ok,
                        wit::CheckStatus::Warning => CheckStatus::Warning,
                        wit::CheckStatus::Error => CheckStatus::Error,
                    },
                    message: c.message,
                })
                .collect(),
            results: r
                .results
                .into_iter()
                .map(|n| {
                    let value =
                        serde_json::from_str(&n.json).unwrap_or(serde_json::Value::String(n.json));
                    (n.name, value)
                })
                .collect(),
        }
    }
}

/// One plugin instance for one run.
pub struct PluginRun {
    label: String,
    store: Store<HostState>,
    bindings: DqmPlugin,
    instance: Option<ResourceAny>,
    failure: Option<PluginFailure>,
    limits: Limits,
    requested: BTreeMap<String, Vec<String>>,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    /// The IPC encoding of the batch being handed over, reused from call to call (a fresh
    /// buffer per batch cost a third of the transport time in page faults and regrowth).
    ipc: Vec<u8>,
}

impl PluginRun {
    pub(crate) fn start(
        runtime: &Runtime,
        pre: &DqmPluginPre<HostState>,
        label: &str,
    ) -> Result<Self, PluginFailure> {
        let limits = runtime.limits().clone();
        let stdout = MemoryOutputPipe::new(limits.max_log_bytes);
        let stderr = MemoryOutputPipe::new(limits.max_log_bytes);
        // Nothing is granted: no preopened directories, no environment, no arguments, no
        // network (all addresses denied by default); stdin is closed.
        let wasi = WasiCtxBuilder::new().stdout(stdout.clone()).stderr(stderr.clone()).build();
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .instances(64)
            .tables(64)
            .memories(8)
            .trap_on_grow_failure(true)
            .build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limits: store_limits,
            log: Vec::new(),
            log_bytes: 0,
            log_dropped: 0,
            max_log_bytes: limits.max_log_bytes,
        };
        let mut store = new_store(runtime, state);
        store.set_epoch_deadline(deadline_ticks(&limits));
        let bindings =
            pre.instantiate(&mut store).map_err(|e| PluginFailure::Host(format!("{e:#}")))?;
        Ok(Self {
            label: label.into(),
            store,
            bindings,
            instance: None,
            failure: None,
            limits,
            requested: BTreeMap::new(),
            stdout,
            stderr,
            ipc: Vec::new(),
        })
    }

    /// The plugin (file) name.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Why the run stopped, if it did.
    pub fn failure(&self) -> Option<&PluginFailure> {
        self.failure.as_ref()
    }

    /// The captured log: `host.log` lines, then stdout and stderr (each bounded).
    pub fn log(&self) -> Vec<String> {
        let state = self.store.data();
        let mut lines = state.log.clone();
        if state.log_dropped > 0 {
            lines.push(format!("({} log lines dropped: log limit reached)", state.log_dropped));
        }
        for (name, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let text = String::from_utf8_lossy(&pipe.contents()).into_owned();
            lines.extend(text.lines().map(|l| format!("{name}: {l}")));
        }
        lines
    }

    /// Runs one call into the plugin under the deadline, turning traps into a recorded failure.
    fn call<R>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(
            &mut Store<HostState>,
            &DqmPlugin,
            Option<ResourceAny>,
        ) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, PluginFailure> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        self.store.set_epoch_deadline(deadline_ticks(&self.limits));
        let result = f(&mut self.store, &self.bindings, self.instance);
        let failure = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(message)) => PluginFailure::Reported { call: what, message },
            Err(trap) => self.describe_trap(what, &trap),
        };
        self.failure = Some(failure.clone());
        Err(failure)
    }

    fn describe_trap(&self, what: &'static str, error: &wasmtime::Error) -> PluginFailure {
        let text = format!("{error:#}");
        if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            return PluginFailure::CpuLimit {
                call: what,
                seconds: self.limits.call_timeout.as_secs_f64(),
            };
        }
        if text.contains("forcing trap when growing memory") || text.contains("memory limit") {
            return PluginFailure::MemoryLimit { call: what, mib: self.limits.memory_bytes >> 20 };
        }
        // A Rust guest prints "thread '…' panicked at FILE:LINE:COL:" and the message on the
        // next line to stderr before trapping.
        let stderr = String::from_utf8_lossy(&self.stderr.contents()).into_owned();
        let lines: Vec<&str> = stderr.lines().collect();
        let panic = lines
            .iter()
            .position(|l| l.contains("panicked at"))
            .map(|i| {
                let location =
                    lines[i].split("panicked at ").nth(1).unwrap_or("").trim_end_matches(':');
                let message = lines.get(i + 1).copied().unwrap_or("");
                format!(": panicked: {message} (at {location})")
            })
            .unwrap_or_default();
        let cause = error.root_cause().to_string();
        let cause = cause.lines().next().unwrap_or("trap").to_string();
        PluginFailure::Trap { call: what, cause, panic }
    }

    pub(crate) fn info(&mut self) -> Result<PluginInfo, PluginFailure> {
        self.call("info", |store, b, _| b.larmon_plugin_plugin().call_info(store).map(Ok))
    }

    pub(crate) fn open(
        &mut self,
        config_json: &str,
        info: &PluginInfo,
    ) -> Result<(), PluginFailure> {
        let instance = self.call("open", |store, b, _| {
            b.larmon_plugin_plugin().instance().call_open(store, config_json)
        })?;
        self.instance = Some(instance);
        self.requested =
            info.consumes.iter().map(|r| (r.stream.clone(), r.columns.clone())).collect();
        Ok(())
    }

    /// Whether the plugin asked for `stream`.
    pub fn wants(&self, stream: &str) -> bool {
        self.requested.contains_key(stream)
    }

    /// Hands a batch of `stream` to the plugin, projected on the columns it asked for; streams
    /// it did not ask for are skipped.
    pub fn consume(&mut self, stream: &str, batch: &RecordBatch) -> Result<(), PluginFailure> {
        let Some(columns) = self.requested.get(stream) else { return Ok(()) };
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let schema = batch.schema();
        let indices: Vec<usize> = columns.iter().filter_map(|c| schema.index_of(c).ok()).collect();
        let projected = batch.project(&indices).map_err(|e| PluginFailure::Host(e.to_string()))?;
        let mut ipc = std::mem::take(&mut self.ipc);
        ipc.clear();
        {
            let mut writer = StreamWriter::try_new(&mut ipc, &projected.schema())
                .map_err(|e| PluginFailure::Host(e.to_string()))?;
            writer.write(&projected).map_err(|e| PluginFailure::Host(e.to_string()))?;
            writer.finish().map_err(|e| PluginFailure::Host(e.to_string()))?;
        }
        let result = self.call("consume", |store, b, instance| {
            let instance = instance.expect("opened");
            b.larmon_plugin_plugin().instance().call_consume(store, instance, stream, &ipc)
        });
        self.ipc = ipc;
        result
    }

    /// The instance's state as bytes.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, PluginFailure> {
        self.call("snapshot", |store, b, instance| {
            b.larmon_plugin_plugin().instance().call_snapshot(store, instance.expect("opened"))
        })
    }

    /// Adds another instance's snapshot.
    pub fn merge(&mut self, snapshot: &[u8]) -> Result<(), PluginFailure> {
        self.call("merge", |store, b, instance| {
            b.larmon_plugin_plugin().instance().call_merge(
                store,
                instance.expect("opened"),
                snapshot,
            )
        })
    }

    /// The report, checked against the size limit.
    pub fn report(&mut self) -> Result<PluginReport, PluginFailure> {
        let report = self.call("report", |store, b, instance| {
            b.larmon_plugin_plugin().instance().call_report(store, instance.expect("opened"))
        })?;
        let size: usize = report
            .figures
            .iter()
            .map(|f| f.svg.len() + f.data_json.len() + f.title.len())
            .sum::<usize>()
            + report.checks.iter().map(|c| c.message.len()).sum::<usize>()
            + report.results.iter().map(|r| r.name.len() + r.json.len()).sum::<usize>();
        if size > self.limits.max_report_bytes {
            let failure = PluginFailure::ReportLimit {
                mib: size as f64 / (1 << 20) as f64,
                limit_mib: self.limits.max_report_bytes >> 20,
            };
            self.failure = Some(failure.clone());
            return Err(failure);
        }
        Ok(report.into())
    }
}

/// The `types` interface has no functions; its (empty) host trait is implemented for the state.
impl wit::Host for HostState {}
