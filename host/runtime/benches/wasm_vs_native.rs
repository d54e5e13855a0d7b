//! The same plot code (tests/plugins/bench-plot/src/plot.rs) run natively and as a sandboxed
//! component on the same packet batches. Prints the times and the Wasm/native ratios of the plot
//! code alone, of a whole call, and with a fresh instance per pass.
//!
//!   bash .ci/plugins && cargo bench -p larmon-runtime --bench wasm_vs_native
//!
//! A whole call is everything a plugin call costs in larmon: projecting the batch on the
//! plugin's columns, Arrow IPC encoding, the copy into the guest, IPC decoding there and the
//! plot code; the plot code alone is that minus the same calls into an instance that returns
//! at once. The native side is built with one codegen unit, like the plugins (Cargo.toml).

#[path = "../../../tests/plugins/bench-plot/src/plot.rs"]
mod plot;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use larmon_ingest::arrow::packets_record_batch;
use larmon_ingest::read::{LarpixReader, ReadOptions};
use larmon_plugin_sdk::{Batch, Plugin};
use larmon_runtime::{Limits, Runtime};

/// Set in a child process: run one native pass over these columns and print its nanoseconds.
const COLD_NATIVE: &str = "LARMON_BENCH_COLD_NATIVE";

/// The batches cut to the plot's columns, as the host sends them to the component.
fn project(batches: &[RecordBatch], columns: &[String]) -> Vec<RecordBatch> {
    batches
        .iter()
        .map(|b| {
            let idx: Vec<usize> = columns.iter().map(|c| b.schema().index_of(c).unwrap()).collect();
            b.project(&idx).unwrap()
        })
        .collect()
}

/// One pass of the plot, natively: a new state, every batch, the report.
fn native_pass(projected: &[RecordBatch]) -> Duration {
    let t = Instant::now();
    let mut state = plot::AdcStats::new(Default::default(), Default::default()).unwrap();
    for b in projected {
        state.packets(&Batch::new(b.clone())).unwrap();
    }
    std::hint::black_box(state.report().unwrap());
    t.elapsed()
}

fn main() {
    let input = larmon_tests::shared_fixture("cosmics-packets.h5")
        .unwrap_or_else(|| larmon_tests::data("small-packets.h5"));
    let batches: Vec<RecordBatch> = LarpixReader::open(&input, &ReadOptions::default())
        .unwrap()
        .map(|b| packets_record_batch(b.unwrap()))
        .collect();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if let Ok(columns) = std::env::var(COLD_NATIVE) {
        // A child of the benchmark: one native pass in a process that has not run the plot
        // before, so its state lands on fresh pages as a new plugin instance's does.
        let columns: Vec<String> = columns.split(',').map(String::from).collect();
        let elapsed = native_pass(&project(&batches, &columns));
        println!("{}", elapsed.as_nanos());
        return;
    }
    let component = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-wasip2/plugin-test/larmon_test_bench_plot.wasm");
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-plugin-cache");
    let runtime = Runtime::new(Limits::default(), Some(cache)).unwrap();
    let plugin =
        runtime.load_file(&component).expect("build the test plugins first: bash .ci/plugins");
    // The native side gets the columns the plot declares, as the host sends them to the component.
    let columns = plugin.info().consumes[0].columns.clone();
    let projected = project(&batches, &columns);

    let passes = 40;
    let mut native = Vec::new();
    let mut wasm = Vec::new();
    let mut wasm_warm = Vec::new();
    let mut transport = Vec::new();
    for _ in 0..passes {
        native.push(native_pass(&projected));

        let t = Instant::now();
        let mut run = plugin.open(&runtime, "{}").unwrap();
        for b in &batches {
            run.consume("packets", b).unwrap();
        }
        std::hint::black_box(run.report().unwrap());
        wasm.push(t.elapsed());

        // Same, without instance start-up: opened (and its memory grown by one pass) beforehand.
        let mut warm = plugin.open(&runtime, "{}").unwrap();
        warm.consume("packets", &batches[0]).unwrap();
        let t = Instant::now();
        for b in &batches {
            warm.consume("packets", b).unwrap();
        }
        std::hint::black_box(warm.report().unwrap());
        wasm_warm.push(t.elapsed());

        // Transport alone: the same calls into an instance whose plot code returns at once.
        let mut idle = plugin.open(&runtime, r#"{"transport_only": true}"#).unwrap();
        idle.consume("packets", &batches[0]).unwrap();
        let t = Instant::now();
        for b in &batches {
            idle.consume("packets", b).unwrap();
        }
        transport.push(t.elapsed());
    }
    // The same plot natively in fresh processes (one pass each): the like-for-like reference
    // for a fresh instance, which also starts on pages it has never touched.
    let mut native_cold = Vec::new();
    for _ in 0..11 {
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .env(COLD_NATIVE, columns.join(","))
            .output()
            .unwrap();
        let nanos = String::from_utf8_lossy(&child.stdout).trim().parse::<u64>();
        native_cold.push(Duration::from_nanos(nanos.expect("the child's time")));
    }
    // Ratios pass by pass (native and Wasm measured back to back), then their median: steadier
    // than a ratio of medians on a machine whose speed drifts.
    let per_pass = |f: &dyn Fn(usize) -> f64| {
        let mut r: Vec<f64> = (0..passes).map(f).collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let secs = |v: &[Duration], i: usize| v[i].as_secs_f64();
    let warm_ratio = per_pass(&|i| secs(&wasm_warm, i) / secs(&native, i));
    let plot_ratio = per_pass(&|i| (secs(&wasm_warm, i) - secs(&transport, i)) / secs(&native, i));
    let fresh_ratio = per_pass(&|i| secs(&wasm, i) / secs(&native, i));
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (n, w, warm) = (median(&mut native), median(&mut wasm), median(&mut wasm_warm));
    let (transport, cold) = (median(&mut transport), median(&mut native_cold));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "{}: {rows} rows in {} batches; median times, and medians of the per-pass ratios:",
        input.display(),
        batches.len()
    );
    let line = |label: String, time: Duration, rest: String| {
        println!("  {label:<46} {:6.2} ms  {rest}", ms(time));
    };
    let per_s = format!("({:.1} M rows/s)", rows as f64 / n.as_secs_f64() / 1e6);
    line(format!("native, warm heap ({passes} passes)"), n, per_s);
    line("native, first pass of a fresh process (11)".into(), cold, String::new());
    let warm_ratio = format!("{warm_ratio:.2}x native  (goal <= 1.3x)");
    line(format!("wasm, instance open and warm ({passes})"), warm, warm_ratio);
    line("  of which transport (projection, IPC, copy)".into(), transport, String::new());
    let plot_ratio = format!("{plot_ratio:.2}x native");
    line("  of which plot code".into(), warm - transport, plot_ratio);
    let fresh = format!("{fresh_ratio:.2}x native, {:.2}x a fresh process", ratio(w, cold));
    line(format!("wasm, a fresh instance per pass ({passes})"), w, fresh);
}
