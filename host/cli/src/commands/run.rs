//! `larmon run`: files of one run → calibration → every plot plugin → report.json + figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow::array::RecordBatch;
use larmon_calibrate::channels::ChannelTable;
use larmon_calibrate::geometry::Geometry;
use larmon_calibrate::output::{
    events_record_batch, hits_record_batch, pixels_record_batch, segments_record_batch,
    track_pixels_record_batch, tracks_record_batch,
};
use larmon_calibrate::{Calibrator, DetectorConfig};
use larmon_ingest::arrow::packets_record_batch;
use larmon_ingest::light::channel_map::ChannelMap;
use larmon_ingest::light::streams::{
    LightBatchBuilder, Matcher, TICKS_PER_S as LIGHT_TICKS_PER_S, event_time_ticks,
};
use larmon_ingest::light::{LightFile, is_light_file};
use larmon_ingest::read::{LarpixReader, ReadOptions};
use larmon_report::model::{LoadEntry, Quality};
use larmon_report::{Check, ChecksConfig, FigureFiles, Metric, PluginEntry, RunReport, Status};
use larmon_runtime::{Limits, LoadedPlugin, PluginReport, Runtime};

use crate::progress;

/// Run the plot plugins over the files of one run and write its report.
///
/// The files are read in order, calibrated (hits, events, tracks), and every batch of every
/// stream a plugin asked for is handed to it. Each plugin runs sandboxed (no files, network or
/// environment; memory and CPU limits) in its own thread; one that fails is reported with its
/// reason while the others go on. Output: DIR/<run>/report.json with each plugin's status,
/// metrics, checks and log, and DIR/<run>/<plugin>/<figure>.svg (+ .json with the plotted data).
/// The exit code is non-zero only if larmon itself failed.
///
/// Bundled plugins are the .wasm files in --plugin-dir (default: $LARMON_PLUGIN_DIR, else the
/// build's target/wasm32-wasip2/plugin beside the larmon binary); --plugin adds one or replaces
/// the bundled plugin of the same name.
///
/// Examples:
///   larmon run tests/data/small-raw.h5 --out reports
///   larmon run run1_p0.h5 run1_p1.h5 --out reports --plugin my-dqdx.wasm --config larmon.toml
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Raw or packet files of one run.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output directory (the report goes to DIR/<run>/).
    #[arg(long)]
    out: PathBuf,
    /// Detector configuration plus `[plugins.NAME]` tables with plugin settings (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run name (default: the first file's name without extension).
    #[arg(long)]
    run: Option<String>,
    #[command(flatten)]
    plugin_args: PluginArgs,
    /// Light channel → detector map (JSON list of {adc, channel, tpc, det, det_type}; default:
    /// the 2x2 map) for light files in the run.
    #[arg(long)]
    light_channel_map: Option<PathBuf>,
    /// Process only shard I of N (0-based): a contiguous share of the files, written as
    /// per-file plugin snapshots to DIR/<run>/shards/ for `larmon merge` instead of a report.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
}

fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let (i, n) = text.split_once('/').ok_or("write the shard as I/N, e.g. 0/4")?;
    let (i, n): (usize, usize) =
        (i.parse().map_err(|_| "I is not a number")?, n.parse().map_err(|_| "N is not a number")?);
    if n == 0 || i >= n {
        return Err(format!("shard {i}/{n}: need 0 <= I < N"));
    }
    Ok((i, n))
}

/// The files (indices into the run's file list) of shard `i` of `n`: a contiguous block.
pub fn shard_files(count: usize, (i, n): (usize, usize)) -> std::ops::Range<usize> {
    (i * count / n)..((i + 1) * count / n)
}

impl Args {
    /// The arguments of `larmon run FILES --out OUT --run RUN` with every other option at its
    /// default (what `larmon demo` runs).
    pub fn simple(files: Vec<PathBuf>, out: PathBuf, run: &str) -> Self {
        Self {
            files,
            out,
            config: None,
            run: Some(run.into()),
            plugin_args: PluginArgs::default(),
            light_channel_map: None,
            shard: None,
        }
    }
}

/// Which plugins to run and their sandbox limits (shared by `run`, `watch` and `merge`).
#[derive(clap::Args)]
pub struct PluginArgs {
    /// A plugin component to add (or to replace the bundled one of the same name).
    #[arg(long = "plugin")]
    plugins: Vec<PathBuf>,
    /// Directory of bundled plugins.
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    /// CPU limit of one plugin call, seconds.
    #[arg(long, default_value_t = 10.0)]
    plugin_timeout: f64,
    /// Memory limit of one plugin instance, MiB.
    #[arg(long, default_value_t = 512)]
    plugin_memory_mib: usize,
    /// Cache of compiled plugins (default: $XDG_CACHE_HOME/larmon or ~/.cache/larmon).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

impl Default for PluginArgs {
    fn default() -> Self {
        Self {
            plugins: Vec::new(),
            plugin_dir: None,
            plugin_timeout: 10.0,
            plugin_memory_mib: 512,
            cache_dir: None,
        }
    }
}

impl PluginArgs {
    /// The runtime with these limits and the plugins loaded (compiled ones from the cache).
    pub fn load(&self) -> Result<(Arc<Runtime>, Vec<LoadedPlugin>)> {
        let limits = Limits {
            memory_bytes: self.plugin_memory_mib << 20,
            call_timeout: std::time::Duration::from_secs_f64(self.plugin_timeout),
            ..Limits::default()
        };
        let runtime = Runtime::new(limits, self.cache_dir.clone().or_else(default_cache_dir))?;
        let plugins = load_plugins(&runtime, self.plugin_dir.as_ref(), &self.plugins)?;
        Ok((runtime, plugins))
    }
}

fn default_plugin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("LARMON_PLUGIN_DIR") {
        return Some(dir.into());
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.join("wasm32-wasip2/plugin"))
}

pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("larmon"))
}

/// Reads the detector configuration and the `[plugins.NAME]` tables.
pub fn read_config(
    path: Option<&Path>,
) -> Result<(DetectorConfig, BTreeMap<String, String>, ChecksConfig)> {
    let Some(path) = path else {
        return Ok((DetectorConfig::default(), BTreeMap::new(), ChecksConfig::default()));
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let mut plugin_configs = BTreeMap::new();
    if let Some(plugins) = table.remove("plugins") {
        let toml::Value::Table(plugins) = plugins else {
            bail!("{}: [plugins] must be a table", path.display())
        };
        for (name, value) in plugins {
            plugin_configs.insert(name, serde_json::to_string(&value)?);
        }
    }
    let checks = match table.remove("checks") {
        Some(toml::Value::Table(checks)) => {
            ChecksConfig::from_table(checks).with_context(|| format!("{}", path.display()))?
        }
        Some(_) => bail!("{}: [checks] must be a table", path.display()),
        None => ChecksConfig::default(),
    };
    let detector = DetectorConfig::from_table(table, path)?;
    Ok((detector, plugin_configs, checks))
}

/// Loads the bundled plugins and the --plugin ones (a --plugin replaces a bundled one of the
/// same name).
pub fn load_plugins(
    runtime: &Runtime,
    plugin_dir: Option<&PathBuf>,
    extra: &[PathBuf],
) -> Result<Vec<LoadedPlugin>> {
    let mut files: Vec<PathBuf> = Vec::new();
    let dir = plugin_dir.cloned().or_else(default_plugin_dir);
    if let Some(dir) = dir.filter(|d| d.is_dir()) {
        let mut bundled: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        bundled.sort();
        files.extend(bundled);
    }
    let mut loaded: Vec<LoadedPlugin> = Vec::new();
    for (k, path) in files.iter().chain(extra).enumerate() {
        let plugin = runtime.load_file(path)?;
        let explicit = k >= files.len();
        if let Some(i) = loaded.iter().position(|p| p.info().name == plugin.info().name) {
            if explicit {
                loaded[i] = plugin;
            }
            continue;
        }
        loaded.push(plugin);
    }
    if loaded.is_empty() {
        bail!(
            "no plugins: none in the plugin directory and no --plugin given (build them with `bash .ci/plugins`)"
        );
    }
    Ok(loaded)
}

/// What the reading thread sends each plugin's thread.
enum Work {
    /// A batch of a stream of the current file.
    Batch(&'static str, Arc<RecordBatch>),
    /// The current file (index in the run's file list) is complete.
    EndOfFile(usize),
}

/// Light events and charge triggers closer than this (10 MHz ticks) are one event (ndlar_flow
/// uses 30).
const LIGHT_MATCH_WINDOW_TICKS: i64 = 30;
/// Leading samples of a light waveform used for its baseline (2x2: 80 of 96 pre-trigger).
const LIGHT_BASELINE_SAMPLES: usize = 80;
/// Light events per batch handed to the plugins.
const LIGHT_EVENTS_PER_BATCH: usize = 64;

/// What a light file adds to the run's host statistics.
#[derive(serde::Serialize, serde::Deserialize, Default, Clone)]
pub struct LightStats {
    light_events: u64,
    light_waveforms: u64,
    light_missing_boards: u64,
    light_matched_events: u64,
}

impl LightStats {
    /// Adds another part of the same file.
    pub fn add(&mut self, other: &LightStats) {
        self.light_events += other.light_events;
        self.light_waveforms += other.light_waveforms;
        self.light_missing_boards += other.light_missing_boards;
        self.light_matched_events += other.light_matched_events;
    }
}

/// Reads a light file from `position` into the `light_events`, `light_waveforms` and
/// `light_matches` streams, matching against the run's charge triggers `(time ticks, event id)`;
/// the last `light_matches` batch holds the charge triggers inside this part's time span that no
/// light event matched. Returns the statistics and the position to continue from.
pub fn process_light_file(
    file: &Path,
    position: u64,
    map: &ChannelMap,
    charge_triggers: Vec<(i64, u64)>,
    emit: &mut dyn FnMut(&'static str, RecordBatch),
) -> Result<(LightStats, u64)> {
    let mut light = LightFile::open(file)?;
    light.seek(position)?;
    let mut matcher = Matcher::new(charge_triggers, LIGHT_MATCH_WINDOW_TICKS);
    let mut builder = LightBatchBuilder::new(map.clone(), LIGHT_BASELINE_SAMPLES);
    let mut stats = LightStats::default();
    let mut times: Vec<(u64, i64)> = Vec::new();
    let mut flush = |builder: &mut LightBatchBuilder,
                     times: &mut Vec<(u64, i64)>,
                     stats: &mut LightStats,
                     emit: &mut dyn FnMut(&'static str, RecordBatch)| {
        if builder.pending_events == 0 {
            return;
        }
        let (events, waveforms) = builder.finish();
        let matches = matcher.match_events(times);
        stats.light_matched_events += (matches.num_rows() - matches.column(1).null_count()) as u64;
        times.clear();
        emit("light_events", events);
        emit("light_waveforms", waveforms);
        emit("light_matches", matches);
    };
    light.for_each_event(|event| {
        builder.add(event);
        stats.light_events += 1;
        stats.light_waveforms += event.waveforms.len() as u64;
        stats.light_missing_boards += u64::from(event.missing_boards());
        times.push((event.event, event_time_ticks(event).unwrap_or(0)));
        if builder.pending_events >= LIGHT_EVENTS_PER_BATCH {
            flush(&mut builder, &mut times, &mut stats, emit);
        }
    })?;
    flush(&mut builder, &mut times, &mut stats, emit);
    let unmatched = matcher.unmatched_charge();
    if unmatched.num_rows() > 0 {
        emit("light_matches", unmatched);
    }
    Ok((stats, light.position()))
}

/// The charge triggers `(time on the 10 MHz clock, event id)` of calibrated events: Unix second
/// × 1e7 + (t0 mod 1e7).
pub fn charge_triggers_of(events: &[larmon_calibrate::output::EventRow]) -> Vec<(i64, u64)> {
    events
        .iter()
        .filter_map(|e| {
            let t0 = e.t0_ticks?;
            let in_second = (t0.round() as i64).rem_euclid(LIGHT_TICKS_PER_S);
            Some((e.unix_time as i64 * LIGHT_TICKS_PER_S + in_second, e.event_id))
        })
        .collect()
}

/// The charge triggers of a charge file, as a full pass over it with `calibrator` (the file's
/// own: same event ids) would find them.
fn triggers_of_charge_file(file: &Path, mut calibrator: Calibrator) -> Result<Vec<(i64, u64)>> {
    let mut reader = LarpixReader::open(file, &ReadOptions::default())?;
    let unit = match reader.kind() {
        larmon_ingest::read::FileKind::Raw => "messages",
        larmon_ingest::read::FileKind::Packets => "rows",
    };
    let bar = progress::bar(reader.progress_total(), unit);
    bar.set_prefix(format!("charge triggers of {}", file.display()));
    let mut triggers = Vec::new();
    while let Some(batch) = reader.next_batch()? {
        triggers.extend(charge_triggers_of(&calibrator.push(&batch).events));
        bar.set_position(reader.progress_done());
    }
    triggers.extend(charge_triggers_of(&calibrator.finish().events));
    bar.finish_and_clear();
    Ok(triggers)
}

/// Ids of events and tracks of file k start at k << 40, unique across the files of a run.
const FILE_ID_SHIFT: u32 = 40;

/// The detector's calibration inputs, read once per run; a fresh calibrator per file.
pub struct RunCalibration {
    detector: DetectorConfig,
    /// The pixel layout (also what the plugins get as the `pixels` stream).
    pub geometry: Geometry,
    channel_table: ChannelTable,
}

impl RunCalibration {
    /// Reads the layout and channel constants the configuration names.
    pub fn new(detector: DetectorConfig) -> Result<Self> {
        let geometry = detector.geometry().context("reading the detector layout")?;
        let channel_table = detector.channels().context("reading the channel constants")?;
        Ok(Self { detector, geometry, channel_table })
    }

    /// The calibrator of the run's `index`-th file: its event and track ids start at
    /// `index << 40`, unique across the run.
    pub fn for_file(&self, index: usize) -> Result<Calibrator> {
        let calibrator = Calibrator::with_tables(
            self.detector.clone(),
            self.geometry.clone(),
            self.channel_table.clone(),
        )
        .context("setting up the calibration")?;
        Ok(calibrator.starting_ids_at((index as u64) << FILE_ID_SHIFT))
    }
}

/// Per-file output of a shard: DIR/<run>/shards/file-<k>/.
pub fn file_dir(run_dir: &Path, file_index: usize) -> PathBuf {
    run_dir.join("shards").join(format!("file-{file_index:06}"))
}

/// A file a shard writes per input file and plugin: `extension` "snapshot" (the plugin's
/// state) or "log.json" (its captured log).
pub fn shard_plugin_file(run_dir: &Path, index: usize, plugin: &str, extension: &str) -> PathBuf {
    file_dir(run_dir, index).join(format!("{}.{extension}", safe_name(plugin)))
}

/// A plugin instance with its configuration, given the detector's pixels before any data
/// (every instance gets them: per-file ones and those that only merge).
pub fn open_instance(
    plugin: &LoadedPlugin,
    runtime: &Runtime,
    config: &str,
    pixels: &RecordBatch,
) -> Result<larmon_runtime::PluginRun, String> {
    let mut instance = plugin.open(runtime, config)?;
    instance.consume("pixels", pixels)?;
    Ok(instance)
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

/// Sums the numeric fields of per-file host statistics.
pub fn add_host_stats(total: &mut serde_json::Value, file: &serde_json::Value) {
    let (Some(total), Some(file)) = (total.as_object_mut(), file.as_object()) else { return };
    for (key, value) in file {
        let sum = total.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0)
            + value.as_u64().unwrap_or(0);
        total.insert(key.clone(), sum.into());
    }
}

/// Widens a time span by another.
pub fn join_span(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> Option<(u64, u64)> {
    match (a, b) {
        (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
        (a, b) => a.or(b),
    }
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let (detector, plugin_configs, checks) = read_config(args.config.as_deref())?;
    let (runtime, plugins) = args.plugin_args.load()?;
    let run_name = args.run.clone().unwrap_or_else(|| {
        args.files[0].file_stem().map_or("run".into(), |s| s.to_string_lossy().into_owned())
    });
    let run_dir = args.out.join(&run_name);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;

    // Every file is an independent unit: its own calibration and its own plugin instances,
    // whose snapshots are merged into the run in file order. A run split over many nodes
    // (--shard, then `larmon merge`) therefore gives exactly the single-node answer.
    let calibration = RunCalibration::new(detector)?;
    let pixels = Arc::new(pixels_record_batch(&calibration.geometry));
    let light_map = super::light::load_channel_map(args.light_channel_map.as_deref())?;
    let file_range = match args.shard {
        Some(shard) => shard_files(args.files.len(), shard),
        None => 0..args.files.len(),
    };
    let sharded = args.shard.is_some();
    let mut span: Option<(u64, u64)> = None;
    let mut host = serde_json::json!({});
    let entries = std::thread::scope(|scope| -> Result<Vec<PluginEntry>> {
        let mut senders = Vec::new();
        let mut workers = Vec::new();
        for plugin in &plugins {
            let (tx, rx) = sync_channel::<Work>(4);
            senders.push(tx);
            let config =
                plugin_configs.get(&plugin.info().name).cloned().unwrap_or_else(|| "{}".into());
            let (runtime, run_dir, pixels) = (&runtime, &run_dir, pixels.clone());
            workers.push(scope.spawn(move || {
                let open = |config: &str| open_instance(plugin, runtime, config, &pixels);
                let mut run =
                    if sharded { Err("sharded: no report".to_string()) } else { open(&config) };
                let mut file_instance: Option<Result<larmon_runtime::PluginRun, String>> = None;
                let mut failure: Option<String> = None;
                let mut logs = Vec::new();
                for work in rx {
                    match work {
                        Work::Batch(stream, batch) => {
                            if let Ok(instance) = file_instance.get_or_insert_with(|| open(&config))
                            {
                                let _ = instance.consume(stream, &batch); // a failure is kept
                            }
                        }
                        Work::EndOfFile(index) => {
                            let instance = file_instance.take().unwrap_or_else(|| open(&config));
                            let snapshot = instance.and_then(|mut i| {
                                let log = i.log();
                                if sharded {
                                    let path = shard_plugin_file(
                                        run_dir,
                                        index,
                                        &plugin.info().name,
                                        "log.json",
                                    );
                                    let text = serde_json::to_string(&log).unwrap_or_default();
                                    let _ = write_atomically(&path, text.as_bytes());
                                }
                                logs.extend(log);
                                i.snapshot()
                            });
                            let outcome = match (snapshot, sharded) {
                                (Ok(bytes), true) => write_atomically(
                                    &shard_plugin_file(
                                        run_dir,
                                        index,
                                        &plugin.info().name,
                                        "snapshot",
                                    ),
                                    &bytes,
                                )
                                .map_err(|e| format!("writing the snapshot: {e}")),
                                (Ok(bytes), false) => match run.as_mut() {
                                    Ok(run) => run.merge(&bytes),
                                    Err(e) => Err(e.clone()),
                                },
                                (Err(e), _) => Err(e),
                            };
                            if let Err(e) = outcome {
                                failure.get_or_insert(format!("file {}: {e}", index + 1));
                            }
                        }
                    }
                }
                (failure, logs, if sharded { None } else { Some(run) })
            }));
        }
        let broadcast = |stream: &'static str, batch: RecordBatch| {
            if batch.num_rows() == 0 {
                return;
            }
            let batch = Arc::new(batch);
            for tx in &senders {
                let _ = tx.send(Work::Batch(stream, batch.clone()));
            }
        };
        // Charge triggers of the run (time on the 10 MHz clock, event id), for light matching.
        let charge_triggers = std::cell::RefCell::new(Vec::<(i64, u64)>::new());
        let send_calibrated = |done: larmon_calibrate::output::CalibratedBatch| {
            charge_triggers.borrow_mut().extend(charge_triggers_of(&done.events));
            broadcast("hits", hits_record_batch(&done.hits));
            broadcast("events", events_record_batch(&done.events));
            broadcast("tracks", tracks_record_batch(&done.tracks));
            broadcast("track_segments", segments_record_batch(&done.segments));
            broadcast("track_pixels", track_pixels_record_batch(&done.track_pixels));
        };
        let total: u64 = args.files[file_range.clone()]
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        let bar = progress::bar(total, "bytes");
        bar.set_prefix("processing");
        let mut done_bytes = 0;
        // Charge files first (their triggers are what light events are matched to), then light
        // files, each in the order given.
        let (light_files, charge_files): (Vec<usize>, Vec<usize>) =
            file_range.clone().partition(|&i| is_light_file(&args.files[i]));
        if sharded && !light_files.is_empty() {
            // Light events are matched to the triggers of the whole run: a shard with light
            // files also calibrates the run's other charge files, for their triggers only.
            let others: Vec<usize> = (0..args.files.len())
                .filter(|i| !file_range.contains(i) && !is_light_file(&args.files[*i]))
                .collect();
            for index in others {
                let file = &args.files[index];
                let triggers = triggers_of_charge_file(file, calibration.for_file(index)?)
                    .with_context(|| {
                        format!("{}: charge triggers for light matching", file.display())
                    })?;
                charge_triggers.borrow_mut().extend(triggers);
            }
        }
        let in_order = charge_files.into_iter().map(|i| (i, false));
        for (index, light) in in_order.chain(light_files.into_iter().map(|i| (i, true))) {
            let file = &args.files[index];
            let (stats, file_span) = if light {
                let triggers = charge_triggers.borrow().clone();
                let (stats, _) =
                    process_light_file(file, 0, &light_map, triggers, &mut |stream, batch| {
                        broadcast(stream, batch)
                    })?;
                (serde_json::to_value(&stats)?, None)
            } else {
                let mut calibrator = calibration.for_file(index)?;
                let mut file_span = None;
                let reader = LarpixReader::open(file, &ReadOptions::default())?;
                for batch in reader {
                    let batch = batch?;
                    // The data's time span: Unix seconds of the type-4 (timestamp) rows.
                    for (kind, seconds) in batch.packet_type.iter().zip(&batch.timestamp) {
                        if *kind == 4 {
                            file_span = join_span(file_span, Some((*seconds, *seconds)));
                        }
                    }
                    send_calibrated(calibrator.push(&batch));
                    broadcast("packets", packets_record_batch(batch));
                }
                send_calibrated(calibrator.finish());
                (serde_json::to_value(calibrator.stats())?, file_span)
            };
            for tx in &senders {
                let _ = tx.send(Work::EndOfFile(index));
            }
            if sharded {
                let manifest = FileManifest {
                    file: file.clone(),
                    index,
                    host: stats.clone(),
                    span: file_span,
                    plugins: plugins
                        .iter()
                        .map(|p| (p.info().name.clone(), p.sha256().to_string()))
                        .collect(),
                };
                write_atomically(
                    &file_dir(&run_dir, index).join("manifest.json"),
                    serde_json::to_string_pretty(&manifest)?.as_bytes(),
                )?;
            }
            add_host_stats(&mut host, &stats);
            span = join_span(span, file_span);
            done_bytes += std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
            bar.set_position(done_bytes);
        }
        bar.finish_and_clear();
        drop(senders);
        let mut entries = Vec::new();
        for (plugin, worker) in plugins.iter().zip(workers) {
            let (failure, logs, run) = worker.join().expect("plugin thread");
            if let Some(run) = run {
                entries.push(finish_plugin(plugin, run, failure, logs, &run_dir));
            } else if let Some(failure) = failure {
                eprintln!("warning: {}: {failure}", plugin.info().name);
            }
        }
        Ok(entries)
    })?;
    if let Some((i, n)) = args.shard {
        println!(
            "{run_name}: shard {i}/{n}: files {}..{} of {} -> {} in {:.2} s",
            file_range.start + 1,
            file_range.end,
            args.files.len(),
            run_dir.join("shards").display(),
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }

    write_report(&run_name, &run_dir, args.files.clone(), span, host, entries, &checks, started)
}

/// Evaluates the configured checks, rolls up the quality flag and writes report.json.
#[allow(clippy::too_many_arguments)]
pub fn write_report(
    run_name: &str,
    run_dir: &Path,
    files: Vec<PathBuf>,
    span: Option<(u64, u64)>,
    host: serde_json::Value,
    entries: Vec<PluginEntry>,
    checks: &ChecksConfig,
    started: Instant,
) -> Result<()> {
    let host_checks = larmon_report::evaluate(checks, &entries);
    let flag = larmon_report::run_flag(&entries, &host_checks);
    let report = RunReport {
        run: run_name.to_string(),
        files,
        larmon_version: env!("CARGO_PKG_VERSION").into(),
        created_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
        start_unix_s: span.map(|s| s.0),
        end_unix_s: span.map(|s| s.1),
        host,
        quality: Quality { flag: Some(flag), host_checks },
        plugins: entries,
    };
    let path = run_dir.join("report.json");
    write_atomically(&path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    let failed: Vec<&str> =
        report.plugins.iter().filter(|p| p.status != "ok").map(|p| p.name.as_str()).collect();
    println!(
        "{}: quality {}, {} plugins ({} failed{}), {} figures -> {} in {:.2} s",
        run_name,
        flag.as_str(),
        report.plugins.len(),
        failed.len(),
        if failed.is_empty() { String::new() } else { format!(": {}", failed.join(", ")) },
        report.plugins.iter().map(|p| p.figures.len()).sum::<usize>(),
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes a file through a temporary name and a rename (never half-written under its name).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, path)
}

/// Asks a plugin's run instance for its report and writes its figures. `failure` is the first
/// error of a per-file instance; `file_logs` their captured logs.
pub fn finish_plugin(
    plugin: &LoadedPlugin,
    run: Result<larmon_runtime::PluginRun, String>,
    failure: Option<String>,
    file_logs: Vec<String>,
    run_dir: &Path,
) -> PluginEntry {
    let info = plugin.info();
    let (result, mut log) = match run {
        Ok(mut run) => {
            let report = run.report();
            (report, run.log())
        }
        Err(e) => (Err(format!("open failed: {e}")), Vec::new()),
    };
    log.splice(0..0, file_logs);
    let result = match failure {
        Some(f) => Err(f),
        None => result,
    };
    let mut entry = PluginEntry {
        name: info.name.clone(),
        version: info.version.clone(),
        description: info.description.clone(),
        file: plugin.label().into(),
        sha256: plugin.sha256().into(),
        status: "ok".into(),
        error: None,
        load: LoadEntry {
            source: format!("{:?}", plugin.compile_source()),
            milliseconds: plugin.load_time().as_secs_f64() * 1e3,
        },
        metrics: Vec::new(),
        checks: Vec::new(),
        figures: Vec::new(),
        results: Default::default(),
        log,
    };
    match result {
        Ok(PluginReport { figures, metrics, checks, results }) => {
            entry.metrics = metrics
                .into_iter()
                .map(|m| Metric { name: m.name, value: m.value, error: m.error, unit: m.unit })
                .collect();
            entry.checks = checks
                .into_iter()
                .map(|c| Check {
                    name: c.name,
                    status: match c.status {
                        larmon_runtime::CheckStatus::Ok => Status::Ok,
                        larmon_runtime::CheckStatus::Warning => Status::Warning,
                        larmon_runtime::CheckStatus::Error => Status::Error,
                    },
                    message: c.message,
                })
                .collect();
            entry.results = results;
            let dir = run_dir.join(safe_name(&info.name));
            let _ = std::fs::create_dir_all(&dir);
            for figure in figures {
                let stem = safe_name(&figure.name);
                let (svg, data) = (format!("{stem}.svg"), format!("{stem}.json"));
                let written = std::fs::write(dir.join(&svg), &figure.svg)
                    .and_then(|()| std::fs::write(dir.join(&data), &figure.data_json));
                if let Err(e) = written {
                    entry.status = "error".into();
                    entry.error = Some(format!("writing figure {stem}: {e}"));
                }
                let prefix = safe_name(&info.name);
                entry.figures.push(FigureFiles {
                    name: figure.name,
                    title: figure.title,
                    svg: format!("{prefix}/{svg}"),
                    data: format!("{prefix}/{data}"),
                });
            }
        }
        Err(e) => {
            entry.status = "error".into();
            entry.error = Some(e);
        }
    }
    entry
}

/// A file-name-safe version of a plugin-chosen name (no path separators, no dots first).
pub fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    if cleaned.is_empty() { "unnamed".into() } else { cleaned }
}
