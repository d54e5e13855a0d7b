//! The sandbox against hostile plugins, and snapshot/merge equivalence, on real components built
//! by `bash .ci/plugins` (tests/plugins/hostile, plugins/packet-rate).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use larmon_ingest::arrow::packets_record_batch;
use larmon_ingest::read::{LarpixReader, ReadOptions};
use larmon_runtime::{CompileSource, Limits, LoadedPlugin, PluginFailure, Runtime};

fn component(profile: &str, name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let path = target.join("wasm32-wasip2").join(profile).join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the plugins with `bash .ci/plugins`",
        path.display()
    );
    path
}

/// One compiled-component cache for all tests (Cranelift in a debug-built host is slow).
fn runtime(limits: Limits) -> Arc<Runtime> {
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-plugin-cache");
    Runtime::new(limits, Some(cache)).unwrap()
}

fn packet_batches() -> Vec<RecordBatch> {
    let options = ReadOptions { batch_rows: 4096, ..Default::default() };
    LarpixReader::open(&larmon_tests::data("small-packets.h5"), &options)
        .unwrap()
        .map(|b| packets_record_batch(b.unwrap()))
        .collect()
}

fn limits() -> Limits {
    Limits { memory_bytes: 256 << 20, call_timeout: Duration::from_secs(2), ..Limits::default() }
}

/// Runs the hostile plugin in `mode` over one batch and returns the reason it stopped.
fn hostile_failure(
    runtime: &Runtime,
    plugin: &LoadedPlugin,
    mode: &str,
    batch: &RecordBatch,
) -> String {
    let mut run = plugin.open(runtime, &format!("{{\"mode\": \"{mode}\"}}")).unwrap();
    let consumed = run.consume("packets", batch);
    let reported = run.report();
    assert!(consumed.is_err() || reported.is_err(), "{mode}: the plugin was not stopped");
    let reason = run.failure().expect("a failure is recorded").clone();
    // every later call returns the same reason without entering the plugin again
    assert_eq!(run.snapshot().unwrap_err(), reason);
    // a limit, a trap and the plugin's own error are told apart by type
    let kind_matches = match mode {
        "spin" | "sleep" => matches!(reason, PluginFailure::CpuLimit { .. }),
        "recurse" => matches!(reason, PluginFailure::Trap { .. }),
        "long-names" => matches!(reason, PluginFailure::ReportLimit { .. }),
        "figures" => matches!(reason, PluginFailure::ReportRule(_)),
        "memory" | "huge-svg" => matches!(reason, PluginFailure::MemoryLimit { .. }),
        "big-svg" => matches!(reason, PluginFailure::ReportLimit { .. }),
        "read-file" | "socket" | "env" => matches!(reason, PluginFailure::Reported { .. }),
        "panic" => matches!(reason, PluginFailure::Trap { ref panic, .. } if !panic.is_empty()),
        _ => true,
    };
    assert!(kind_matches, "{mode}: {reason:?}");
    reason.to_string()
}

#[test]
fn hostile_plugins_are_stopped_with_a_reason_and_others_go_on() {
    let runtime = runtime(limits());
    let hostile = runtime.load_file(&component("plugin-test", "larmon_test_hostile")).unwrap();
    let good = runtime.load_file(&component("plugin", "larmon_plugin_packet_rate")).unwrap();
    let batch = &packet_batches()[0];

    let started = Instant::now();
    let reason = hostile_failure(&runtime, &hostile, "spin", batch);
    assert!(reason.contains("time limit of 2.0 s"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(30), "the deadline did not stop the loop");

    // An hour's sleep inside a WASI call is stopped by the same limit (the time blocked in
    // the host counts).
    let started = Instant::now();
    let reason = hostile_failure(&runtime, &hostile, "sleep", batch);
    assert!(reason.contains("stopped in consume") && reason.contains("time limit"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(10), "slept {:?}", started.elapsed());

    let reason = hostile_failure(&runtime, &hostile, "recurse", batch);
    assert!(reason.contains("trapped in consume"), "{reason}");
    assert!(reason.contains("stack"), "a stack overflow is named as one: {reason}");

    let reason = hostile_failure(&runtime, &hostile, "long-names", batch);
    assert!(reason.contains("exceeds the limit of 32 MiB"), "{reason}");

    let reason = hostile_failure(&runtime, &hostile, "figures", batch);
    assert!(reason.contains("100001 figures, more than the limit of 100"), "{reason}");

    let reason = hostile_failure(&runtime, &hostile, "memory", batch);
    assert!(reason.contains("memory limit of 256 MiB"), "{reason}");

    let reason = hostile_failure(&runtime, &hostile, "panic", batch);
    assert!(
        reason.contains("trapped in consume") && reason.contains("panics on purpose"),
        "{reason}"
    );

    let reason = hostile_failure(&runtime, &hostile, "huge-svg", batch);
    assert!(reason.contains("memory limit"), "{reason}");

    let reason = hostile_failure(&runtime, &hostile, "big-svg", batch);
    assert!(reason.contains("exceeds the limit of 32 MiB"), "{reason}");

    let reason = hostile_failure(&runtime, &hostile, "read-file", batch);
    assert!(reason.contains("cannot open /etc/passwd") && !reason.contains("BREACH"), "{reason}");

    let reason = hostile_failure(&runtime, &hostile, "socket", batch);
    assert!(reason.contains("cannot connect") && !reason.contains("BREACH"), "{reason}");

    let reason = hostile_failure(&runtime, &hostile, "env", batch);
    assert!(reason.contains("0 variables, 0 arguments"), "{reason}");

    // A well-behaved plugin in the same runtime still works, and so does the hostile one when
    // it behaves.
    let mut run = good.open(&runtime, "{}").unwrap();
    for b in packet_batches() {
        run.consume("packets", &b).unwrap();
    }
    let report = run.report().unwrap();
    let parity = report.metrics.iter().find(|m| m.name == "parity_errors").unwrap();
    assert_eq!(parity.value, 33.0);
    let mut calm = hostile.open(&runtime, "{\"mode\": \"well\"}").unwrap();
    calm.consume("packets", batch).unwrap();
    assert_eq!(calm.report().unwrap().metrics[0].value, batch.num_rows() as f64);
}

/// A plugin slow on every batch (each call under the per-call limit) is stopped once it has
/// used its time budget for the run, shared by its instances: the run goes on without it.
#[test]
fn a_slow_plugin_is_stopped_by_its_run_budget() {
    let runtime = runtime(Limits { run_budget: Duration::from_millis(1500), ..limits() });
    let hostile = runtime.load_file(&component("plugin-test", "larmon_test_hostile")).unwrap();
    let budget = larmon_runtime::RunBudget::new(Duration::from_millis(1500));
    let batches = packet_batches();
    let started = Instant::now();
    let mut failure = None;
    'files: for _file in 0..4 {
        let mut run =
            hostile.open_with_budget(&runtime, "{\"mode\": \"slow\"}", budget.clone()).unwrap();
        for b in &batches {
            if let Err(e) = run.consume("packets", b) {
                failure = Some(e);
                break 'files;
            }
        }
    }
    let failure = failure.expect("the budget stops the plugin");
    assert!(matches!(failure, PluginFailure::BudgetLimit { .. }), "{failure:?}");
    assert!(failure.to_string().contains("time budget of 1.5 s"), "{failure}");
    // Within the budget plus one call's worth of time.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(budget.spent() >= Duration::from_millis(1500));
}

/// What a plugin reports is kept within rules: printing far past the log limit is not fatal
/// (the rest is counted), NaN and infinite metrics come through as such (report.json writes
/// them as null with a note: larmon-report), figure names that would share a file get
/// distinct names.
#[test]
fn chatty_output_odd_numbers_and_clashing_names_are_handled() {
    let runtime = runtime(limits());
    let hostile = runtime.load_file(&component("plugin-test", "larmon_test_hostile")).unwrap();
    let batch = &packet_batches()[0];

    let mut chatty = hostile.open(&runtime, "{\"mode\": \"chatty\"}").unwrap();
    chatty.consume("packets", batch).unwrap();
    assert!(chatty.report().is_ok());
    let log = chatty.log();
    let kept: usize = log.iter().filter(|l| l.starts_with("stdout: ")).map(|l| l.len()).sum();
    assert!(kept <= 70 << 10, "{kept} bytes of stdout kept");
    assert!(log.iter().any(|l| l.contains("bytes of stdout dropped: log limit reached")));
    assert!(log.iter().any(|l| l.contains("bytes of stderr dropped: log limit reached")));

    // Taking the log empties it; what comes after is still within the one limit.
    let mut taken = hostile.open(&runtime, "{\"mode\": \"chatty\"}").unwrap();
    taken.consume("packets", batch).unwrap();
    let first = taken.take_log();
    assert_eq!(first, log, "taken after the first batch: what log() gave");
    assert!(taken.log().is_empty());
    taken.consume("packets", batch).unwrap();
    let second = taken.take_log();
    assert!(second.iter().all(|l| !l.starts_with("stdout: ")), "the limit was reached before");
    assert!(second.iter().any(|l| l.contains("bytes of stdout dropped: log limit reached")));

    let mut odd = hostile.open(&runtime, "{\"mode\": \"nan\"}").unwrap();
    odd.consume("packets", batch).unwrap();
    let report = odd.report().unwrap();
    let value = |name: &str| report.metrics.iter().find(|m| m.name == name).unwrap().value;
    assert!(value("not_a_number").is_nan());
    assert_eq!(value("plus_infinity"), f64::INFINITY);
    assert_eq!(value("minus_infinity"), f64::NEG_INFINITY);

    let mut clash = hostile.open(&runtime, "{\"mode\": \"clash\"}").unwrap();
    clash.consume("packets", batch).unwrap();
    let names: Vec<String> = clash.report().unwrap().figures.into_iter().map(|f| f.name).collect();
    assert_eq!(names, ["figure", "a_b", "a_b-2", "A_B-3", "______escape"]);
    assert!(clash.log().iter().any(|l| l.contains("figure \"a/b\" is written as a_b")));
}

#[test]
fn snapshot_and_merge_of_two_halves_equal_one_pass() {
    let runtime = runtime(Limits::default());
    let plugin = runtime.load_file(&component("plugin", "larmon_plugin_packet_rate")).unwrap();
    let batches = packet_batches();
    assert!(batches.len() >= 4);
    let mut whole = plugin.open(&runtime, "{}").unwrap();
    let mut first = plugin.open(&runtime, "{}").unwrap();
    let mut second = plugin.open(&runtime, "{}").unwrap();
    for (i, b) in batches.iter().enumerate() {
        whole.consume("packets", b).unwrap();
        if i < batches.len() / 2 {
            first.consume("packets", b).unwrap()
        } else {
            second.consume("packets", b).unwrap()
        }
    }
    let snapshot = second.snapshot().unwrap();
    first.merge(&snapshot).unwrap();
    let (merged, single) = (first.report().unwrap(), whole.report().unwrap());
    assert_eq!(merged, single);
    assert!(!single.figures.is_empty() && single.figures[0].data_json.len() > 10);
}

#[test]
fn compiled_components_come_from_the_cache_the_second_time() {
    let cache = larmon_tests::scratch("plugin-cache-reuse");
    let path = component("plugin", "larmon_plugin_packet_rate");
    let first =
        Runtime::new(Limits::default(), Some(cache.clone())).unwrap().load_file(&path).unwrap();
    assert_eq!(first.compile_source(), &CompileSource::Compiled);
    let second = Runtime::new(Limits::default(), Some(cache)).unwrap().load_file(&path).unwrap();
    assert_eq!(second.compile_source(), &CompileSource::Cache);
    assert_eq!(second.info().name, "packet-rate");
    assert_eq!(second.info().consumes[0].stream, "packets");
}

#[test]
fn a_file_that_is_not_a_component_is_refused_clearly() {
    let runtime = runtime(Limits::default());
    let err = runtime.load(b"\0asm\x01\0\0\0", "core-module.wasm").err().unwrap().to_string();
    assert!(err.starts_with("core-module.wasm: not a larmon plugin component"), "{err}");
    let err = runtime.load(b"hello", "text.wasm").err().unwrap().to_string();
    assert!(err.contains("text.wasm"), "{err}");
}
