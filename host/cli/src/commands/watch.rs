//! `larmon watch DIR --out OUT`: realtime DQM of a DAQ output folder. New and growing files are
//! read from where they were left (never sampled), calibrated as continuous streams, fed to the
//! plugins, grouped into runs, and each changed run's report is rewritten within seconds.
//!
//! Crash safety: after every chunk, a file's position, calibrator state and plugin snapshots
//! are written as one generation (`OUT/<run>/watch/file-NNNNNN/g<N>/`) and only then named
//! current in `watch.json` by an atomic rename. A restart (or `kill -9` at any moment) resumes
//! from the last named generation: nothing is processed twice, nothing is lost.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use arrow::array::RecordBatch;
use larmon_calibrate::output::{
    CalibratedBatch, events_record_batch, hits_record_batch, pixels_record_batch,
    segments_record_batch, track_pixels_record_batch, tracks_record_batch,
};
use larmon_calibrate::{Calibrator, CalibratorState};
use larmon_ingest::arrow::packets_record_batch;
use larmon_ingest::light::is_light_file;
use larmon_ingest::read::{LarpixReader, ReadOptions};
use larmon_report::{ChecksConfig, PluginEntry};
use larmon_runtime::{LoadedPlugin, PluginRun, Runtime};
use notify::Watcher;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::run::{
    LightStats, RunCalibration, add_host_stats, charge_triggers_of, finish_plugin, join_span,
    open_instance, process_light_file, read_config, safe_name, write_atomically, write_report,
};

/// The default run pattern: the 2x2 DAQ's `binary-0050015-…` / `packet-0050015-…` names, or
/// `run123` anywhere in the name.
const DEFAULT_RUN_PATTERN: &str = r"(?:binary|packet|run)[-_]?(?P<run>\d+)";

/// Watch a DAQ output folder and keep every run's report current.
///
/// Notices new and growing raw or packet files, and light files (MPD `.data`, flow HDF5; read
/// once they stop growing and matched to the run's charge triggers) (inotify, with polling as a fallback — polling
/// alone on network file systems), processes only what was appended, and never samples. Files
/// are grouped into runs by --run-pattern (its `run` group; a file that does not match is a run
/// of its own); each file is calibrated as one continuous stream (ids offset per file, as in
/// `larmon run`), and its plugin states are merged with the run's other files into
/// OUT/<run>/report.json after every chunk. A file that has not grown for --finish-after-s is
/// finished: its last events are flushed (it continues if it grows again).
///
/// State is kept under OUT/<run>/watch/ after every chunk, so a restart — or a kill at any
/// moment — resumes where it stopped, without reprocessing or losing data.
///
/// Examples:
///   larmon watch /data/daq --out /data/dqm --serve          reports + dashboard on :8080
///   larmon watch daq --out dqm --config 2x2.toml --run-pattern 'run(?P<run>\d+)_'
///   larmon watch daq --out dqm --exit-when-idle-s 60         batch: stop when all is done
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The folder the DAQ writes into (not recursive).
    dir: PathBuf,
    /// Output directory of the reports (OUT/<run>/report.json).
    #[arg(long)]
    out: PathBuf,
    /// Regular expression with a `run` group giving the run number of a file name.
    #[arg(long, default_value = DEFAULT_RUN_PATTERN)]
    run_pattern: String,
    /// Detector configuration, [plugins.NAME] settings and [checks] (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    plugin_args: super::run::PluginArgs,
    /// Look at the folder at least this often, seconds (the only trigger if inotify fails).
    #[arg(long, default_value_t = 1.0)]
    poll_s: f64,
    /// Light channel → detector map (JSON; default: the 2x2 map).
    #[arg(long)]
    light_channel_map: Option<PathBuf>,
    /// Flush a file's last events once it has not grown for this long, seconds.
    #[arg(long, default_value_t = 30.0)]
    finish_after_s: f64,
    /// Exit once every file is finished and nothing changed for this long, seconds.
    #[arg(long)]
    exit_when_idle_s: Option<f64>,
    /// Also serve the dashboard over OUT.
    #[arg(long)]
    serve: bool,
    /// Address of the dashboard with --serve.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
}

/// A plugin's snapshot of one file, or why there is none.
type Snapshot = Result<Vec<u8>, String>;

/// The snapshot placeholder of a file no data has been read from yet.
const NO_DATA_YET: &str = "no data yet";

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
    instances: Vec<Result<PluginRun, String>>,
    /// Per plugin: the latest snapshot (what the run report merges).
    snapshots: Vec<Snapshot>,
    /// Last open/read error, reported once while it persists.
    error: Option<String>,
    /// A light-readout file (read once it stops growing, matched to the run's charge triggers)
    /// rather than a charge file.
    light: bool,
    /// Charge files: the triggers `(time ticks, event id)` of their events, for light matching.
    triggers: Vec<(i64, u64)>,
    /// Light files: what was read so far.
    light_stats: LightStats,
}

/// Everything the loop shares.
struct Watch {
    args: Args,
    pattern: Regex,
    calibration: RunCalibration,
    plugin_configs: BTreeMap<String, String>,
    checks: ChecksConfig,
    runtime: Arc<Runtime>,
    plugins: Vec<LoadedPlugin>,
    pixels: Arc<RecordBatch>,
    light_map: larmon_ingest::light::channel_map::ChannelMap,
    files: Vec<LiveFile>,
    /// Runs whose report must be rewritten although nothing new was read: files resumed from a
    /// checkpoint whose report a killed watcher may not have written.
    stale_reports: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    if !args.dir.is_dir() {
        bail!("{}: not a directory (give the folder the DAQ writes into)", args.dir.display());
    }
    let pattern = Regex::new(&args.run_pattern)
        .with_context(|| format!("--run-pattern {:?}", args.run_pattern))?;
    if !pattern.capture_names().any(|n| n == Some("run")) {
        bail!("--run-pattern {:?} has no (?P<run>...) group", args.run_pattern);
    }
    let (detector, plugin_configs, checks) = read_config(args.config.as_deref())?;
    let (runtime, plugins) = args.plugin_args.load()?;
    let calibration = RunCalibration::new(detector)?;
    let pixels = Arc::new(pixels_record_batch(&calibration.geometry));
    let light_map = super::light::load_channel_map(args.light_channel_map.as_deref())?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    if args.serve {
        let serve_args = super::serve::Args::new(args.out.clone(), args.bind);
        std::thread::spawn(move || {
            if let Err(e) = super::serve::run(serve_args) {
                eprintln!("larmon: dashboard stopped: {}", super::error_text(&e));
            }
        });
    }

    // inotify wakes the loop at once; the timeout below is the polling fallback.
    let (wake_tx, wake) = channel::<()>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = wake_tx.send(());
        }
    })
    .and_then(|mut w| w.watch(&args.dir, notify::RecursiveMode::NonRecursive).map(|()| w));
    let _watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            eprintln!(
                "larmon: file notifications unavailable ({e}); polling every {} s",
                args.poll_s
            );
            None
        }
    };
    println!(
        "watching {} -> {} ({} plugins; Ctrl-C stops, a restart resumes)",
        args.dir.display(),
        args.out.display(),
        plugins.len()
    );

    let mut watch = Watch {
        args,
        pattern,
        calibration,
        plugin_configs,
        checks,
        runtime,
        plugins,
        pixels,
        light_map,
        files: Vec::new(),
        stale_reports: Vec::new(),
    };
    let poll = Duration::from_secs_f64(watch.args.poll_s.max(0.05));
    let mut last_change = Instant::now();
    loop {
        let changed_runs = watch.step()?;
        for run in &changed_runs {
            watch.write_run_report(run)?;
        }
        if !changed_runs.is_empty() {
            last_change = Instant::now();
        }
        if let Some(idle) = watch.args.exit_when_idle_s {
            let all_finished = watch.files.iter().all(|f| f.finished && f.error.is_none());
            if all_finished && last_change.elapsed().as_secs_f64() >= idle {
                println!("idle for {idle} s with every file finished: stopping");
                return Ok(());
            }
        }
        match wake.recv_timeout(poll) {
            // Coalesce a burst of notifications (a writer flushing) into one pass.
            Ok(()) => while wake.recv_timeout(Duration::from_millis(20)).is_ok() {},
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(poll),
        }
    }
}

impl Watch {
    /// One pass: discover files, read what was appended, finish idle files. Returns the runs
    /// whose report must be rewritten.
    fn step(&mut self) -> Result<Vec<String>> {
        self.discover()?;
        let mut changed: Vec<String> = std::mem::take(&mut self.stale_reports);
        changed.dedup();
        let finish_after = Duration::from_secs_f64(self.args.finish_after_s.max(0.0));
        for i in 0..self.files.len() {
            let grew = self.read_appended(i)?;
            let file = &mut self.files[i];
            let idle = file.last_growth.elapsed() >= finish_after;
            let mut flushed = false;
            if !grew && idle && !file.finished && !file.light {
                let done = file.calibrator.finish();
                file.triggers.extend(charge_triggers_of(&done.events));
                let out = calibrated_batches(&done);
                Self::feed(&mut file.instances, &out);
                file.finished = true;
                flushed = true;
            }
            if grew || flushed {
                Self::snapshot_all(file);
                self.checkpoint(i)?;
                let run = self.files[i].run.clone();
                if !changed.contains(&run) {
                    changed.push(run);
                }
            }
        }
        Ok(changed)
    }

    /// Adds files not seen before (restoring their state if a checkpoint exists).
    fn discover(&mut self) -> Result<()> {
        let entries = std::fs::read_dir(&self.args.dir)
            .with_context(|| format!("listing {}", self.args.dir.display()))?;
        let mut new: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .filter(|p| p.extension().is_some_and(|e| e == "h5" || e == "hdf5" || e == "data"))
            .filter(|p| !self.files.iter().any(|f| &f.path == p))
            .collect();
        new.sort();
        for path in new {
            let run = self.run_of(&path);
            let index = self.file_index(&run, &path);
            let file = self.open_live(path, run, index)?;
            if file.generation > 0 && !self.stale_reports.contains(&file.run) {
                self.stale_reports.push(file.run.clone());
            }
            self.files.push(file);
        }
        Ok(())
    }

    /// The index of a file in its run: the one its checkpoint has (stable across restarts),
    /// else the next free one.
    fn file_index(&self, run: &str, path: &Path) -> usize {
        let watch_dir = self.args.out.join(run).join("watch");
        let mut next = self.files.iter().filter(|f| f.run == run).map(|f| f.index + 1).max();
        for entry in std::fs::read_dir(&watch_dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(index) = name.strip_prefix("file-").and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            let checkpoint: Option<Checkpoint> = std::fs::read(entry.path().join("watch.json"))
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            match checkpoint {
                Some(c) if c.file == path => return index,
                _ => next = Some(next.unwrap_or(0).max(index + 1)),
            }
        }
        next.unwrap_or(0)
    }

    /// The run a file belongs to: `run-<number, 7 digits>` from the pattern, else its stem.
    fn run_of(&self, path: &Path) -> String {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let light_pattern = Regex::new(r"rctl_(?P<run>\d+)").expect("valid pattern");
        let captures = self.pattern.captures(&name).or_else(|| light_pattern.captures(&name));
        match captures.and_then(|c| c.name("run")) {
            Some(m) => match m.as_str().parse::<u64>() {
                Ok(n) => format!("run-{n:07}"),
                Err(_) => format!("run-{}", safe_name(m.as_str())),
            },
            None => {
                safe_name(path.file_stem().map_or("run".into(), |s| s.to_string_lossy()).as_ref())
            }
        }
    }

    fn state_dir(&self, run: &str, index: usize) -> PathBuf {
        self.args.out.join(run).join("watch").join(format!("file-{index:06}"))
    }

    /// A file's live state: fresh, or resumed from its last checkpoint.
    fn open_live(&self, path: PathBuf, run: String, index: usize) -> Result<LiveFile> {
        let calibrator = self.calibration.for_file(index)?;
        let state_dir = self.state_dir(&run, index);
        let checkpoint: Option<Checkpoint> = std::fs::read(state_dir.join("watch.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .filter(|c: &Checkpoint| c.file == path);
        let mut instances = Vec::new();
        let mut snapshots = Vec::new();
        for plugin in &self.plugins {
            let config = self.plugin_config(plugin);
            let mut instance = open_instance(plugin, &self.runtime, &config, &self.pixels);
            if let (Some(c), Ok(run)) = (&checkpoint, instance.as_mut()) {
                let file = generation_dir(&state_dir, c.generation)
                    .join(format!("{}.snapshot", safe_name(&plugin.info().name)));
                let restored = std::fs::read(&file)
                    .map_err(|e| format!("reading {}: {e}", file.display()))
                    .and_then(|bytes| run.merge(&bytes));
                if let Err(e) = restored {
                    instance = Err(format!("resuming: {e}"));
                }
            }
            snapshots.push(Err(NO_DATA_YET.to_string()));
            instances.push(instance);
        }
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
            instances,
            snapshots,
            error: None,
            light: is_light_file(&path),
            triggers: Vec::new(),
            light_stats: LightStats::default(),
        };
        if let Some(c) = checkpoint {
            let state_file = generation_dir(&state_dir, c.generation).join("calibrator.json");
            let state: CalibratorState = serde_json::from_slice(
                &std::fs::read(&state_file)
                    .with_context(|| format!("reading {}", state_file.display()))?,
            )
            .with_context(|| format!("{}", state_file.display()))?;
            file.calibrator.resume(state)?;
            let triggers_file = generation_dir(&state_dir, c.generation).join("triggers.json");
            if let Ok(bytes) = std::fs::read(&triggers_file) {
                file.triggers = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{}", triggers_file.display()))?;
            }
            file.light_stats = c.light_stats.clone().unwrap_or_default();
            file.position = c.position;
            file.finished = c.finished;
            file.span = c.span;
            file.generation = c.generation;
            file.size = c.size;
            println!(
                "{}: resuming {} at {} (generation {})",
                file.run,
                file.path.display(),
                c.position,
                c.generation
            );
            Self::snapshot_all(&mut file);
        }
        Ok(file)
    }

    fn plugin_config(&self, plugin: &LoadedPlugin) -> String {
        self.plugin_configs.get(&plugin.info().name).cloned().unwrap_or_else(|| "{}".into())
    }

    /// Reads what was appended to file `i` since its position; true if anything was.
    fn read_appended(&mut self, i: usize) -> Result<bool> {
        if self.files[i].light {
            return self.read_light(i);
        }
        let file = &mut self.files[i];
        let meta = match std::fs::metadata(&file.path) {
            Ok(m) => m,
            Err(_) => return Ok(false), // moved away: keep what we have
        };
        let modified = meta.modified().ok();
        if meta.len() == file.size && modified == file.modified && file.error.is_none() {
            return Ok(false);
        }
        let options = ReadOptions { read_ahead: false, ..ReadOptions::default() };
        let mut reader = match LarpixReader::open(&file.path, &options) {
            Ok(r) => r,
            Err(e) => {
                // A file being created may not be readable yet: retry on the next pass.
                let text = e.to_string();
                if file.error.as_deref() != Some(text.as_str()) {
                    eprintln!("larmon: {} (will retry)", text);
                }
                file.error = Some(text);
                return Ok(false);
            }
        };
        file.error = None;
        reader.seek(file.position);
        let mut calibrated: Vec<(&'static str, Arc<RecordBatch>)> = Vec::new();
        let mut rows = 0u64;
        loop {
            let batch = match reader.next_batch() {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(e) => {
                    // Data not yet complete on disk: keep what was read, retry the rest.
                    let text = e.to_string();
                    if file.error.as_deref() != Some(text.as_str()) {
                        eprintln!("larmon: {text} (will retry)");
                    }
                    file.error = Some(text);
                    break;
                }
            };
            rows += batch.len() as u64;
            for (kind, seconds) in batch.packet_type.iter().zip(&batch.timestamp) {
                if *kind == 4 {
                    file.span = join_span(file.span, Some((*seconds, *seconds)));
                }
            }
            let done = file.calibrator.push(&batch);
            file.triggers.extend(charge_triggers_of(&done.events));
            calibrated.extend(calibrated_batches(&done));
            calibrated.push(("packets", Arc::new(packets_record_batch(batch))));
            // Bound memory on a large backlog: hand over every ~1 M rows.
            if calibrated.len() > 200 {
                Self::feed(&mut file.instances, &calibrated);
                calibrated.clear();
            }
        }
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

    /// A light file: once it has stopped growing for `--finish-after-s`, reads what was
    /// appended and matches it to the charge triggers the run's charge files have produced so
    /// far (light data are matched once, so a light file waits for its charge to be in).
    fn read_light(&mut self, i: usize) -> Result<bool> {
        let finish_after = Duration::from_secs_f64(self.args.finish_after_s.max(0.0));
        let file = &mut self.files[i];
        let Ok(meta) = std::fs::metadata(&file.path) else { return Ok(false) };
        let modified = meta.modified().ok();
        if meta.len() != file.size || (modified != file.modified && file.modified.is_some()) {
            file.size = meta.len();
            file.modified = modified;
            file.last_growth = Instant::now();
            file.finished = false;
            return Ok(false);
        }
        file.modified = modified;
        if file.last_growth.elapsed() < finish_after || (file.finished && file.error.is_none()) {
            return Ok(false);
        }
        let run = file.run.clone();
        let triggers: Vec<(i64, u64)> = self
            .files
            .iter()
            .filter(|f| f.run == run && !f.light)
            .flat_map(|f| f.triggers.iter().copied())
            .collect();
        let map = &self.light_map;
        let file = &mut self.files[i];
        let mut batches: Vec<(&'static str, Arc<RecordBatch>)> = Vec::new();
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
                let text = super::error_text(&e);
                if file.error.as_deref() != Some(text.as_str()) {
                    eprintln!("larmon: {text} (will retry)");
                }
                file.error = Some(text);
                Ok(false)
            }
        }
    }

    /// Hands batches to every plugin instance of a file, plugins in parallel.
    fn feed(
        instances: &mut [Result<PluginRun, String>],
        batches: &[(&'static str, Arc<RecordBatch>)],
    ) {
        if batches.is_empty() {
            return;
        }
        std::thread::scope(|scope| {
            for instance in instances.iter_mut().filter_map(|i| i.as_mut().ok()) {
                scope.spawn(move || {
                    for (stream, batch) in batches {
                        let _ = instance.consume(stream, batch); // a failure is kept
                    }
                });
            }
        });
    }

    fn snapshot_all(file: &mut LiveFile) {
        for (instance, snapshot) in file.instances.iter_mut().zip(&mut file.snapshots) {
            *snapshot = match instance {
                Ok(i) => i.snapshot(),
                Err(e) => Err(e.clone()),
            };
        }
    }

    /// Writes file `i`'s state as a new generation, then makes it current atomically.
    fn checkpoint(&mut self, i: usize) -> Result<()> {
        let file = &self.files[i];
        let state_dir = self.state_dir(&file.run, file.index);
        let generation = file.generation + 1;
        let dir = generation_dir(&state_dir, generation);
        let _ = std::fs::remove_dir_all(&dir); // a half-written one from a crash
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let state = serde_json::to_vec(&file.calibrator.state())?;
        std::fs::write(dir.join("calibrator.json"), state)?;
        if !file.triggers.is_empty() {
            std::fs::write(dir.join("triggers.json"), serde_json::to_vec(&file.triggers)?)?;
        }
        for (plugin, snapshot) in self.plugins.iter().zip(&file.snapshots) {
            if let Ok(bytes) = snapshot {
                std::fs::write(
                    dir.join(format!("{}.snapshot", safe_name(&plugin.info().name))),
                    bytes,
                )?;
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
        };
        write_atomically(&state_dir.join("watch.json"), &serde_json::to_vec_pretty(&checkpoint)?)
            .with_context(|| format!("writing {}", state_dir.display()))?;
        sync_dir(&state_dir);
        let _ = std::fs::remove_dir_all(generation_dir(&state_dir, file.generation));
        self.files[i].generation = generation;
        Ok(())
    }

    /// Merges the latest snapshots of every file of `run` (in file order) per plugin and writes
    /// the run's report.
    fn write_run_report(&self, run: &str) -> Result<()> {
        let started = Instant::now();
        let run_dir = self.args.out.join(run);
        let files: Vec<&LiveFile> = self.files.iter().filter(|f| f.run == run).collect();
        let mut host = serde_json::json!({});
        let mut span = None;
        let mut read_errors = Vec::new();
        for file in &files {
            if file.light {
                add_host_stats(&mut host, &serde_json::to_value(&file.light_stats)?);
            } else {
                add_host_stats(&mut host, &serde_json::to_value(file.calibrator.stats())?);
            }
            span = join_span(span, file.span);
            read_errors.extend(file.error.clone());
        }
        if !read_errors.is_empty() {
            host["read_errors"] = read_errors.into();
        }
        // Only plain data crosses into the threads (plugin instances are not Sync).
        let snapshots: Vec<(&Path, &[Snapshot])> =
            files.iter().map(|f| (f.path.as_path(), f.snapshots.as_slice())).collect();
        let (runtime, pixels) = (&self.runtime, &self.pixels);
        let entries: Vec<PluginEntry> = std::thread::scope(|scope| {
            let workers: Vec<_> = self
                .plugins
                .iter()
                .enumerate()
                .map(|(k, plugin)| {
                    let (snapshots, run_dir) = (&snapshots, &run_dir);
                    let config = self.plugin_config(plugin);
                    scope.spawn(move || {
                        let mut merged = open_instance(plugin, runtime, &config, pixels);
                        let mut failure = None;
                        for (path, file_snapshots) in snapshots {
                            let outcome = match (&file_snapshots[k], merged.as_mut()) {
                                (Ok(bytes), Ok(run)) => run.merge(bytes),
                                (Err(e), _) if e == NO_DATA_YET => Ok(()),
                                (Err(e), _) => Err(e.clone()),
                                (_, Err(e)) => Err(e.clone()),
                            };
                            if let Err(e) = outcome {
                                failure.get_or_insert(format!("{}: {e}", path.display()));
                            }
                        }
                        finish_plugin(plugin, merged, failure, Vec::new(), run_dir)
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().expect("plugin report thread")).collect()
        });
        let paths = files.iter().map(|f| f.path.clone()).collect();
        write_report(run, &run_dir, paths, span, host, entries, &self.checks, started)
    }
}

fn generation_dir(state_dir: &Path, generation: u64) -> PathBuf {
    state_dir.join(format!("g{generation}"))
}

/// Makes a directory's entries durable (the rename of a checkpoint survives a power cut).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The calibrated streams of one batch as Arrow batches (empty ones dropped).
fn calibrated_batches(done: &CalibratedBatch) -> Vec<(&'static str, Arc<RecordBatch>)> {
    [
        ("hits", hits_record_batch(&done.hits)),
        ("events", events_record_batch(&done.events)),
        ("tracks", tracks_record_batch(&done.tracks)),
        ("track_segments", segments_record_batch(&done.segments)),
        ("track_pixels", track_pixels_record_batch(&done.track_pixels)),
    ]
    .into_iter()
    .filter(|(_, b)| b.num_rows() > 0)
    .map(|(s, b)| (s, Arc::new(b)))
    .collect()
}
