//! Realtime DQM of a DAQ output folder: new and growing files are read from where they were
//! left (never sampled), calibrated as continuous streams, fed to the plugins, grouped into
//! runs, and each changed run's report can be rewritten within seconds. The caller drives it
//! ([`DaqWatch::step`] when the folder may have changed, then [`DaqWatch::write_run_report`] for
//! each changed run); `larmon watch` wakes it with inotify and a polling fallback.
//!
//! Crash safety: after every chunk, a file's position, calibrator state and plugin snapshots
//! are written as one generation (`OUT/<run>/watch/file-NNNNNN/g<N>/`, fsync'd) and only then
//! named current in `watch.json` by an atomic rename. A restart (or `kill -9` at any moment)
//! resumes from the last named generation: nothing is processed twice, nothing is lost.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arrow::array::RecordBatch;
use larmon_calibrate::output::pixels_record_batch;
use larmon_calibrate::{Calibrator, CalibratorState};
use larmon_catalog::runs::{RunDatabase, System, run_label};
use larmon_ingest::arrow::packets_record_batch;
use larmon_ingest::channel_activity::ChannelActivity;
use larmon_ingest::light::channel_map::ChannelMap;
use larmon_ingest::light::{LightFile, is_light_file};
use larmon_ingest::read::{LarpixReader, ReadOptions, is_flow_file};
use larmon_report::PluginEntry;
use larmon_report::health::{HEALTH_FILE, WatchHealth};
use larmon_runtime::{LoadedPlugin, PluginFailure, PluginRun, RunBudget};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::config::LarmonConfig;
use crate::error::{IoContext, PipelineError, Result, error_text};
use crate::input::charge::{ChargeTrigger, RunCalibration, charge_triggers_of};
use crate::input::light::{LightStats, load_channel_map, process_light_file};
use crate::input::{add_host_stats, join_span, widen_by_timestamps};
use crate::modes::naming::run_name_of;
use crate::output::report::{RunTotals, WrittenReport, provenance, unusable_entry, write_report};
use crate::output::{safe_name, write_atomically};
use crate::plugins::merge::PluginMerge;
use crate::plugins::{PluginSet, open_instance};
use crate::streams::{Stream, calibrated_batches};

/// The default run pattern: the 2x2 charge DAQ's `binary-0050015-…` / `packet-0050015-…`
/// names (7 digits; a date is no run), the one `larmon meta` and `larmon run` use.
pub const DEFAULT_RUN_PATTERN: &str = larmon_catalog::metadata::DEFAULT_NAME_PATTERN;

/// The list of files HDF5 got stuck on (`OUT/stalled-files.json`): a watcher that had to give
/// up on one records it there before it ends, and skips it when restarted.
pub const STALLED_FILES: &str = "stalled-files.json";

/// Adds `file` to the stalled-file list of the output folder `out` (best effort: called just
/// before the process ends).
pub fn record_stalled_file(out: &Path, file: &Path) {
    let path = out.join(STALLED_FILES);
    let mut files = stalled_files(out);
    if !files.iter().any(|f| f == file) {
        files.push(file.to_path_buf());
        if let Ok(text) = serde_json::to_vec_pretty(&files) {
            let _ = write_atomically(&path, &text);
        }
    }
}

/// The files of the stalled-file list of `out`.
pub fn stalled_files(out: &Path) -> Vec<PathBuf> {
    std::fs::read(out.join(STALLED_FILES))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// What to watch and how.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// The folder the DAQ writes into (not recursive).
    pub dir: PathBuf,
    /// Output directory of the reports (`out/<run>/report.json`).
    pub out: PathBuf,
    /// Regular expression with a `run` group giving the run number of a file name.
    pub run_pattern: String,
    /// Light channel → detector map (JSON); default: the 2x2 map.
    pub light_channel_map: Option<PathBuf>,
    /// Flush a file's last events once it has not grown for this long.
    pub finish_after: Duration,
    /// The 2x2 run database: charge and light files grouped by global run. Without it, a
    /// light file joins the charge run its first event falls in.
    pub run_db: Option<PathBuf>,
    /// A run whose files have all been finished and idle this long is released from memory
    /// (its state stays in its checkpoints; it is loaded again if one of its files changes
    /// or its report is asked for), so memory does not grow with the weeks.
    pub forget_after: Duration,
}

/// Default of [`WatchOptions::forget_after`].
pub const DEFAULT_FORGET_AFTER: Duration = Duration::from_secs(3600);

impl WatchOptions {
    /// Checks what can be checked before anything is loaded: the folder exists and the run
    /// pattern compiles with a `run` group (which it returns).
    pub fn check(&self) -> Result<Regex> {
        if !self.dir.is_dir() {
            return Err(PipelineError::Watch(format!(
                "{}: not a directory (give the folder the DAQ writes into)",
                self.dir.display()
            )));
        }
        let pattern = Regex::new(&self.run_pattern).map_err(|e| {
            PipelineError::Watch(format!("--run-pattern {:?}: {e}", self.run_pattern))
        })?;
        if !pattern.capture_names().any(|n| n == Some("run")) {
            return Err(PipelineError::Watch(format!(
                "--run-pattern {:?} has no (?P<run>...) group",
                self.run_pattern
            )));
        }
        Ok(pattern)
    }

    /// Watching `dir` into `out` with every other option at its default.
    pub fn new(dir: PathBuf, out: PathBuf) -> Self {
        Self {
            dir,
            out,
            run_pattern: DEFAULT_RUN_PATTERN.into(),
            light_channel_map: None,
            finish_after: Duration::from_secs(30),
            run_db: None,
            forget_after: DEFAULT_FORGET_AFTER,
        }
    }
}

/// Something an operator should see, in the order it happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// A file was resumed from its checkpoint.
    Resumed {
        /// Its run.
        run: String,
        /// The file.
        file: PathBuf,
        /// Where reading goes on (messages or rows).
        position: u64,
        /// The checkpoint's generation.
        generation: u64,
    },
    /// A file could not be read (yet): it is retried on the next pass. Said once while the
    /// same error persists.
    WillRetry(String),
    /// Something was set aside and the watch goes on (a file skipped, a checkpoint not used).
    Skipped(String),
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Resumed { run, file, position, generation } => write!(
                f,
                "{run}: resuming {} at {position} (generation {generation})",
                file.display()
            ),
            Notice::WillRetry(text) => write!(f, "larmon: {text} (will retry)"),
            Notice::Skipped(text) => write!(f, "larmon: {text}"),
        }
    }
}

/// A plugin's latest snapshot of one file, or why there is none; `None` while no data has been
/// read from the file.
type Snapshot = Option<Result<Vec<u8>, PluginFailure>>;

/// What `watch.json` of a file records: the generation that is current.
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    /// The data file.
    file: PathBuf,
    /// Generation directory holding the state (g<N>/).
    generation: u64,
    /// Messages (raw) or rows (packet file) consumed.
    position: u64,
    /// Whether the stream was flushed (no pending events).
    finished: bool,
    /// Unix seconds of the first and last timestamp row.
    span: Option<(u64, u64)>,
    /// File size when last read.
    size: u64,
    /// Light files: what was read so far.
    #[serde(default)]
    light_stats: Option<LightStats>,
    /// ndlar_flow files: the statistics of their one pass.
    #[serde(default)]
    flow_stats: Option<serde_json::Value>,
}

/// The checkpoint folders of `run` under the output folder `out` (`<run>/watch/file-<index>/`):
/// each index with its checkpoint, `None` where `watch.json` is missing or unreadable.
fn run_checkpoints(out: &Path, run: &str) -> Vec<(usize, Option<Checkpoint>)> {
    let watch_dir = out.join(run).join("watch");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&watch_dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(index) = name.strip_prefix("file-").and_then(|n| n.parse::<usize>().ok()) else {
            continue;
        };
        let checkpoint: Option<Checkpoint> = std::fs::read(entry.path().join("watch.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        found.push((index, checkpoint));
    }
    found
}

/// The files of `run` a watcher writing into `out` has finished: read to the end it saw and
/// flushed, with their state checkpointed. Each with the size it had when it was last read,
/// so a caller can tell a file that grew since (which the watcher will read again).
/// `larmon daq` cleans a file from the DAQ buffer only once it is here at its current size.
pub fn finished_files(out: &Path, run: &str) -> Vec<(PathBuf, u64)> {
    run_checkpoints(out, run)
        .into_iter()
        .filter_map(|(_, checkpoint)| checkpoint.filter(|c| c.finished))
        .map(|c| (c.file, c.size))
        .collect()
}

/// One data file of a run, followed live.
struct LiveFile {
    path: PathBuf,
    run: String,
    index: usize,
    position: u64,
    finished: bool,
    span: Option<(u64, u64)>,
    generation: u64,
    size: u64,
    modified: Option<SystemTime>,
    last_growth: Instant,
    calibrator: Calibrator,
    /// Per plugin: the file's instance, or why it failed.
    instances: Vec<Result<PluginRun, PluginFailure>>,
    /// Per plugin: the latest snapshot (what the run report merges).
    snapshots: Vec<Snapshot>,
    /// Last open/read error, reported once while it persists.
    error: Option<String>,
    /// When reading it was last tried.
    last_attempt: Option<Instant>,
    /// A light-readout file (read once it stops growing, matched to the run's charge triggers)
    /// rather than a charge file.
    light: bool,
    /// Charge files: the triggers of their events, for light matching.
    triggers: Vec<ChargeTrigger>,
    /// Light files: what was read so far.
    light_stats: LightStats,
    /// An ndlar_flow output file (read whole once it stops growing: flow writes it at once).
    flow: bool,
    /// ndlar_flow files: the statistics of their one pass.
    flow_stats: Option<serde_json::Value>,
}

/// A light file whose run is decided once it stops growing: (size, mtime) last seen, since when.
struct PendingLight {
    path: PathBuf,
    size: u64,
    modified: Option<SystemTime>,
    since: Instant,
}

/// At most this many unfinished files are read at once (each holds one instance per plugin
/// until it is finished, ~10-30 MB each on the 2x2); others wait their turn. The 2x2 charge
/// DAQ writes one file at a time; light and flow files are read whole once idle.
const MAX_FILES_WITH_INSTANCES: usize = 3;

/// How often a file that keeps failing without changing is tried again.
const RETRY_UNCHANGED: Duration = Duration::from_secs(30);

/// Seconds of slack when a light file's first event is placed in a charge file's time span
/// (PACMAN times are whole seconds).
const LIGHT_TIME_SLACK_S: f64 = 2.0;

impl LiveFile {
    /// For files read whole once they stop growing (light, ndlar_flow): notes growth (which
    /// makes the file unfinished again) and says whether it has now been idle for
    /// `finish_after` and still needs reading (not finished, or its last read failed).
    fn idle_and_unread(&mut self, finish_after: Duration) -> bool {
        let Ok(meta) = std::fs::metadata(&self.path) else { return false };
        let modified = meta.modified().ok();
        if meta.len() != self.size || (modified != self.modified && self.modified.is_some()) {
            self.size = meta.len();
            self.modified = modified;
            self.last_growth = Instant::now();
            self.finished = false;
            return false;
        }
        self.modified = modified;
        self.last_growth.elapsed() >= finish_after && !(self.finished && self.error.is_none())
    }
}

/// A DAQ folder followed live.
pub struct DaqWatch {
    options: WatchOptions,
    pattern: Regex,
    calibration: RunCalibration,
    config: LarmonConfig,
    plugins: PluginSet,
    pixels: Arc<RecordBatch>,
    light_map: ChannelMap,
    run_db: Option<RunDatabase>,
    files: Vec<LiveFile>,
    /// Light files waiting to stop growing before their run is known (by time, no run DB).
    pending_light: Vec<PendingLight>,
    /// Runs whose report must be rewritten although nothing new was read: files resumed from a
    /// checkpoint whose report a killed watcher may not have written.
    stale_reports: Vec<String>,
    notices: Vec<Notice>,
    /// Per run, each plugin's time budget (shared by its instances of the run).
    budgets: HashMap<String, Vec<Arc<RunBudget>>>,
    /// Files that could not be added (size, mtime when tried): tried again once they change.
    unopenable: HashMap<PathBuf, (u64, Option<SystemTime>)>,
    /// Files HDF5 got stuck on in an earlier watch ([`STALLED_FILES`]): never opened again.
    stalled: Vec<PathBuf>,
    /// Files of runs released from memory: file -> (run, size, mtime) when released.
    forgotten: HashMap<PathBuf, (String, u64, Option<SystemTime>)>,
}

impl DaqWatch {
    /// Sets up the watch (nothing is read until [`DaqWatch::step`]).
    pub fn new(options: WatchOptions, config: LarmonConfig, plugins: PluginSet) -> Result<Self> {
        let pattern = options.check()?;
        let calibration = RunCalibration::new(config.detector.clone())?;
        let pixels = Arc::new(pixels_record_batch(&calibration.geometry));
        let light_map = load_channel_map(options.light_channel_map.as_deref(), &config.detector)?;
        let run_db = match &options.run_db {
            Some(path) => Some(
                RunDatabase::open(path)
                    .map_err(|e| PipelineError::Watch(format!("--run-db: {e}")))?,
            ),
            None => None,
        };
        std::fs::create_dir_all(&options.out).at(&options.out)?;
        // The list only grows when a watcher gives up and ends: read once, at the start.
        let stalled = stalled_files(&options.out);
        let notices = stalled
            .iter()
            .map(|file| {
                Notice::Skipped(format!(
                    "{}: skipped: HDF5 got stuck on it before (listed in {}; remove it from \
                     there to try again)",
                    file.display(),
                    options.out.join(STALLED_FILES).display()
                ))
            })
            .collect();
        Ok(Self {
            options,
            pattern,
            calibration,
            config,
            plugins,
            pixels,
            light_map,
            run_db,
            files: Vec::new(),
            pending_light: Vec::new(),
            stale_reports: Vec::new(),
            notices,
            budgets: HashMap::new(),
            unopenable: HashMap::new(),
            stalled,
            forgotten: HashMap::new(),
        })
    }

    /// The plugins' time budgets of a run.
    fn budgets_of(&mut self, run: &str) -> Vec<Arc<RunBudget>> {
        let plugins = &self.plugins;
        self.budgets.entry(run.to_string()).or_insert_with(|| plugins.budgets()).clone()
    }

    /// The options it runs with.
    pub fn options(&self) -> &WatchOptions {
        &self.options
    }

    /// How many plugins run.
    pub fn plugin_count(&self) -> usize {
        self.plugins.plugins.len()
    }

    /// Whether every file is finished (flushed) and readable.
    pub fn all_finished(&self) -> bool {
        // Light files still waiting for a run have had their chance once stable (no events).
        let finish_after = self.options.finish_after;
        self.files.iter().all(|f| f.finished && f.error.is_none())
            && self.pending_light.iter().all(|p| p.since.elapsed() >= finish_after)
    }

    /// What happened since the last call (resumed files, read errors being retried).
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// One pass: discover files, read what was appended, finish idle files. Returns the runs
    /// whose report must be rewritten.
    pub fn step(&mut self) -> Result<Vec<String>> {
        self.discover()?;
        let mut changed: Vec<String> = std::mem::take(&mut self.stale_reports);
        changed.dedup();
        let finish_after = self.options.finish_after;
        for i in 0..self.files.len() {
            // One file's trouble (unreadable data, a full disk for its checkpoint) is reported
            // and retried; the other files go on.
            match self.step_file(i, finish_after) {
                Ok(false) => {}
                Ok(true) => {
                    let run = self.files[i].run.clone();
                    if !changed.contains(&run) {
                        changed.push(run);
                    }
                }
                Err(e) => {
                    let file = &mut self.files[i];
                    let text = format!("{}: {}", file.path.display(), error_text(&e));
                    Self::retry_later(&mut self.notices, &mut file.error, text);
                }
            }
        }
        self.forget_idle_runs(&changed);
        Ok(changed)
    }

    /// The watcher's heartbeat after a pass: newest data seen, files open, unfinished and in
    /// error; `reports_unwritten` and `trouble` are what the caller could not do on the pass.
    pub fn health(&self, reports_unwritten: usize, trouble: Option<&str>) -> WatchHealth {
        let unix =
            |t: &SystemTime| t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).ok();
        let newest = self
            .files
            .iter()
            .filter_map(|f| f.modified.as_ref())
            .chain(self.forgotten.values().filter_map(|(_, _, m)| m.as_ref()))
            .chain(self.pending_light.iter().filter_map(|p| p.modified.as_ref()))
            .filter_map(unix)
            .fold(None, |newest: Option<f64>, t| Some(newest.map_or(t, |n| n.max(t))));
        let file_error = self.files.iter().find_map(|f| f.error.clone());
        WatchHealth {
            updated_unix_s: unix(&SystemTime::now()).unwrap_or(0.0),
            pid: std::process::id(),
            folder: self.options.dir.clone(),
            newest_data_unix_s: newest,
            files_open: self.files.len(),
            files_unfinished: self.files.iter().filter(|f| !f.finished).count(),
            files_with_errors: self.files.iter().filter(|f| f.error.is_some()).count()
                + self.unopenable.len()
                + self.stalled.len(),
            reports_unwritten,
            last_error: trouble.map(str::to_owned).or(file_error),
        }
    }

    /// Writes [`Self::health`] to `OUT/watch-health.json` (replaced atomically, not synced:
    /// it is rewritten every pass).
    pub fn write_health(&self, health: &WatchHealth) -> Result<()> {
        let path = self.options.out.join(HEALTH_FILE);
        let text = serde_json::to_vec_pretty(health).expect("a heartbeat serialises");
        write_atomically(&path, &text).at(&path)
    }

    /// How many files are held in memory (the others are in their checkpoints).
    pub fn files_in_memory(&self) -> usize {
        self.files.len()
    }

    /// Releases the runs whose files are all finished, readable and idle for `forget_after`
    /// (not those changed on this pass: their report is still to be written).
    fn forget_idle_runs(&mut self, changed: &[String]) {
        let forget_after = self.options.forget_after;
        let mut runs: Vec<String> = self.files.iter().map(|f| f.run.clone()).collect();
        runs.sort();
        runs.dedup();
        for run in runs {
            let idle = self.files.iter().filter(|f| f.run == run).all(|f| {
                f.finished && f.error.is_none() && f.last_growth.elapsed() >= forget_after
            });
            if !idle || changed.contains(&run) || self.stale_reports.contains(&run) {
                continue;
            }
            for file in self.files.iter().filter(|f| f.run == run) {
                self.forgotten.insert(file.path.clone(), (run.clone(), file.size, file.modified));
            }
            self.files.retain(|f| f.run != run);
            self.budgets.remove(&run);
        }
    }

    /// Loads a released run back from its checkpoints.
    fn recall_run(&mut self, run: &str) -> Result<()> {
        let mut paths: Vec<PathBuf> =
            self.forgotten.iter().filter(|(_, v)| v.0 == run).map(|(p, _)| p.clone()).collect();
        paths.sort();
        // All out of the released list first: adding a file recalls its run otherwise.
        for path in &paths {
            self.forgotten.remove(path);
        }
        for path in paths {
            // Files gone from the folder came back with the first one (add_departed_files).
            if self.files.iter().any(|f| f.path == path) {
                continue;
            }
            let file = self.add_file(path, run.to_string())?;
            // Resumed from its checkpoint: not a change by itself.
            file.last_growth = Instant::now();
        }
        self.stale_reports.retain(|r| r != run);
        Ok(())
    }

    /// Reads what file `i` gained, flushes it once idle, checkpoints it; true if its run
    /// changed. A finished file's plugin instances are released (its snapshots stay), and
    /// rebuilt from them if the file grows again.
    fn step_file(&mut self, i: usize, finish_after: Duration) -> Result<bool> {
        // A backlog (many files appearing at once) is taken a few files at a time: a file not
        // yet holding plugin instances waits while MAX_FILES_WITH_INSTANCES others do.
        let holding = self.files.iter().filter(|f| !f.instances.is_empty()).count();
        if self.files[i].instances.is_empty() && holding >= MAX_FILES_WITH_INSTANCES {
            return Ok(false);
        }
        let grew = self.read_appended(i)?;
        let file = &self.files[i];
        let idle = file.last_growth.elapsed() >= finish_after;
        let mut flushed = false;
        if !grew && idle && !file.finished && !file.light && !file.flow {
            self.ensure_instances(i);
            let file = &mut self.files[i];
            let done = file.calibrator.finish();
            file.triggers.extend(charge_triggers_of(&done.events));
            Self::feed(&mut file.instances, &calibrated_batches(done));
            file.finished = true;
            flushed = true;
        }
        if grew || flushed {
            Self::snapshot_all(&mut self.files[i]);
            self.checkpoint(i)?;
        }
        // A finished file's state is in its checkpoint: its instances are released (rebuilt
        // from the snapshots if it ever grows again). A file being written keeps them, so its
        // plugins see one continuous stream, as in `larmon run`.
        // A file that keeps failing gives its place up too (its state is checkpointed).
        let file = &mut self.files[i];
        if file.finished || file.error.is_some() {
            file.instances.clear();
        }
        Ok(grew || flushed)
    }

    /// Plugin instances for file `i` again (released when it finished): fresh ones that merge
    /// its latest snapshots.
    fn ensure_instances(&mut self, i: usize) {
        if !self.files[i].instances.is_empty() {
            return;
        }
        let budgets = self.budgets_of(&self.files[i].run.clone());
        let file = &mut self.files[i];
        for (k, plugin) in self.plugins.plugins.iter().enumerate() {
            let config = self.config.settings_for(plugin.info());
            let mut instance =
                open_instance(plugin, &self.plugins.runtime, &config, &self.pixels, &budgets[k]);
            if let (Ok(run), Some(snapshot)) = (instance.as_mut(), &file.snapshots[k]) {
                let restored = match snapshot {
                    Ok(bytes) => run.merge(bytes),
                    Err(e) => Err(e.clone()),
                };
                if let Err(e) = restored {
                    instance = Err(e);
                }
            }
            file.instances.push(instance);
        }
    }

    /// Adds files not seen before (restoring their state if a checkpoint exists). A light file
    /// whose run is not known from the run database waits until it stops growing, then joins
    /// the charge run its first event falls in.
    fn discover(&mut self) -> Result<()> {
        // A released run comes back when one of its files changes.
        let grown: Vec<String> = self
            .forgotten
            .iter()
            .filter(|(path, (_, size, modified))| {
                std::fs::metadata(path)
                    .is_ok_and(|m| m.len() != *size || m.modified().ok() != *modified)
            })
            .map(|(_, (run, _, _))| run.clone())
            .collect();
        for run in grown {
            self.recall_run(&run)?;
        }
        let dir = &self.options.dir;
        let entries = std::fs::read_dir(dir).at(dir)?;
        let mut new: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .filter(|p| p.extension().is_some_and(|e| e == "h5" || e == "hdf5" || e == "data"))
            .filter(|p| !self.files.iter().any(|f| &f.path == p))
            .filter(|p| !self.pending_light.iter().any(|f| &f.path == p))
            .filter(|p| !self.stalled.contains(p))
            .filter(|p| !self.forgotten.contains_key(p))
            .filter(|p| match self.unopenable.get(p) {
                Some(&(size, modified)) => std::fs::metadata(p)
                    .is_ok_and(|m| m.len() != size || m.modified().ok() != modified),
                None => true,
            })
            .collect();
        new.sort();
        for path in new {
            let light = is_light_file(&path) && !is_flow_file(&path);
            let run = match light {
                true => self
                    .checkpointed_run(&path)
                    .or_else(|| run_name_of(&path, self.run_db.as_ref())),
                false => Some(self.run_of(&path)),
            };
            match run {
                Some(run) => {
                    if let Err(e) = self.add_file(path.clone(), run) {
                        let meta = std::fs::metadata(&path).ok();
                        let key = (
                            meta.as_ref().map_or(0, |m| m.len()),
                            meta.and_then(|m| m.modified().ok()),
                        );
                        self.unopenable.insert(path.clone(), key);
                        self.notices.push(Notice::Skipped(format!(
                            "{}: {} (skipped until the file changes)",
                            path.display(),
                            error_text(&e)
                        )));
                    } else {
                        self.unopenable.remove(&path);
                    }
                }
                None => self.pending_light.push(PendingLight {
                    path,
                    size: 0,
                    modified: None,
                    since: Instant::now(),
                }),
            }
        }
        self.place_pending_light()?;
        Ok(())
    }

    fn add_file(&mut self, path: PathBuf, run: String) -> Result<&mut LiveFile> {
        // A new file of a released run: the run comes back first (its report merges them all).
        if self.forgotten.values().any(|(r, _, _)| *r == run) {
            self.recall_run(&run)?;
        }
        let first_of_run = !self.files.iter().any(|f| f.run == run);
        let index = self.file_index(&run, &path);
        let file = self.open_live(path, run.clone(), index)?;
        if file.generation > 0 && !self.stale_reports.contains(&file.run) {
            self.stale_reports.push(file.run.clone());
        }
        self.files.push(file);
        let added = self.files.len() - 1;
        if first_of_run {
            self.add_departed_files(&run)?;
        }
        Ok(&mut self.files[added])
    }

    /// Adds the files of `run` that an earlier watch checkpointed but that are no longer in the
    /// folder (cleaned from the DAQ buffer once replicated): they stay in the run, restored from
    /// their checkpoints, are finished if they were not, and are never read again.
    fn add_departed_files(&mut self, run: &str) -> Result<()> {
        let mut departed = Vec::new();
        for (index, checkpoint) in run_checkpoints(&self.options.out, run) {
            let Some(checkpoint) = checkpoint else { continue };
            let known = self.files.iter().any(|f| f.path == checkpoint.file)
                || self.forgotten.contains_key(&checkpoint.file);
            // Also a file not yet finished when the watcher stopped: what it read is in the
            // checkpoint, and the pending events are flushed as for a file that stopped growing.
            if !known && !checkpoint.file.exists() {
                departed.push((index, checkpoint.file));
            }
        }
        departed.sort();
        for (index, path) in departed {
            let file = self.open_live(path, run.to_string(), index)?;
            if !self.stale_reports.iter().any(|r| r == run) {
                self.stale_reports.push(run.to_string());
            }
            self.files.push(file);
        }
        Ok(())
    }

    /// The run a file was checkpointed under by an earlier watch of this output folder.
    fn checkpointed_run(&self, path: &Path) -> Option<String> {
        for run in std::fs::read_dir(&self.options.out).ok()?.flatten() {
            for file in std::fs::read_dir(run.path().join("watch")).into_iter().flatten().flatten()
            {
                let checkpoint: Option<Checkpoint> = std::fs::read(file.path().join("watch.json"))
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok());
                if checkpoint.is_some_and(|c| c.file == path) {
                    return Some(run.file_name().to_string_lossy().into_owned());
                }
            }
        }
        None
    }

    /// Places the light files that have stopped growing: in the charge run whose data span
    /// holds their first event, else (with a run database) the global run of that time, else
    /// a run of their own — never flagged for missing charge (charge-light judges only pairs).
    fn place_pending_light(&mut self) -> Result<()> {
        let finish_after = self.options.finish_after;
        let mut k = 0;
        while k < self.pending_light.len() {
            let pending = &mut self.pending_light[k];
            let Ok(meta) = std::fs::metadata(&pending.path) else {
                self.pending_light.remove(k); // moved away before it was read
                continue;
            };
            let modified = meta.modified().ok();
            if meta.len() != pending.size || modified != pending.modified {
                (pending.size, pending.modified, pending.since) =
                    (meta.len(), modified, Instant::now());
                k += 1;
                continue;
            }
            if pending.since.elapsed() < finish_after {
                k += 1;
                continue;
            }
            let first = LightFile::open(&pending.path).and_then(|mut f| f.first_unix_ms());
            let first_s = match first {
                Ok(Some(ms)) => ms as f64 / 1e3,
                Ok(None) => {
                    k += 1; // no event yet
                    continue;
                }
                Err(e) => {
                    let text = format!("{}: {e}", pending.path.display());
                    if !self.notices.iter().any(|n| *n == Notice::WillRetry(text.clone())) {
                        self.notices.push(Notice::WillRetry(text));
                    }
                    k += 1;
                    continue;
                }
            };
            let pending = self.pending_light.remove(k);
            let by_charge = self
                .files
                .iter()
                .filter(|f| !f.light)
                .find(|f| {
                    f.span.is_some_and(|(a, b)| {
                        a as f64 - LIGHT_TIME_SLACK_S <= first_s
                            && first_s <= b as f64 + LIGHT_TIME_SLACK_S
                    })
                })
                .map(|f| f.run.clone());
            let run = by_charge
                .or_else(|| self.run_db.as_ref()?.global_run_at(first_s).map(run_label))
                .unwrap_or_else(|| {
                    safe_name(
                        &pending.path.file_stem().map_or("light".into(), |s| s.to_string_lossy()),
                    )
                });
            let file = self.add_file(pending.path, run)?;
            if file.generation == 0 {
                // Already stable: read on this pass, not after another finish time.
                (file.size, file.modified, file.last_growth) =
                    (pending.size, pending.modified, pending.since);
            }
        }
        Ok(())
    }

    /// The index of a file in its run: the one its checkpoint has (stable across restarts),
    /// else the next free one.
    fn file_index(&self, run: &str, path: &Path) -> usize {
        let mut next = self.files.iter().filter(|f| f.run == run).map(|f| f.index + 1).max();
        for (index, checkpoint) in run_checkpoints(&self.options.out, run) {
            match checkpoint {
                Some(c) if c.file == path => return index,
                _ => next = Some(next.unwrap_or(0).max(index + 1)),
            }
        }
        next.unwrap_or(0)
    }

    /// The run a charge file belongs to: `run-<number, 7 digits>` from the run pattern (its
    /// global run with a run database), else its stem.
    pub fn run_of(&self, path: &Path) -> String {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match self.pattern.captures(&name).and_then(|c| c.name("run")) {
            Some(m) => match m.as_str().parse::<u64>() {
                Ok(n) => {
                    let db = self.run_db.as_ref();
                    run_label(db.and_then(|db| db.global_run_of(System::Crs, n, None)).unwrap_or(n))
                }
                Err(_) => format!("run-{}", safe_name(m.as_str())),
            },
            None => {
                safe_name(path.file_stem().map_or("run".into(), |s| s.to_string_lossy()).as_ref())
            }
        }
    }

    fn state_dir(&self, run: &str, index: usize) -> PathBuf {
        self.options.out.join(run).join("watch").join(format!("file-{index:06}"))
    }

    /// A file's live state: resumed from its last checkpoint, or fresh (also when the
    /// checkpoint cannot be used: said once, and the file is read again from its start).
    fn open_live(&mut self, path: PathBuf, run: String, index: usize) -> Result<LiveFile> {
        let state_dir = self.state_dir(&run, index);
        let checkpoint_file = state_dir.join("watch.json");
        let checkpoint = match std::fs::read(&checkpoint_file) {
            Err(_) => None,
            Ok(bytes) => match serde_json::from_slice::<Checkpoint>(&bytes) {
                Ok(c) => Some(c).filter(|c| c.file == path),
                Err(e) => {
                    self.notices.push(Notice::Skipped(format!(
                        "{}: unreadable checkpoint ({e}): reading {} again from its start",
                        checkpoint_file.display(),
                        path.display()
                    )));
                    None
                }
            },
        };
        if checkpoint.is_some() {
            match self.open_live_from(path.clone(), run.clone(), index, checkpoint) {
                Ok(file) => return Ok(file),
                Err(e) => self.notices.push(Notice::Skipped(format!(
                    "{}: checkpoint cannot be used ({}): reading the file again from its start",
                    path.display(),
                    error_text(&e)
                ))),
            }
        }
        self.open_live_from(path, run, index, None)
    }

    fn open_live_from(
        &mut self,
        path: PathBuf,
        run: String,
        index: usize,
        checkpoint: Option<Checkpoint>,
    ) -> Result<LiveFile> {
        let calibrator = self.calibration.for_file(index)?;
        let state_dir = self.state_dir(&run, index);
        let mut snapshots = Vec::new();
        // Plugin instances are made when the file is read (ensure_instances), from these
        // snapshots: discovering or resuming many files costs their snapshots, not instances.
        for plugin in &self.plugins.plugins {
            let Some(c) = &checkpoint else {
                snapshots.push(None);
                continue;
            };
            let file = generation_dir(&state_dir, c.generation)
                .join(format!("{}.snapshot", plugin_file(plugin)));
            // A missing snapshot is a plugin that had nothing yet; an unreadable file makes the
            // whole checkpoint unusable.
            snapshots.push(match std::fs::read(&file) {
                Ok(bytes) => Some(Ok(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e).at(&file),
            });
        }
        let flow = is_flow_file(&path);
        let mut file = LiveFile {
            path: path.clone(),
            run,
            index,
            position: 0,
            finished: false,
            span: None,
            generation: 0,
            size: 0,
            modified: None,
            last_growth: Instant::now(),
            calibrator,
            instances: Vec::new(),
            snapshots,
            error: None,
            last_attempt: None,
            light: is_light_file(&path) && !flow,
            triggers: Vec::new(),
            light_stats: LightStats::default(),
            flow,
            flow_stats: None,
        };
        if let Some(c) = checkpoint {
            let generation = generation_dir(&state_dir, c.generation);
            let state_file = generation.join("calibrator.json");
            let bytes = std::fs::read(&state_file).at(&state_file)?;
            let state: CalibratorState = serde_json::from_slice(&bytes)
                .map_err(|source| PipelineError::State { path: state_file.clone(), source })?;
            file.calibrator.resume(state).map_err(|source| PipelineError::Calibration {
                what: "resuming the calibration",
                source,
            })?;
            let triggers_file = generation.join("triggers.json");
            if let Ok(bytes) = std::fs::read(&triggers_file) {
                file.triggers = serde_json::from_slice(&bytes)
                    .map_err(|source| PipelineError::State { path: triggers_file, source })?;
            }
            file.light_stats = c.light_stats.clone().unwrap_or_default();
            file.flow_stats = c.flow_stats.clone();
            file.position = c.position;
            file.finished = c.finished;
            file.span = c.span;
            file.generation = c.generation;
            file.size = c.size;
            self.notices.push(Notice::Resumed {
                run: file.run.clone(),
                file: file.path.clone(),
                position: c.position,
                generation: c.generation,
            });
            Self::snapshot_all(&mut file);
        }
        Ok(file)
    }

    /// Notes a read error once while it persists.
    fn retry_later(notices: &mut Vec<Notice>, error: &mut Option<String>, text: String) {
        if error.as_deref() != Some(text.as_str()) {
            notices.push(Notice::WillRetry(text.clone()));
        }
        *error = Some(text);
    }

    /// Reads what was appended to file `i` since its position; true if anything was.
    fn read_appended(&mut self, i: usize) -> Result<bool> {
        // A finished file gone from the folder (cleaned from the buffer) keeps its state.
        if self.files[i].finished && !self.files[i].path.exists() {
            return Ok(false);
        }
        let file = &mut self.files[i];
        if !file.flow && !file.light && file.position == 0 && is_flow_file(&file.path) {
            file.flow = true; // not readable yet when discovered
        }
        if self.files[i].light {
            return self.read_light(i);
        }
        if self.files[i].flow {
            return self.read_flow(i);
        }
        let file = &mut self.files[i];
        let meta = match std::fs::metadata(&file.path) {
            Ok(m) => m,
            Err(_) => return Ok(false), // moved away: keep what we have
        };
        let modified = meta.modified().ok();
        let unchanged = meta.len() == file.size && modified == file.modified;
        // A file that fails without changing is tried again only now and then.
        let retry_due = file.last_attempt.is_none_or(|t| t.elapsed() >= RETRY_UNCHANGED);
        if unchanged && (file.error.is_none() || !retry_due) {
            return Ok(false);
        }
        file.last_attempt = Some(Instant::now());
        self.ensure_instances(i);
        let file = &mut self.files[i];
        let options = ReadOptions { read_ahead: false, ..ReadOptions::default() };
        let mut reader = match LarpixReader::open(&file.path, &options) {
            Ok(r) => r,
            Err(e) => {
                // A file being created may not be readable yet: retry on the next pass.
                Self::retry_later(&mut self.notices, &mut file.error, e.to_string());
                return Ok(false);
            }
        };
        file.error = None;
        reader.seek(file.position);
        let mut calibrated: Vec<(Stream, Arc<RecordBatch>)> = Vec::new();
        let mut rows = 0u64;
        // The `channels` stream, summed only when a plugin asks for it, handed over with each
        // feed (so a figure is as fresh as the packets').
        let wants_channels =
            file.instances.iter().flatten().any(|i| i.wants(Stream::Channels.name()));
        let mut activity = ChannelActivity::new();
        let channels = |batches: Vec<RecordBatch>| {
            batches.into_iter().map(|b| (Stream::Channels, Arc::new(b)))
        };
        loop {
            let batch = match reader.next_batch() {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(e) => {
                    // Data not yet complete on disk: keep what was read, retry the rest.
                    Self::retry_later(&mut self.notices, &mut file.error, e.to_string());
                    break;
                }
            };
            rows += batch.len() as u64;
            widen_by_timestamps(&mut file.span, &batch);
            let done = file.calibrator.push(&batch);
            file.triggers.extend(charge_triggers_of(&done.events));
            calibrated.extend(calibrated_batches(done));
            if wants_channels {
                calibrated.extend(channels(activity.add(&batch)));
            }
            calibrated.push((Stream::Packets, Arc::new(packets_record_batch(batch))));
            // Bound memory on a large backlog: hand over every ~1 M rows.
            if calibrated.len() > 200 {
                calibrated.extend(channels(activity.flush()));
                Self::feed(&mut file.instances, &calibrated);
                calibrated.clear();
            }
        }
        calibrated.extend(channels(activity.flush()));
        Self::feed(&mut file.instances, &calibrated);
        file.position = reader.progress_done();
        file.size = meta.len();
        file.modified = modified;
        if rows > 0 {
            file.last_growth = Instant::now();
            file.finished = false;
        }
        Ok(rows > 0)
    }

    /// A light file: once it has stopped growing for the finish time, reads what was
    /// appended and matches it to the charge triggers the run's charge files have produced so
    /// far (light data are matched once, so a light file waits for its charge to be in).
    fn read_light(&mut self, i: usize) -> Result<bool> {
        let finish_after = self.options.finish_after;
        let file = &mut self.files[i];
        if !file.idle_and_unread(finish_after) {
            return Ok(false);
        }
        // Light events are matched once: wait until the run's charge files are finished, so
        // that every trigger they hold is known (as `larmon run` knows them all).
        let run = file.run.clone();
        if self.files.iter().any(|f| f.run == run && !f.light && !f.finished && f.error.is_none()) {
            return Ok(false);
        }
        self.ensure_instances(i);
        let triggers: Vec<ChargeTrigger> = self
            .files
            .iter()
            .filter(|f| f.run == run && !f.light)
            .flat_map(|f| f.triggers.iter().copied())
            .collect();
        let map = &self.light_map;
        let file = &mut self.files[i];
        let mut batches: Vec<(Stream, Arc<RecordBatch>)> = Vec::new();
        let outcome = process_light_file(&file.path, file.position, map, triggers, &mut |s, b| {
            batches.push((s, Arc::new(b)))
        });
        match outcome {
            Ok((stats, position)) => {
                Self::feed(&mut file.instances, &batches);
                file.light_stats.add(&stats);
                file.position = position;
                file.finished = true;
                file.error = None;
                Ok(true)
            }
            Err(e) => {
                Self::retry_later(&mut self.notices, &mut file.error, error_text(&e));
                Ok(false)
            }
        }
    }

    /// An ndlar_flow file: once it has stopped growing for the finish time, read whole (flow
    /// writes its output at once, so there is nothing to follow).
    fn read_flow(&mut self, i: usize) -> Result<bool> {
        let finish_after = self.options.finish_after;
        let file = &mut self.files[i];
        if !file.idle_and_unread(finish_after) {
            return Ok(false);
        }
        self.ensure_instances(i);
        let file = &mut self.files[i];
        let options = ReadOptions { read_ahead: false, ..ReadOptions::default() };
        let outcome = (|| -> Result<_> {
            let mut source = self.calibration.open_file(&file.path, file.index, &options)?;
            let mut batches: Vec<(Stream, Arc<RecordBatch>)> = Vec::new();
            let mut triggers = Vec::new();
            while let Some(step) = source.next_step()? {
                triggers.extend(charge_triggers_of(&step.calibrated.events));
                batches.extend(source.batches(step.calibrated));
            }
            Ok((batches, triggers, source.host_stats(), source.span(), source.progress_done()))
        })();
        match outcome {
            Ok((batches, triggers, stats, span, position)) => {
                Self::feed(&mut file.instances, &batches);
                file.triggers = triggers;
                file.flow_stats = Some(stats);
                file.span = span;
                file.position = position;
                file.finished = true;
                file.error = None;
                Ok(true)
            }
            Err(e) => {
                Self::retry_later(&mut self.notices, &mut file.error, error_text(&e));
                Ok(false)
            }
        }
    }

    /// Hands batches to every plugin instance of a file, plugins in parallel.
    fn feed(
        instances: &mut [Result<PluginRun, PluginFailure>],
        batches: &[(Stream, Arc<RecordBatch>)],
    ) {
        if batches.is_empty() {
            return;
        }
        std::thread::scope(|scope| {
            for instance in instances.iter_mut().filter_map(|i| i.as_mut().ok()) {
                scope.spawn(move || {
                    for (stream, batch) in batches {
                        let _ = instance.consume(stream.name(), batch); // a failure is kept
                    }
                });
            }
        });
    }

    fn snapshot_all(file: &mut LiveFile) {
        // Released instances (a finished file) leave the snapshots as they are.
        for (instance, snapshot) in file.instances.iter_mut().zip(&mut file.snapshots) {
            *snapshot = Some(match instance {
                Ok(i) => i.snapshot(),
                Err(e) => Err(e.clone()),
            });
        }
    }

    /// Writes file `i`'s state as a new generation (every file fsync'd), then makes it current
    /// atomically.
    fn checkpoint(&mut self, i: usize) -> Result<()> {
        let file = &self.files[i];
        let state_dir = self.state_dir(&file.run, file.index);
        let generation = file.generation + 1;
        let dir = generation_dir(&state_dir, generation);
        let _ = std::fs::remove_dir_all(&dir); // a half-written one from a crash
        std::fs::create_dir_all(&dir).at(&dir)?;
        let state = serde_json::to_vec(&file.calibrator.state()).expect("calibrator state");
        write_synced(&dir.join("calibrator.json"), &state)?;
        if !file.triggers.is_empty() {
            let triggers = serde_json::to_vec(&file.triggers).expect("triggers");
            write_synced(&dir.join("triggers.json"), &triggers)?;
        }
        for (plugin, snapshot) in self.plugins.plugins.iter().zip(&file.snapshots) {
            if let Some(Ok(bytes)) = snapshot {
                write_synced(&dir.join(format!("{}.snapshot", plugin_file(plugin))), bytes)?;
            }
        }
        sync_dir(&dir);
        let checkpoint = Checkpoint {
            file: file.path.clone(),
            generation,
            position: file.position,
            finished: file.finished,
            span: file.span,
            size: file.size,
            light_stats: file.light.then(|| file.light_stats.clone()),
            flow_stats: file.flow_stats.clone(),
        };
        let current = state_dir.join("watch.json");
        let text = serde_json::to_vec_pretty(&checkpoint).expect("checkpoint");
        write_atomically(&current, &text).at(&current)?;
        sync_dir(&state_dir);
        let _ = std::fs::remove_dir_all(generation_dir(&state_dir, file.generation));
        self.files[i].generation = generation;
        Ok(())
    }

    /// Merges the latest snapshots of every file of `run` (in file order) per plugin and writes
    /// the run's report.
    pub fn write_run_report(&mut self, run: &str) -> Result<WrittenReport> {
        if self.forgotten.values().any(|(r, _, _)| r == run) {
            self.recall_run(run)?;
        }
        let run_dir = self.options.out.join(run);
        let mut files: Vec<&LiveFile> = self.files.iter().filter(|f| f.run == run).collect();
        // `larmon run`'s order: charge files, then light files, each in file order (a recalled
        // run's files come back in any order; a light file may appear before the last charge).
        files.sort_by_key(|f| (f.light, f.index));
        let mut host = serde_json::json!({});
        let mut span = None;
        let mut read_errors = Vec::new();
        for file in &files {
            let stats = if file.light {
                serde_json::to_value(&file.light_stats)
            } else if let Some(stats) = &file.flow_stats {
                Ok(stats.clone())
            } else {
                serde_json::to_value(file.calibrator.stats())
            };
            add_host_stats(&mut host, &stats.expect("plain statistics"));
            span = join_span(span, file.span);
            read_errors.extend(file.error.clone());
        }
        if !read_errors.is_empty() {
            host["read_errors"] = read_errors.into();
        }
        // Only plain data crosses into the threads (plugin instances are not Sync).
        let snapshots: Vec<(&Path, &[Snapshot])> =
            files.iter().map(|f| (f.path.as_path(), f.snapshots.as_slice())).collect();
        let (runtime, pixels) = (&self.plugins.runtime, &self.pixels);
        let budgets = self.budgets.get(run).cloned().unwrap_or_else(|| self.plugins.budgets());
        let mut entries: Vec<PluginEntry> = std::thread::scope(|scope| {
            let workers: Vec<_> = self
                .plugins
                .plugins
                .iter()
                .enumerate()
                .map(|(k, plugin)| {
                    let (snapshots, run_dir, budget) = (&snapshots, &run_dir, &budgets[k]);
                    let config = self.config.settings_for(plugin.info());
                    scope.spawn(move || {
                        let mut merge = PluginMerge::open(plugin, runtime, &config, pixels, budget);
                        for (path, file_snapshots) in snapshots {
                            if let Some(snapshot) = &file_snapshots[k] {
                                merge.add(path.display(), snapshot.as_deref());
                            }
                        }
                        merge.finish(run_dir)
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().expect("plugin report thread")).collect()
        });
        entries.extend(
            self.plugins.unusable.iter().map(|(file, reason)| unusable_entry(file, reason)),
        );
        let totals = RunTotals {
            files: files.iter().map(|f| f.path.clone()).collect(),
            span,
            host,
            detector: self.calibration.summary(),
            provenance: provenance(&self.config, self.calibration.sha256(), &self.plugins),
            version: None,
        };
        write_report(run, &run_dir, totals, entries, &self.config)
    }
}

/// A plugin's state file name.
fn plugin_file(plugin: &LoadedPlugin) -> String {
    safe_name(&plugin.info().name)
}

fn generation_dir(state_dir: &Path, generation: u64) -> PathBuf {
    state_dir.join(format!("g{generation}"))
}

/// Writes a file and makes its bytes durable before the checkpoint that names it.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).at(path)?;
    file.write_all(bytes).at(path)?;
    file.sync_all().at(path)
}

/// Makes a directory's entries durable (the rename of a checkpoint survives a power cut).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
