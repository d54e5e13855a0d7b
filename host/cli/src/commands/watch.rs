//! `larmon watch DIR --out OUT`: realtime DQM of a DAQ output folder. The watcher itself is
//! `larmon_pipeline::DaqWatch`; this command wakes it on inotify events (polling as a fallback),
//! rewrites the reports of the runs that changed, prints what happened and optionally serves
//! the dashboard.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::Result;
use larmon_pipeline::modes::watch::DEFAULT_RUN_PATTERN;
use larmon_pipeline::output::notify::FlagNotifier;
use larmon_pipeline::{DaqWatch, LarmonConfig, Notice, WatchOptions};
use notify::Watcher;

/// Watch a DAQ output folder and keep every run's report current.
///
/// Notices new and growing raw or packet files, and light files (MPD `.data`, flow HDF5; read
/// once they stop growing and matched to the run's charge triggers) (inotify, with polling as a fallback — polling
/// alone on network file systems), processes only what was appended, and never samples. Files
/// are grouped into runs by --run-pattern (its `run` group, named run-NNNNNNN as `larmon run`
/// names it; a file that does not match is a run of its own). The light DAQ numbers its runs on
/// its own: with --run-db (the 2x2 run database) a light file joins the global run of its LRS
/// run; without it, it joins the charge run its first event falls in, once it stopped growing
/// (a light file no charge run holds is a run of its own; it is never flagged for missing
/// charge). Each file is calibrated as one continuous stream (ids offset per file, as in
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
///   larmon watch daq --out dqm --notify-url https://chat.example.org/hooks/XYZ   flag alarms
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
    /// Built-in detector: 2x2 (the default), single-module, sim-module (the simulation
    /// fixtures' module); replaces `detector` of the configuration. `larmon detector show`
    /// prints what it holds.
    #[arg(long, value_name = "NAME")]
    detector: Option<String>,
    /// The run's kind (beam, cosmic, …), which picks its reference runs (`larmon reference
    /// --kind`); without it, the configuration's `[[run_kinds]]` rules tell the kind from the
    /// run's metrics.
    #[arg(long, value_name = "KIND")]
    run_kind: Option<String>,
    #[command(flatten)]
    plugin_args: super::run::PluginArgs,
    /// Look at the folder at least this often, seconds (the only trigger if inotify fails).
    #[arg(long, default_value_t = 1.0)]
    poll_s: f64,
    /// Light channel → detector map (JSON; default: the 2x2 map).
    #[arg(long)]
    light_channel_map: Option<PathBuf>,
    /// The 2x2 run database (SQLite table All_global_subruns, or CSV with its columns;
    /// docs/data-management.md): charge and light files grouped by global run.
    #[arg(long, value_name = "FILE")]
    run_db: Option<PathBuf>,
    /// Flush a file's last events once it has not grown for this long, seconds.
    #[arg(long, default_value_t = 30.0)]
    finish_after_s: f64,
    /// Release a run from memory once all its files have been finished and idle this long,
    /// seconds (its state stays in its checkpoints and comes back if a file of it changes).
    #[arg(long, default_value_t = 3600.0)]
    forget_after_s: f64,
    /// Exit once every file is finished and nothing changed for this long, seconds.
    #[arg(long)]
    exit_when_idle_s: Option<f64>,
    /// Also serve the dashboard over OUT.
    #[arg(long)]
    serve: bool,
    /// Address of the dashboard with --serve.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Webhook told when a run's quality flag turns `error` (a JSON POST whose `text` chat
    /// tools such as Mattermost or Slack show; also run, flag, previous_flag, problems, url).
    /// Each run is told once while it stays `error`, also across restarts.
    #[arg(long, value_name = "URL")]
    notify_url: Option<String>,
    /// The dashboard's address as shifters reach it (e.g. https://dqm.example.org), for the
    /// run links in notifications.
    #[arg(long, value_name = "URL", requires = "notify_url")]
    dashboard_url: Option<String>,
}

/// Prints what the watcher noticed: resumed files on stdout, read errors on stderr.
fn print_notices(watch: &mut DaqWatch) {
    for notice in watch.take_notices() {
        match notice {
            Notice::Resumed { .. } => println!("{notice}"),
            Notice::WillRetry(_) | Notice::Skipped(_) => eprintln!("{notice}"),
        }
    }
}

/// The output folder of the running watch, for [`record_stalled_file`].
static WATCH_OUT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Under `watch`, records a file HDF5 got stuck on, so that the restarted watcher skips it.
pub fn record_stalled_file(file: &std::path::Path) {
    if let Some(out) = WATCH_OUT.get() {
        larmon_pipeline::modes::watch::record_stalled_file(out, file);
    }
}

pub fn run(args: Args) -> Result<()> {
    let _ = WATCH_OUT.set(args.out.clone());
    let options = WatchOptions {
        dir: args.dir.clone(),
        out: args.out.clone(),
        run_pattern: args.run_pattern.clone(),
        light_channel_map: args.light_channel_map.clone(),
        finish_after: super::seconds(args.finish_after_s),
        run_db: args.run_db.clone(),
        forget_after: super::seconds(args.forget_after_s),
    };
    // The folder and the pattern are checked before the plugins are loaded.
    options.check()?;
    let config = LarmonConfig::load_for(args.config.as_deref(), args.detector.as_deref())?
        .with_run_kind(args.run_kind.as_deref())?;
    let plugins = args.plugin_args.load()?;
    let mut watch = DaqWatch::new(options, config, plugins)?;
    let mut notifier = args
        .notify_url
        .as_deref()
        .map(|url| FlagNotifier::new(url, args.dashboard_url.as_deref(), &args.out));

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
        watch.plugin_count()
    );

    let poll = super::seconds(args.poll_s.max(0.05));
    let mut last_change = Instant::now();
    // Trouble that is not one file's (the folder unreadable for a moment, a full disk for a
    // report) is said once while it lasts and retried: the watcher goes on.
    let mut last_trouble: Option<String> = None;
    let mut unwritten: Vec<String> = Vec::new();
    loop {
        let step = watch.step();
        print_notices(&mut watch);
        let step_ok = step.is_ok();
        let mut changed_runs = match step {
            Ok(runs) => runs,
            Err(e) => {
                say_trouble(&mut last_trouble, larmon_pipeline::error_text(&e));
                Vec::new()
            }
        };
        for run in std::mem::take(&mut unwritten) {
            if !changed_runs.contains(&run) {
                changed_runs.push(run);
            }
        }
        for run in &changed_runs {
            let started = Instant::now();
            match watch.write_run_report(run) {
                Ok(written) => {
                    println!("{}", written.summary_line(started.elapsed().as_secs_f64()));
                    if let Some(notifier) = notifier.as_mut() {
                        if notifier.report_written(&written.report).is_some() {
                            println!("{run}: flag error: notifying {}", notifier.url());
                        }
                    }
                }
                Err(e) => {
                    say_trouble(&mut last_trouble, larmon_pipeline::error_text(&e));
                    unwritten.push(run.clone());
                }
            }
        }
        if !changed_runs.is_empty() {
            last_change = Instant::now();
        }
        if let Some(idle) = args.exit_when_idle_s {
            if watch.all_finished() && last_change.elapsed().as_secs_f64() >= idle {
                println!("idle for {idle} s with every file finished: stopping");
                return Ok(());
            }
        }
        for failure in notifier.iter().flat_map(|n| n.failures.try_iter()) {
            eprintln!("larmon: {failure}");
        }
        // The heartbeat the dashboard and /metrics read (a watcher that stopped, or a DAQ that
        // stopped writing, shows there); failing to write it is trouble like any other.
        let health = watch.health(unwritten.len(), last_trouble.as_deref());
        if let Err(e) = watch.write_health(&health) {
            say_trouble(&mut last_trouble, larmon_pipeline::error_text(&e));
        }
        if unwritten.is_empty() && step_ok {
            last_trouble = None; // a pass without trouble: the next one is said again
        }
        match wake.recv_timeout(poll) {
            // Coalesce a burst of notifications (a writer flushing) into one pass.
            Ok(()) => while wake.recv_timeout(Duration::from_millis(20)).is_ok() {},
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(poll),
        }
    }
}

/// Prints a problem once while the same one persists.
fn say_trouble(last: &mut Option<String>, text: String) {
    if last.as_deref() != Some(text.as_str()) {
        eprintln!("larmon: {text} (will retry)");
    }
    *last = Some(text);
}
