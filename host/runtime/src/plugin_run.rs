//! One sandboxed plugin instance for one run: its store, limits and log; batches in, report out.
//! A trap (CPU deadline, memory cap, panic, forbidden operation) ends the run with a reason;
//! every later call returns that reason without entering the plugin again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::ipc::writer::StreamWriter;
use serde::Serialize;
use wasmtime::component::{ResourceAny, ResourceTable};
use wasmtime::{Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::larmon::plugin::host::{Host, Level};
use crate::bindings::larmon::plugin::types as wit;
use crate::bindings::{DqmPlugin, DqmPluginPre};
use crate::report_rules::checked_report;
use crate::sandbox::{BoundedLog, RunBudget, TotalLimiter};
use crate::{Limits, PluginInfo, Runtime, new_store};

/// The largest IPC buffer an instance keeps between calls (a packets batch of 32 k rows is
/// well under it).
const KEPT_IPC_BYTES: usize = 4 << 20;

/// Store data of one run.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: TotalLimiter,
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

/// A log as plugins' users read it: `host.log` lines, a count of the dropped ones, then stdout
/// and stderr line by line (each with a count of dropped bytes).
fn log_lines(
    mut lines: Vec<String>,
    dropped_lines: usize,
    pipes: [(&str, (Vec<u8>, u64)); 2],
) -> Vec<String> {
    if dropped_lines > 0 {
        lines.push(format!("({dropped_lines} log lines dropped: log limit reached)"));
    }
    for (name, (bytes, dropped)) in pipes {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        lines.extend(text.lines().map(|l| format!("{name}: {l}")));
        if dropped > 0 {
            lines.push(format!("({dropped} bytes of {name} dropped: log limit reached)"));
        }
    }
    lines
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
    /// The call ran longer than the time limit of one call (time in wasm and in the host
    /// calls it made, e.g. a sleep).
    #[error("stopped in {call}: ran longer than the time limit of {seconds:.1} s per call")]
    CpuLimit {
        /// The call.
        call: &'static str,
        /// The limit, seconds.
        seconds: f64,
    },
    /// The plugin used up its time budget for the run.
    #[error("stopped in {call}: used up its time budget of {seconds:.1} s for the run")]
    BudgetLimit {
        /// The call.
        call: &'static str,
        /// The budget, seconds.
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
    /// The report breaks a rule other than size (too many figures, …).
    #[error("report refused: {0}")]
    ReportRule(String),
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

/// Bytes per MiB, for the memory log.
const MIB: f64 = (1 << 20) as f64;

/// Runs one call into the plugin: checks the recorded failure, bounds the call by the time
/// limit and the run budget (wall time: wasm yields every epoch tick, so a plugin looping in
/// wasm and one blocked in a host call such as a sleep are both stopped), then records the
/// outcome. A macro rather than a method because the call's future borrows the store.
macro_rules! guarded_call {
    ($run:expr, $what:expr, |$store:ident, $plugin:ident, $instance:ident| $body:expr) => {{
        let run: &mut PluginRun = $run;
        match run.begin_call($what) {
            Err(failure) => Err(failure),
            Ok(timeout) => {
                let started = Instant::now();
                let outcome = {
                    let $store = &mut run.store;
                    let $plugin = &run.bindings;
                    let $instance = run.instance;
                    // The timer is made inside the executor (it needs its time driver).
                    run.executor.block_on(async { tokio::time::timeout(timeout, $body).await })
                };
                run.end_call($what, started.elapsed(), outcome.ok())
            }
        }
    }};
}

/// One plugin instance for one run.
pub struct PluginRun {
    label: String,
    store: Store<HostState>,
    bindings: DqmPlugin,
    instance: Option<ResourceAny>,
    failure: Option<PluginFailure>,
    limits: Limits,
    budget: Arc<RunBudget>,
    /// Whether the running call's deadline is the run budget's (not the per-call limit's).
    budget_bound: bool,
    /// Memory the instance had grown to when the running call began.
    memory_at_call: usize,
    executor: tokio::runtime::Runtime,
    requested: BTreeMap<String, Vec<String>>,
    stdout: BoundedLog,
    stderr: BoundedLog,
    /// The IPC encoding of the batch being handed over, reused from call to call (a fresh
    /// buffer per batch cost a third of the transport time in page faults and regrowth).
    ipc: Vec<u8>,
}

impl PluginRun {
    pub(crate) fn start(
        runtime: &Runtime,
        pre: &DqmPluginPre<HostState>,
        label: &str,
        budget: Arc<RunBudget>,
    ) -> Result<Self, PluginFailure> {
        let limits = runtime.limits().clone();
        let stdout = BoundedLog::new(limits.max_log_bytes);
        let stderr = BoundedLog::new(limits.max_log_bytes);
        // Nothing is granted: no preopened directories, no environment, no arguments, no
        // network (all addresses denied by default); stdin is closed.
        let wasi = WasiCtxBuilder::new().stdout(stdout.clone()).stderr(stderr.clone()).build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: TotalLimiter::new(limits.memory_bytes),
            log: Vec::new(),
            log_bytes: 0,
            log_dropped: 0,
            max_log_bytes: limits.max_log_bytes,
        };
        let mut store = new_store(runtime, state);
        // Wasm yields to the executor at every epoch tick, so the call's timeout is checked
        // while it runs; host calls (WASI sleep, poll) are futures the timeout cancels too.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let executor = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| PluginFailure::Host(format!("plugin executor: {e}")))?;
        let timeout = limits.call_timeout.min(budget.remaining());
        let started = Instant::now();
        let instantiated = executor.block_on(async {
            tokio::time::timeout(timeout, pre.instantiate_async(&mut store)).await
        });
        budget.charge(started.elapsed());
        let bindings = match instantiated {
            Ok(Ok(bindings)) => bindings,
            Ok(Err(e)) => {
                let text = format!("{e:#}");
                return Err(if text.contains("memory limit") {
                    PluginFailure::MemoryLimit {
                        call: "instantiate",
                        mib: limits.memory_bytes >> 20,
                    }
                } else {
                    PluginFailure::Host(text)
                });
            }
            Err(_) => {
                return Err(PluginFailure::CpuLimit {
                    call: "instantiate",
                    seconds: timeout.as_secs_f64(),
                });
            }
        };
        Ok(Self {
            label: label.into(),
            store,
            bindings,
            instance: None,
            failure: None,
            limits,
            budget,
            budget_bound: false,
            memory_at_call: 0,
            executor,
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

    /// The captured log: `host.log` lines, then stdout and stderr (each bounded; what was
    /// dropped is counted on a last line).
    pub fn log(&self) -> Vec<String> {
        let state = self.store.data();
        let pipes = [("stdout", self.stdout.contents()), ("stderr", self.stderr.contents())];
        log_lines(state.log.clone(), state.log_dropped, pipes)
    }

    /// The captured log as [`PluginRun::log`] gives it, removed from the instance: a later call
    /// gives only what came after (the log limit still counts what was taken).
    pub fn take_log(&mut self) -> Vec<String> {
        let pipes = [("stdout", self.stdout.take()), ("stderr", self.stderr.take())];
        let state = self.store.data_mut();
        let dropped = std::mem::take(&mut state.log_dropped);
        log_lines(std::mem::take(&mut state.log), dropped, pipes)
    }

    /// Bytes of Wasm memory (linear memories and tables) the instance has grown to.
    pub fn memory_bytes(&self) -> usize {
        self.store.data().limiter.used_bytes()
    }

    /// Time this plugin has spent in calls during the run (all its instances).
    pub fn budget(&self) -> &Arc<RunBudget> {
        &self.budget
    }

    /// Before a call: the recorded failure, or the call's timeout.
    fn begin_call(&mut self, what: &'static str) -> Result<Duration, PluginFailure> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        let remaining = self.budget.remaining();
        if remaining.is_zero() {
            let failure = PluginFailure::BudgetLimit {
                call: what,
                seconds: self.budget.limit().as_secs_f64(),
            };
            self.failure = Some(failure.clone());
            return Err(failure);
        }
        self.budget_bound = remaining < self.limits.call_timeout;
        self.memory_at_call = self.memory_bytes();
        self.store.set_epoch_deadline(1);
        Ok(remaining.min(self.limits.call_timeout))
    }

    /// After a call: charges the budget and records a failure (`None`: the call timed out).
    fn end_call<R>(
        &mut self,
        what: &'static str,
        elapsed: Duration,
        outcome: Option<wasmtime::Result<Result<R, String>>>,
    ) -> Result<R, PluginFailure> {
        self.budget.charge(elapsed);
        let memory = self.memory_bytes();
        if memory > self.memory_at_call {
            // What each call costs in memory the instance keeps (Wasm memory never shrinks):
            // `RUST_LOG=larmon::plugin_memory=debug larmon run …` (docs/performance.md).
            tracing::debug!(
                target: "larmon::plugin_memory",
                plugin = %self.label,
                call = what,
                "memory {:.1} -> {:.1} MiB",
                self.memory_at_call as f64 / MIB,
                memory as f64 / MIB,
            );
        }
        let failure = match outcome {
            Some(Ok(Ok(value))) => return Ok(value),
            Some(Ok(Err(message))) => PluginFailure::Reported { call: what, message },
            Some(Err(trap)) => self.describe_trap(what, &trap),
            None if self.budget_bound => PluginFailure::BudgetLimit {
                call: what,
                seconds: self.budget.limit().as_secs_f64(),
            },
            None => PluginFailure::CpuLimit {
                call: what,
                seconds: self.limits.call_timeout.as_secs_f64(),
            },
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
        let stderr = String::from_utf8_lossy(&self.stderr.contents().0).into_owned();
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
        let cause = match error.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => "stack overflow".to_string(),
            // A Rust guest keeps its own stack in linear memory: overflowing it runs below
            // address 0, which wasm reports as an out-of-bounds access.
            Some(Trap::MemoryOutOfBounds) if panic.is_empty() => {
                "out of bounds memory access (also how an overflow of the plugin's own stack, \
                 e.g. runaway recursion, shows)"
                    .to_string()
            }
            _ => {
                let cause = error.root_cause().to_string();
                cause.lines().next().unwrap_or("trap").to_string()
            }
        };
        PluginFailure::Trap { call: what, cause, panic }
    }

    pub(crate) fn info(&mut self) -> Result<PluginInfo, PluginFailure> {
        guarded_call!(self, "info", |store, plugin, _instance| async {
            plugin.larmon_plugin_plugin().call_info(store).await.map(Ok::<_, String>)
        })
    }

    pub(crate) fn open(
        &mut self,
        config_json: &str,
        info: &PluginInfo,
    ) -> Result<(), PluginFailure> {
        let instance = guarded_call!(self, "open", |store, plugin, _instance| {
            plugin.larmon_plugin_plugin().instance().call_open(store, config_json)
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

    fn opened(&self) -> Result<ResourceAny, PluginFailure> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        self.instance.ok_or_else(|| PluginFailure::Host("the instance was never opened".into()))
    }

    /// Hands a batch of `stream` to the plugin, projected on the columns it asked for; streams
    /// it did not ask for are skipped.
    pub fn consume(&mut self, stream: &str, batch: &RecordBatch) -> Result<(), PluginFailure> {
        let Some(columns) = self.requested.get(stream) else { return Ok(()) };
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let instance = self.opened()?;
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
        let result = guarded_call!(self, "consume", |store, plugin, _instance| {
            plugin.larmon_plugin_plugin().instance().call_consume(store, instance, stream, &ipc)
        });
        // Kept for the next batch, unless it held something far larger than a batch (the
        // detector's pixels once per instance: 18 MB for the 2x2, held to the end otherwise).
        if ipc.capacity() <= KEPT_IPC_BYTES {
            self.ipc = ipc;
        }
        result
    }

    /// The instance's state as bytes.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, PluginFailure> {
        let instance = self.opened()?;
        guarded_call!(self, "snapshot", |store, plugin, _instance| {
            plugin.larmon_plugin_plugin().instance().call_snapshot(store, instance)
        })
    }

    /// Adds another instance's snapshot.
    pub fn merge(&mut self, snapshot: &[u8]) -> Result<(), PluginFailure> {
        let instance = self.opened()?;
        guarded_call!(self, "merge", |store, plugin, _instance| {
            plugin.larmon_plugin_plugin().instance().call_merge(store, instance, snapshot)
        })
    }

    /// The report, checked against the report rules (size of everything, number of figures,
    /// figure names; docs/robustness.md).
    pub fn report(&mut self) -> Result<PluginReport, PluginFailure> {
        let instance = self.opened()?;
        let report = guarded_call!(self, "report", |store, plugin, _instance| {
            plugin.larmon_plugin_plugin().instance().call_report(store, instance)
        })?;
        match checked_report(report, &self.limits) {
            Ok((report, notes)) => {
                for note in notes {
                    self.store.data_mut().push_log(format!("host: {note}"));
                }
                Ok(report)
            }
            Err(failure) => {
                self.failure = Some(failure.clone());
                Err(failure)
            }
        }
    }
}

/// The `types` interface has no functions; its (empty) host trait is implemented for the state.
impl wit::Host for HostState {}
