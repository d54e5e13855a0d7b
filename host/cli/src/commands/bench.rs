//! `larmon bench`: measures, on this machine, the throughput of the ingest stage — file to Arrow
//! packets, and raw file to packet file — so performance goals are checked by measurement, not by
//! timed assertions in tests.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use larmon_ingest::arrow::packets_record_batch;
use larmon_ingest::read::{FileKind, LarpixReader, ReadOptions};
use larmon_ingest::write::WriteOptions;
use serde::Serialize;

/// Measure ingest throughput on this machine (one core, page cache warm).
///
/// For each file it reads every row into Arrow record batches, repeatedly for at least
/// --seconds, and reports rows per second (best and median pass). For raw files it also times
/// `convert` to a temporary packet file; for packet files also the single-core figure
/// (read-ahead off). Run it on a release build:
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
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Measurement {
    file: PathBuf,
    kind: FileKind,
    task: &'static str,
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

/// Packets -> calibrated hits and events (one core: no read-ahead); returns packet rows.
fn calibrate(path: &Path) -> Result<u64> {
    let options = ReadOptions { read_ahead: false, ..Default::default() };
    let mut reader = LarpixReader::open(path, &options)?;
    let mut calibrator =
        larmon_calibrate::Calibrator::new(larmon_calibrate::DetectorConfig::default())?;
    let mut batch = larmon_ingest::PacketColumns::default();
    let mut hits = 0;
    while reader.read_batch_into(&mut batch)? {
        hits += calibrator.push(&batch).hits.len();
    }
    hits += calibrator.finish().hits.len();
    std::hint::black_box(hits);
    Ok(calibrator.stats().rows)
}

fn convert(path: &Path, out: &Path) -> Result<u64> {
    let options = WriteOptions { overwrite: true, ..Default::default() };
    Ok(larmon_ingest::convert::convert(path, out, &ReadOptions::default(), &options, |_, _| {})?
        .rows)
}

pub fn run(args: Args) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("larmon-bench-{}.h5", std::process::id()));
    let mut results = Vec::new();
    for file in &args.files {
        let kind = LarpixReader::open(file, &ReadOptions::default())?.kind();
        let mut tasks: Vec<(&'static str, Pass)> = vec![
            ("file -> arrow packets", Box::new(|| to_arrow(file, true))),
            ("file -> columns, reused buffers", Box::new(|| to_columns_reused(file))),
        ];
        if kind == FileKind::Packets {
            tasks.push((
                "file -> arrow, no read-ahead (1 core)",
                Box::new(|| to_arrow(file, false)),
            ));
        }
        tasks.push(("file -> calibrated hits (1 core)", Box::new(|| calibrate(file))));
        if kind == FileKind::Raw {
            tasks.push(("convert raw -> packet file", Box::new(|| convert(file, &scratch))));
        }
        for (task, pass) in tasks {
            let (rows, rates) = measure(args.seconds, pass)?;
            let m = Measurement {
                file: file.clone(),
                kind,
                task,
                rows,
                passes: rates.len(),
                best_rows_per_s: rates[rates.len() - 1],
                median_rows_per_s: rates[rates.len() / 2],
            };
            if !args.json {
                println!(
                    "{:<40} {:<28} {:>9} rows  best {:>7.1} M rows/s  median {:>7.1} M rows/s  ({} passes)",
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
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(())
}
