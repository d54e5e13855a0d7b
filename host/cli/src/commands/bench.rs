//! `larmon bench`: measures, on this machine, the throughput of each stage — file to Arrow
//! packets, raw file to packet file, calibration, and the whole run through the bundled
//! plugins — so performance goals are checked by measurement, not by timed assertions in tests.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use larmon_calibrate::DetectorConfig;
use larmon_ingest::arrow::packets_record_batch;
use larmon_ingest::read::{FileKind, LarpixReader, ReadOptions};
use larmon_ingest::write::WriteOptions;
use larmon_pipeline::streams::calibrated_batches;
use larmon_pipeline::{LarmonConfig, PluginOptions, PluginSet, RunOptions, Silent, run_files};
use serde::Serialize;

/// Measure each stage's throughput on this machine (page cache warm).
///
/// For each file, each task runs repeatedly for at least --seconds and is reported in packet
/// rows per second (best and median pass):
///   file -> arrow packets            read every row into Arrow record batches
///   file -> columns, reused buffers  the same into one reused buffer
///   file -> arrow, no read-ahead     packet files: the single-core read
///   file -> calibrated batches (1 core)
///                                    calibration on one thread, into the Arrow batches of
///                                    hits, events, tracks, segments and track pixels
///   file -> calibrated batches (all cores)
///                                    the same, tracks found on every core while the next
///                                    batch is calibrated (what `larmon calibrate` runs)
///   convert raw -> packet file       raw files: `larmon convert` to a temporary file
///   whole run, N plugins             `larmon run` in-process: calibration and every bundled
///                                    plugin (compiled ones from the cache), report and figures
///                                    written to a temporary folder
/// Run it on a release build:
///   cargo run --release -p larmon -- bench tests/data/small-raw.h5 tests/data/small-packets.h5
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Files to measure.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Minimum time spent per measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Detector of the calibration and the whole run (see `larmon run --detector`).
    #[arg(long)]
    detector: Option<String>,
    /// Directory of the bundled plugins for the whole run (default as `larmon run`).
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    /// Skip the whole run (no plugins needed).
    #[arg(long)]
    no_run: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Measurement {
    file: PathBuf,
    kind: FileKind,
    task: String,
    rows: u64,
    passes: usize,
    best_rows_per_s: f64,
    median_rows_per_s: f64,
}

/// One timed pass over a file, returning the rows it handled.
type Pass<'a> = Box<dyn FnMut() -> Result<u64> + 'a>;

fn measure(min_seconds: f64, mut pass: impl FnMut() -> Result<u64>) -> Result<(u64, Vec<f64>)> {
    let budget = super::seconds(min_seconds);
    let started = Instant::now();
    let mut rates = Vec::new();
    let mut rows = 0;
    while rates.len() < 3 || started.elapsed() < budget {
        let t = Instant::now();
        rows = pass()?;
        rates.push(rows as f64 / t.elapsed().as_secs_f64().max(1e-9));
    }
    rates.sort_by(f64::total_cmp);
    Ok((rows, rates))
}

fn to_arrow(path: &Path, read_ahead: bool) -> Result<u64> {
    let mut rows = 0;
    let options = ReadOptions { read_ahead, ..Default::default() };
    for batch in LarpixReader::open(path, &options)? {
        rows += packets_record_batch(batch?).num_rows() as u64;
    }
    Ok(rows)
}

fn to_columns_reused(path: &Path) -> Result<u64> {
    let mut reader = LarpixReader::open(path, &ReadOptions::default())?;
    let mut batch = larmon_ingest::PacketColumns::default();
    let mut rows = 0;
    while reader.read_batch_into(&mut batch)? {
        rows += batch.len() as u64;
    }
    Ok(rows)
}

/// Packets -> the Arrow batches of the calibrated streams (no read-ahead) on `threads` threads
/// (None: the global pool, every core, tracks searched while the next batch is calibrated, as
/// `larmon calibrate` runs); returns packet rows.
fn calibrate(path: &Path, detector: &DetectorConfig, threads: Option<usize>) -> Result<u64> {
    match threads {
        Some(threads) => rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?
            .install(|| calibrate_here(path, detector, false)),
        None => calibrate_here(path, detector, true),
    }
}

fn calibrate_here(path: &Path, detector: &DetectorConfig, background: bool) -> Result<u64> {
    let options = ReadOptions { read_ahead: false, ..Default::default() };
    let mut reader = LarpixReader::open(path, &options)?;
    let mut calibrator = larmon_calibrate::Calibrator::new(detector.clone())?;
    if background {
        calibrator = calibrator.with_tracks_in_background();
    }
    let mut batch = larmon_ingest::PacketColumns::default();
    let mut rows = 0;
    let mut count = |done| {
        rows += calibrated_batches(done).iter().map(|(_, b)| b.num_rows()).sum::<usize>();
    };
    while reader.read_batch_into(&mut batch)? {
        count(calibrator.push(&batch));
    }
    count(calibrator.finish());
    std::hint::black_box(rows);
    Ok(calibrator.stats().rows)
}

fn convert(path: &Path, out: &Path) -> Result<u64> {
    let options = WriteOptions { overwrite: true, ..Default::default() };
    Ok(larmon_ingest::convert::convert(path, out, &ReadOptions::default(), &options, |_, _| {})?
        .rows)
}

/// `larmon run` of one file in-process, into a fresh `out`; returns packet rows.
fn whole_run(
    path: &Path,
    rows: u64,
    config: &LarmonConfig,
    plugins: &PluginSet,
    out: &Path,
) -> Result<u64> {
    let _ = std::fs::remove_dir_all(out);
    let options = RunOptions {
        files: vec![path.to_path_buf()],
        out: out.to_path_buf(),
        run: Some("bench".into()),
        ..RunOptions::default()
    };
    run_files(&options, config, plugins, &Silent)?;
    Ok(rows)
}

pub fn run(args: Args) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("larmon-bench-{}.h5", std::process::id()));
    let run_out = std::env::temp_dir().join(format!("larmon-bench-{}-run", std::process::id()));
    let config = LarmonConfig::load_for(None, args.detector.as_deref())?;
    let plugins = if args.no_run {
        None
    } else {
        let options = PluginOptions { plugin_dir: args.plugin_dir.clone(), ..Default::default() };
        let plugins = options.load()?;
        if plugins.plugins.is_empty() {
            let dir = options.plugin_dir.or_else(larmon_pipeline::plugins::default_plugin_dir);
            anyhow::bail!(
                "no plugins for the whole run in {} (build them: bash .ci/plugins), or pass --no-run",
                dir.map_or("the default plugin directory".into(), |d| d.display().to_string())
            );
        }
        Some(plugins)
    };
    let whole_run_task = plugins
        .as_ref()
        .map(|p| format!("whole run, {} plugins", p.plugins.len()))
        .unwrap_or_default();
    let detector = &config.detector;
    let mut results = Vec::new();
    for file in &args.files {
        let kind = LarpixReader::open(file, &ReadOptions::default())?.kind();
        let mut tasks: Vec<(&str, Pass)> = vec![
            ("file -> arrow packets", Box::new(|| to_arrow(file, true))),
            ("file -> columns, reused buffers", Box::new(|| to_columns_reused(file))),
        ];
        if kind == FileKind::Packets {
            tasks.push((
                "file -> arrow, no read-ahead (1 core)",
                Box::new(|| to_arrow(file, false)),
            ));
        }
        tasks.push((
            "file -> calibrated batches (1 core)",
            Box::new(|| calibrate(file, detector, Some(1))),
        ));
        tasks.push((
            "file -> calibrated batches (all cores)",
            Box::new(|| calibrate(file, detector, None)),
        ));
        if kind == FileKind::Raw {
            tasks.push(("convert raw -> packet file", Box::new(|| convert(file, &scratch))));
        }
        if let Some(plugins) = &plugins {
            let rows = to_columns_reused(file)?;
            let (config, out) = (&config, &run_out);
            tasks.push((
                &whole_run_task,
                Box::new(move || whole_run(file, rows, config, plugins, out)),
            ));
        }
        for (task, pass) in tasks {
            let (rows, rates) = measure(args.seconds, pass)?;
            let m = Measurement {
                file: file.clone(),
                kind,
                task: task.to_string(),
                rows,
                passes: rates.len(),
                best_rows_per_s: rates[rates.len() - 1],
                median_rows_per_s: rates[rates.len() / 2],
            };
            if !args.json {
                println!(
                    "{:<40} {:<38} {:>9} rows  best {:>7.2} M rows/s  median {:>7.2} M rows/s  ({} passes)",
                    m.file.display(),
                    m.task,
                    m.rows,
                    m.best_rows_per_s / 1e6,
                    m.median_rows_per_s / 1e6,
                    m.passes
                );
            }
            results.push(m);
        }
    }
    let _ = std::fs::remove_file(&scratch);
    let _ = std::fs::remove_dir_all(&run_out);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(())
}
