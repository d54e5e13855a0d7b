//! The same plot code (tests/plugins/bench-plot/src/plot.rs) run natively and as a sandboxed
//! component on the same packet batches. Prints both times and their ratio.
//!
//!   bash .ci/plugins && cargo bench -p larmon-runtime --bench wasm_vs_native
//!
//! The Wasm time includes everything a plugin call costs in larmon: projecting the batch on the
//! plugin's columns, Arrow IPC encoding, the copy into the guest and IPC decoding there.

#[path = "../../../tests/plugins/bench-plot/src/plot.rs"]
mod plot;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use larmon_ingest::arrow::packets_record_batch;
use larmon_ingest::read::{LarpixReader, ReadOptions};
use larmon_plugin_sdk::{Batch, Plugin};
use larmon_runtime::{Limits, Runtime};

fn main() {
    let input = larmon_tests::shared_fixture("cosmics-packets.h5")
        .unwrap_or_else(|| larmon_tests::data("small-packets.h5"));
    let batches: Vec<RecordBatch> = LarpixReader::open(&input, &ReadOptions::default())
        .unwrap()
        .map(|b| packets_record_batch(b.unwrap()))
        .collect();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let component = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-wasip2/plugin-test/larmon_test_bench_plot.wasm");
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-plugin-cache");
    let runtime = Runtime::new(Limits::default(), Some(cache)).unwrap();
    let plugin =
        runtime.load_file(&component).expect("build the test plugins first: bash .ci/plugins");
    // The native side gets the columns the plot declares, as the host sends them to the component.
    let columns = plugin.info().consumes[0].columns.clone();
    let projected: Vec<RecordBatch> = batches
        .iter()
        .map(|b| {
            let idx: Vec<usize> = columns.iter().map(|c| b.schema().index_of(c).unwrap()).collect();
            b.project(&idx).unwrap()
        })
        .collect();

    let passes = 20;
    let mut native = Vec::new();
    let mut wasm = Vec::new();
    let mut wasm_warm = Vec::new();
    let mut transport = Vec::new();
    for _ in 0..passes {
        let t = Instant::now();
        let mut state = plot::AdcStats::new(&serde_json::json!({})).unwrap();
        for b in &projected {
            state.packets(&Batch::new(b.clone())).unwrap();
        }
        std::hint::black_box(state.report().unwrap());
        native.push(t.elapsed());

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
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (n, w, warm) = (median(&mut native), median(&mut wasm), median(&mut wasm_warm));
    let transport = median(&mut transport);
    println!(
        "{}: {rows} rows in {} batches, {passes} passes, medians:",
        input.display(),
        batches.len()
    );
    println!(
        "  native  {:8.2} ms  ({:.1} M rows/s)",
        n.as_secs_f64() * 1e3,
        rows as f64 / n.as_secs_f64() / 1e6
    );
    println!(
        "  wasm    {:8.2} ms  ({:.1} M rows/s)",
        w.as_secs_f64() * 1e3,
        rows as f64 / w.as_secs_f64() / 1e6
    );
    println!("  ratio   {:.2}x (goal <= 1.3x)", w.as_secs_f64() / n.as_secs_f64());
    println!(
        "  wasm, instance already open and warm: {:.2} ms, ratio {:.2}x",
        warm.as_secs_f64() * 1e3,
        warm.as_secs_f64() / n.as_secs_f64()
    );
    println!(
        "  of which transport (project, IPC-encode, copy in, decode; plot code skipped): {:.2} ms",
        transport.as_secs_f64() * 1e3
    );
    println!(
        "  plot code alone in wasm (warm - transport): {:.2} ms, ratio {:.2}x",
        (warm - transport).as_secs_f64() * 1e3,
        (warm - transport).as_secs_f64() / n.as_secs_f64()
    );
}
