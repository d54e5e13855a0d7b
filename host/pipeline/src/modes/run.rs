//! A run in one pass: its files read in order (charge files first, then light files), each
//! calibrated as its own stream and fed to per-file plugin instances on their own threads,
//! whose snapshots are merged in file order into the run's report. With a shard, only a share
//! of the files is processed and the per-file snapshots are written for [`super::shards`] to
//! merge — the same snapshots in the same order, so many nodes give the one-node answer.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Condvar, Mutex};

use arrow::array::RecordBatch;
use larmon_calibrate::output::{CalibratedBatch, pixels_record_batch};
use larmon_catalog::runs::RunDatabase;
use larmon_ingest::arrow::packets_record_batch;
use larmon_ingest::channel_activity::ChannelActivity;
use larmon_ingest::light::is_light_file;
use larmon_ingest::read::ReadOptions;
use larmon_report::PluginEntry;
use larmon_report::store::VERSIONS;
use larmon_runtime::{PluginFailure, PluginRun};

use crate::config::LarmonConfig;
use crate::error::{IoContext, PipelineError, Result};
use crate::input::charge::{
    ChargeSource, ChargeTrigger, RunCalibration, charge_triggers_of, triggers_of_charge_file,
};
use crate::input::light::{load_channel_map, process_light_file};
use crate::input::{add_host_stats, join_span, widen_by_timestamps};
use crate::modes::naming::{check_version_name, default_run_name};
use crate::modes::shards::{FileManifest, Shard, file_dir, shard_plugin_file};
use crate::output::report::{RunTotals, WrittenReport, provenance, unusable_entry, write_report};
use crate::output::write_atomically;
use crate::plugins::merge::PluginMerge;
use crate::plugins::{PluginSet, open_instance};
use crate::progress::Progress;
use crate::streams::Stream;

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The run's raw, packet and light files, in order.
    pub files: Vec<PathBuf>,
    /// Output directory (the report goes to `out/<run>/`).
    pub out: PathBuf,
    /// Run name (default: [`default_run_name`] of the files).
    pub run: Option<String>,
    /// The 2x2 run database: names the run after its global run.
    pub run_db: Option<RunDatabase>,
    /// Light channel → detector map (JSON); default: the 2x2 map.
    pub light_channel_map: Option<PathBuf>,
    /// Process only this shard of the files.
    pub shard: Option<Shard>,
    /// A reviewer's version name: the report goes to `out/<run>/versions/<name>/` and the
    /// official report of the run is never touched. Not with `shard`.
    pub version: Option<String>,
}

/// What a run wrote.
pub enum RunOutcome {
    /// The run's report.
    Report(Box<WrittenReport>),
    /// One shard's per-file snapshots.
    Shard {
        /// The run's name.
        run: String,
        /// Which shard.
        shard: Shard,
        /// The files (indices into the run's list) this shard processed.
        files: Range<usize>,
        /// Where the snapshots are (`out/<run>/shards/`).
        dir: PathBuf,
        /// Plugins that failed on this shard's files: (plugin, first failure).
        failures: Vec<(String, String)>,
    },
}

/// Batches a plugin's thread may lag behind the reading thread. The batches are shared, so a
/// deeper queue costs only the batches the slowest plugin has not read yet; with 4 the reading
/// thread often waited on the slowest plugin while the others sat idle (`larmon run` of a
/// 200 s 2x2 run, 2026-12-05: 4.2–4.4 s at 4, 3.9–4.0 s at 16, no better at 64). Since the
/// plugins got faster, 8 is as fast as 16 (2.08–2.15 s against 2.13–2.17 s, `perf stat -r 5`
/// twice) and a 27-file run peaks 15 MB lower (374 against 389 MB). Since batches go only to
/// the plugins that read them (2026-12-07), the reading thread runs further ahead and the
/// queues fill: 4 is as fast as 8 (wall median 2.02 against 2.06 s, 6 interleaved pairs) and
/// the 27-file run peaks at 288–292 MB, not 294–307 (285–289 before the change).
const PLUGIN_QUEUE_BATCHES: usize = 4;

/// What the reading thread sends each plugin's thread.
enum Work {
    /// A file begins: its instance opens now, as the file's memory peaks come at its end
    /// (a plugin may get no batch before the file's last step: the `channels` sums).
    StartOfFile,
    /// A batch of a stream of the current file (sent only to the plugins that read it).
    Batch(Stream, Arc<RecordBatch>),
    /// The current file (index in the run's file list) is complete; `more`: another file
    /// follows.
    EndOfFile { index: usize, more: bool },
    /// Every file was read: report the merged run (sent only when the whole run was read, so
    /// a run that failed writes no figures).
    Report,
}

/// What a plugin's thread hands back: its report entry (none when sharded or when the run
/// failed) and its first failure.
struct PluginOutcome {
    entry: Option<PluginEntry>,
    failure: Option<String>,
}

/// Runs the plot plugins over the files of one run (or one shard of them).
///
/// Each plugin runs sandboxed in its own thread; one that fails is reported with its reason
/// while the others go on. The error is for larmon's own failures (unreadable files, a full
/// disk), never for a plugin's.
pub fn run_files(
    options: &RunOptions,
    config: &LarmonConfig,
    plugins: &PluginSet,
    progress: &dyn Progress,
) -> Result<RunOutcome> {
    let run_name = options
        .run
        .clone()
        .unwrap_or_else(|| default_run_name(&options.files, options.run_db.as_ref()));
    let run_dir = match &options.version {
        None => options.out.join(&run_name),
        Some(version) => {
            check_version_name(version)?;
            if options.shard.is_some() {
                return Err(PipelineError::Version(
                    "a reviewer version is one pass over the run's files, not a shard".into(),
                ));
            }
            options.out.join(&run_name).join(VERSIONS).join(version)
        }
    };
    std::fs::create_dir_all(&run_dir).at(&run_dir)?;

    // Every file is an independent unit: its own calibration and its own plugin instances,
    // whose snapshots are merged into the run in file order. A run split over many nodes
    // (shards, then a merge) therefore gives exactly the single-node answer.
    let calibration = RunCalibration::new(config.detector.clone())?;
    let pixels = Arc::new(pixels_record_batch(&calibration.geometry));
    let light_map = load_channel_map(options.light_channel_map.as_deref(), &config.detector)?;
    let files = &options.files;
    let file_range = match options.shard {
        Some(shard) => shard.files(files.len()),
        None => 0..files.len(),
    };
    let sharded = options.shard.is_some();
    let (runtime, loaded) = (&plugins.runtime, &plugins.plugins);
    let mut span: Option<(u64, u64)> = None;
    let mut host = serde_json::json!({});
    let budgets = plugins.budgets();
    // Memory peaks where plugins meet their big moments together: at each file's end (the
    // file's snapshot, the run's state merged back) and in the reports. One plugin merges at a
    // time, and as many report at once as there are cores: on 2 cores that costs no time, and
    // a 27-file run of the 2x2 peaked 35 MB higher with every plugin at it together.
    let merge_turns = Turns::new(1);
    let report_turns =
        Turns::new(std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get));
    let outcomes = std::thread::scope(|scope| -> Result<Vec<PluginOutcome>> {
        let mut senders = Vec::new();
        let mut workers = Vec::new();
        for (plugin, budget) in loaded.iter().zip(&budgets) {
            let (tx, rx) = sync_channel::<Work>(PLUGIN_QUEUE_BATCHES);
            senders.push(tx);
            let plugin_config = config.settings_for(plugin.info());
            let (run_dir, pixels) = (&run_dir, pixels.clone());
            let (merge_turns, report_turns) = (&merge_turns, &report_turns);
            // Named after the plugin: it shows in `top -H`, `perf` and a panic's message.
            let thread = std::thread::Builder::new().name(plugin.info().name.clone());
            let worker = thread.spawn_scoped(scope, move || {
                let open = || open_instance(plugin, runtime, &plugin_config, &pixels, budget);
                // The run instance: the first file's own instance, then the snapshots of
                // the others merged into it (a shard only writes its files' snapshots).
                let mut merge: Option<PluginMerge> = None;
                let mut file_instance: Option<Result<PluginRun, PluginFailure>> = None;
                let mut failure: Option<String> = None;
                let mut report = false;
                for work in rx {
                    match work {
                        Work::StartOfFile => {
                            let _ = file_instance.get_or_insert_with(open);
                        }
                        Work::Batch(stream, batch) => {
                            if let Ok(instance) = file_instance.get_or_insert_with(open) {
                                let _ = instance.consume(stream.name(), &batch); // kept
                            }
                        }
                        Work::EndOfFile { index, more } => {
                            let _turn = (!sharded).then(|| merge_turns.take());
                            let instance = file_instance.take().unwrap_or_else(open);
                            let source = format!("file {}", index + 1);
                            if sharded {
                                let snapshot = instance.and_then(|mut i| {
                                    let path = shard_plugin_file(
                                        run_dir,
                                        index,
                                        &plugin.info().name,
                                        "log.json",
                                    );
                                    let text = serde_json::to_string(&i.log()).unwrap_or_default();
                                    let _ = write_atomically(&path, text.as_bytes());
                                    i.snapshot()
                                });
                                let path = shard_plugin_file(
                                    run_dir,
                                    index,
                                    &plugin.info().name,
                                    "snapshot",
                                );
                                let written =
                                    snapshot.map_err(|e| e.to_string()).and_then(|bytes| {
                                        write_atomically(&path, &bytes)
                                            .map_err(|e| format!("writing the snapshot: {e}"))
                                    });
                                if let Err(e) = written {
                                    failure.get_or_insert(format!("{source}: {e}"));
                                }
                                continue;
                            }
                            // An instance that failed goes the snapshot way, so its failure
                            // is reported with the file it came from.
                            let merge = match (merge.as_mut(), instance) {
                                (None, Ok(first)) if first.failure().is_none() => {
                                    merge.insert(PluginMerge::adopt(plugin, first))
                                }
                                (_, instance) => {
                                    let merge = merge.get_or_insert_with(|| {
                                        PluginMerge::open(
                                            plugin,
                                            runtime,
                                            &plugin_config,
                                            &pixels,
                                            budget,
                                        )
                                    });
                                    let snapshot = instance.and_then(|mut i| {
                                        merge.add_logs(i.log());
                                        i.snapshot()
                                    }); // the file's instance is dropped before the run's is back
                                    merge.unpark(open);
                                    merge.add(&source, snapshot.as_deref());
                                    merge
                                }
                            };
                            if more {
                                // The next file's instance alone in memory (see `park`), and
                                // the merged run instance gone before any plugin opens one.
                                merge.park();
                            }
                        }
                        Work::Report => report = true,
                    }
                }
                // Each plugin reports on its own thread, beside the others (the reports render
                // figures: a serial loop over them took a second of a 200 s run).
                // The largest states report first: their reports take longest (pixel-maps'
                // maps of 337 k pixels, waiting behind the small reports, were the last
                // ~0.5 s of a 200 s 2x2 file's run alone on one core), and their memory is
                // freed soonest.
                let entry = report.then(|| {
                    let state_bytes = merge.as_ref().map_or(0, PluginMerge::state_bytes);
                    let _turn = report_turns.take_first_if_highest(state_bytes);
                    let mut merge = merge.unwrap_or_else(|| {
                        PluginMerge::open(plugin, runtime, &plugin_config, &pixels, budget)
                    });
                    merge.unpark(open);
                    merge.finish(run_dir)
                });
                PluginOutcome { entry, failure }
            });
            workers.push(worker.map_err(|source| PipelineError::Thread {
                what: format!("plugin {}", plugin.info().name),
                source,
            })?);
        }
        // A batch goes only to the plugins that asked for its stream: the others would be
        // woken for nothing (four light plugins and fifo-flags, ~1 000 times each in a 200 s
        // 2x2 file), and the reading thread would wake them.
        let broadcast = |stream: Stream, batch: Arc<RecordBatch>| {
            if batch.num_rows() == 0 {
                return;
            }
            for (tx, plugin) in senders.iter().zip(loaded.iter()) {
                if plugin.wants(stream.name()) {
                    let _ = tx.send(Work::Batch(stream, batch.clone()));
                }
            }
        };
        // The `channels` stream is summed only when a plugin asks for it.
        let mut activity =
            loaded.iter().any(|p| p.wants(Stream::Channels.name())).then(ChannelActivity::new);
        // Charge triggers of the run (time on the 10 MHz clock, event id, charge), for light
        // matching.
        let mut charge_triggers = Vec::<ChargeTrigger>::new();
        let total: u64 = files[file_range.clone()]
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        let bar = progress.bar("processing", total, "bytes");
        let mut done_bytes = 0;
        // Charge files first (their triggers are what light events are matched to), then light
        // files, each in the order given.
        let (light_files, charge_files): (Vec<usize>, Vec<usize>) =
            file_range.clone().partition(|&i| is_light_file(&files[i]));
        if sharded && !light_files.is_empty() {
            // Light events are matched to the triggers of the whole run: a shard with light
            // files also calibrates the run's other charge files, for their triggers only.
            let others =
                (0..files.len()).filter(|i| !file_range.contains(i) && !is_light_file(&files[*i]));
            for index in others {
                charge_triggers.extend(triggers_of_charge_file(
                    &files[index],
                    &calibration,
                    index,
                    progress,
                )?);
            }
        }
        // Kept only for light files to match: a run without any (most of them) does not hold a
        // trigger list that grows with its length.
        let match_light = !light_files.is_empty();
        let in_order = charge_files.into_iter().map(|i| (i, false));
        let in_order = in_order.chain(light_files.into_iter().map(|i| (i, true)));
        for (position, (index, light)) in in_order.enumerate() {
            let file = &files[index];
            let more = position + 1 < file_range.len();
            for tx in &senders {
                let _ = tx.send(Work::StartOfFile);
            }
            let (stats, file_span) = if light {
                let (stats, _) = process_light_file(
                    file,
                    0,
                    &light_map,
                    charge_triggers.clone(),
                    &mut |stream, batch| broadcast(stream, Arc::new(batch)),
                )?;
                (serde_json::to_value(&stats).expect("plain statistics"), None)
            } else {
                let mut source = calibration.open_file(file, index, &ReadOptions::default())?;
                let mut file_span = None;
                let mut hand_over = |source: &ChargeSource, done: CalibratedBatch| {
                    if match_light {
                        charge_triggers.extend(charge_triggers_of(&done.events));
                    }
                    for (stream, batch) in source.batches(done) {
                        broadcast(stream, batch);
                    }
                };
                while let Some(step) = source.next_step()? {
                    hand_over(&source, step.calibrated);
                    if let Some(packets) = step.packets {
                        widen_by_timestamps(&mut file_span, &packets);
                        if let Some(activity) = activity.as_mut() {
                            for batch in activity.add(&packets) {
                                broadcast(Stream::Channels, Arc::new(batch));
                            }
                        }
                        broadcast(Stream::Packets, Arc::new(packets_record_batch(packets)));
                    }
                }
                // A file's channel sums in one go: a few hundred thousand rows for the 2x2,
                // however many packets it had. The run's last file sends them as soon as its
                // last packet is read, before the calibrator's last events: the plugins that
                // read them (pixel-maps, channel-health) have the longest reports, which then
                // start first. Other files send them last: those two plugins then also merge
                // their files last (the largest states: merged first, they held the one merge
                // turn while the others' queues filled and stopped the reading of the next
                // file; a 27-file run took 64-68 s against 58-63 s).
                let mut send_channel_sums = || {
                    for batch in activity.as_mut().map(ChannelActivity::flush).unwrap_or_default() {
                        broadcast(Stream::Channels, Arc::new(batch));
                    }
                };
                if !more {
                    send_channel_sums();
                }
                let rest = source.finish();
                hand_over(&source, rest);
                if more {
                    send_channel_sums();
                }
                file_span = join_span(file_span, source.span());
                (source.host_stats(), file_span)
            };
            for tx in &senders {
                let _ = tx.send(Work::EndOfFile { index, more });
            }
            release_free_memory();
            if sharded {
                let manifest = FileManifest {
                    file: file.clone(),
                    index,
                    host: stats.clone(),
                    span: file_span,
                    plugins: loaded
                        .iter()
                        .map(|p| (p.info().name.clone(), p.sha256().to_string()))
                        .collect(),
                };
                let path = file_dir(&run_dir, index).join("manifest.json");
                let text = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
                write_atomically(&path, text.as_bytes()).at(&path)?;
            }
            add_host_stats(&mut host, &stats);
            span = join_span(span, file_span);
            done_bytes += std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
            bar.set_position(done_bytes);
        }
        bar.finish();
        for tx in &senders {
            let _ = tx.send(Work::Report);
        }
        drop(senders);
        Ok(workers.into_iter().map(|w| w.join().expect("plugin thread")).collect())
    })?;
    if let Some(shard) = options.shard {
        let failures = loaded
            .iter()
            .zip(outcomes)
            .filter_map(|(p, o)| o.failure.map(|f| (p.info().name.clone(), f)))
            .collect();
        return Ok(RunOutcome::Shard {
            run: run_name,
            shard,
            files: file_range,
            dir: run_dir.join("shards"),
            failures,
        });
    }
    let mut entries: Vec<PluginEntry> = outcomes.into_iter().filter_map(|o| o.entry).collect();
    entries.extend(plugins.unusable.iter().map(|(file, reason)| unusable_entry(file, reason)));
    let totals = RunTotals {
        files: files.clone(),
        span,
        host,
        detector: calibration.summary(),
        provenance: provenance(config, calibration.sha256(), plugins),
        version: options.version.clone(),
    };
    Ok(RunOutcome::Report(Box::new(write_report(&run_name, &run_dir, totals, entries, config)?)))
}

/// A number of turns that threads take and give back (a counting semaphore); a turn given
/// back goes to the waiting thread of the highest priority, and among equals to the one that
/// has waited longest (merges keep the order in which plugins finished their files).
struct Turns {
    state: Mutex<TurnState>,
    given_back: Condvar,
}

struct TurnState {
    free: usize,
    /// The next thread's place in the queue.
    next_ticket: u64,
    /// (priority, place) of the threads waiting for a turn.
    waiting: Vec<(usize, u64)>,
}

impl TurnState {
    /// Whether the thread at (priority, place) goes next.
    fn goes_next(&self, me: (usize, u64)) -> bool {
        let first = |(p, t): &(usize, u64)| (*p, std::cmp::Reverse(*t));
        self.free > 0 && self.waiting.iter().max_by_key(|w| first(w)) == Some(&me)
    }
}

/// A turn, given back when dropped.
struct Turn<'a>(&'a Turns);

impl Turns {
    fn new(turns: usize) -> Self {
        let state = TurnState { free: turns.max(1), next_ticket: 0, waiting: Vec::new() };
        Self { state: Mutex::new(state), given_back: Condvar::new() }
    }

    /// Waits for a free turn.
    fn take(&self) -> Turn<'_> {
        self.take_first_if_highest(0)
    }

    /// Waits for a free turn that no waiting thread of a higher `priority`, or of the same
    /// priority that came earlier, wants.
    fn take_first_if_highest(&self, priority: usize) -> Turn<'_> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let me = (priority, state.next_ticket);
        state.next_ticket += 1;
        state.waiting.push(me);
        let mut state = self
            .given_back
            .wait_while(state, |s| !s.goes_next(me))
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.free -= 1;
        state.waiting.retain(|w| *w != me);
        // A second free turn may be for the next waiter.
        self.given_back.notify_all();
        Turn(self)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).free += 1;
        // Every waiter checks whether it goes next.
        self.0.given_back.notify_all();
    }
}

/// Hands memory freed by the file back to the system (glibc keeps it in per-thread arenas,
/// where a run of many files made with threads per file piles it up).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::Turns;

    /// No more threads hold a turn at once than there are turns, and every thread gets one.
    #[test]
    fn turns_let_as_many_threads_in_as_there_are_turns() {
        for turns in [1, 2, 3] {
            let gate = Turns::new(turns);
            let (inside, most, done) =
                (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
            std::thread::scope(|scope| {
                for _ in 0..8 {
                    scope.spawn(|| {
                        let _turn = gate.take();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(5));
                        inside.fetch_sub(1, Ordering::SeqCst);
                        done.fetch_add(1, Ordering::SeqCst);
                    });
                }
            });
            assert_eq!(done.load(Ordering::SeqCst), 8);
            let most = most.load(Ordering::SeqCst);
            assert!((1..=turns).contains(&most), "{most} threads inside with {turns} turns");
        }
    }

    /// Waits until `count` threads wait for a turn of `gate`.
    fn wait_for_waiters(gate: &Turns, count: usize) {
        while gate.state.lock().unwrap().waiting.len() < count {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A turn given back goes to the waiting thread of the highest priority.
    #[test]
    fn turns_go_to_the_highest_priority_first() {
        let gate = Turns::new(1);
        let order = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            let held = gate.take();
            for priority in [3, 50, 7, 20] {
                let (gate, order) = (&gate, &order);
                scope.spawn(move || {
                    let _turn = gate.take_first_if_highest(priority);
                    order.lock().unwrap().push(priority);
                });
            }
            // Every thread waits before the turn is given back.
            wait_for_waiters(&gate, 4);
            drop(held);
        });
        assert_eq!(*order.lock().unwrap(), [50, 20, 7, 3]);
    }

    /// Among threads of one priority, a turn goes to the one that has waited longest.
    #[test]
    fn turns_of_one_priority_go_in_the_order_asked() {
        let gate = Turns::new(1);
        let order = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            let held = gate.take();
            for k in 0..6 {
                let (gate, order) = (&gate, &order);
                wait_for_waiters(gate, k); // one at a time into the queue
                scope.spawn(move || {
                    let _turn = gate.take();
                    order.lock().unwrap().push(k);
                });
            }
            wait_for_waiters(&gate, 6);
            drop(held);
        });
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4, 5]);
    }
}
