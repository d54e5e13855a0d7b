//! Hostile components no Rust guest can be compiled into: eight linear memories, a huge table,
//! an `info()` that never returns, a name that carries terminal escape codes. Each is written
//! here as a core module in WAT and wrapped into a component of the plugin world (wit/) by
//! wit-component, as `cargo component` or wit-bindgen would — the host sees a real component.
//! The memory and table cases check the host's resident memory: it stays under the plugin's
//! limit plus a fixed margin whatever the component declares or grows.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{RecordBatch, UInt8Array};
use arrow::datatypes::{DataType, Field, Schema};
use larmon_runtime::{Limits, PluginFailure, Runtime, RuntimeError};

/// The plugin interface's export prefix (wit-component's naming of exported functions).
const PLUGIN: &str = "larmon:plugin/plugin@0.1.0";

/// What the crafted plugin does wrong.
#[derive(Clone, Copy)]
enum Misdeed {
    /// Nothing: the crafted component behaves (checks the crafting itself).
    Nothing,
    /// Eight memories; `consume` grows memories 1–7 by 200 MiB each — every one under the
    /// 256 MiB limit on its own — and touches every page.
    GrowEightMemories,
    /// Eight memories each declaring 128 MiB as their minimum.
    DeclareEightMemories,
    /// A funcref table grown to a billion elements in `consume`.
    GrowTable,
    /// `info()` loops forever.
    InfoLoops,
    /// A name with ANSI escape codes that would print a forged "quality ok" line.
    EscapeName,
}

/// The WAT of a core module implementing the plugin world (canonical ABI, 32-bit).
fn core_module(misdeed: Misdeed) -> String {
    let name_bytes: &[u8] = match misdeed {
        Misdeed::EscapeName => b"\x1b[2K\x1b[1Gquality ok\x1b[8m",
        _ => b"crafted",
    };
    let name_len = name_bytes.len();
    let name: String = name_bytes.iter().map(|b| format!("\\{b:02x}")).collect();
    let extra_memory_pages = match misdeed {
        Misdeed::DeclareEightMemories => 2048, // 128 MiB each
        _ => 0,
    };
    let extra_memories: String =
        (1..8).map(|i| format!("(memory $m{i} {extra_memory_pages})\n")).collect();
    let info_body = match misdeed {
        Misdeed::InfoLoops => "(loop $forever (br $forever)) unreachable",
        _ => "i32.const 1024",
    };
    let consume_misdeed = match misdeed {
        Misdeed::GrowEightMemories => (1..8)
            .map(|i| {
                format!(
                    "(local.set $base (i32.mul (memory.grow $m{i} (i32.const 3200)) (i32.const 65536)))
                     (if (i32.lt_s (local.get $base) (i32.const 0)) (then unreachable))
                     (local.set $page (i32.const 0))
                     (loop $touch{i}
                       (i32.store8 $m{i} (i32.add (local.get $base) (local.get $page)) (i32.const 1))
                       (local.set $page (i32.add (local.get $page) (i32.const 65536)))
                       (br_if $touch{i} (i32.lt_u (local.get $page) (i32.const 209715200))))\n"
                )
            })
            .collect(),
        Misdeed::GrowTable => "(drop (table.grow $t (ref.null func) (i32.const 1000000000)))".into(),
        _ => String::new(),
    };
    format!(
        r#"(module
  (import "[export]{PLUGIN}" "[resource-new]instance" (func $resource_new (param i32) (result i32)))
  (memory (export "memory") 1)
  {extra_memories}
  (table $t 0 funcref)
  (global $bump (mut i32) (i32.const 4096))

  ;; strings
  (data (i32.const 16) "{name}")
  (data (i32.const 128) "0.1.0")
  (data (i32.const 160) "hand-written hostile component")
  (data (i32.const 224) "packets")
  (data (i32.const 256) "packet_type")
  ;; info's return area: plugin-info {{ name, version, description, help (empty), consumes,
  ;; config-keys }}
  (data (i32.const 1024) "\10\00\00\00\{name_len:02x}\00\00\00\80\00\00\00\05\00\00\00\a0\00\00\00\1e\00\00\00\00\00\00\00\00\00\00\00\4c\04\00\00\01\00\00\00\00\00\00\00\00\00\00\00")
  ;; consumes[0] = {{ stream: "packets", columns: ["packet_type"] }}
  (data (i32.const 1100) "\e0\00\00\00\07\00\00\00\60\04\00\00\01\00\00\00")
  (data (i32.const 1120) "\00\01\00\00\0b\00\00\00")

  (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (i32.and (i32.add (global.get $bump) (i32.const 15)) (i32.const -16)))
    (global.set $bump (i32.add (local.get $at) (local.get $size)))
    (if (i32.gt_u (global.get $bump) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.lt_s (memory.grow (i32.add (i32.div_u (i32.sub (global.get $bump)
                  (i32.mul (memory.size) (i32.const 65536))) (i32.const 65536)) (i32.const 1)))
                (i32.const 0)) (then unreachable))))
    (local.get $at))

  (func (export "{PLUGIN}#info") (result i32) {info_body})

  (func (export "{PLUGIN}#[static]instance.open") (param i32 i32) (result i32)
    (i32.store (i32.const 1200) (i32.const 0))
    (i32.store (i32.const 1204) (call $resource_new (i32.const 7)))
    (i32.const 1200))

  (func (export "{PLUGIN}#[method]instance.consume") (param i32 i32 i32 i32 i32) (result i32)
    (local $base i32) (local $page i32)
    {consume_misdeed}
    (i32.store (i32.const 1300) (i32.const 0))
    (i32.const 1300))

  (func (export "{PLUGIN}#[method]instance.snapshot") (param i32) (result i32)
    (i64.store (i32.const 1400) (i64.const 0))
    (i32.store (i32.const 1408) (i32.const 0))
    (i32.const 1400))

  (func (export "{PLUGIN}#[method]instance.merge") (param i32 i32 i32) (result i32)
    (i32.store (i32.const 1300) (i32.const 0))
    (i32.const 1300))

  ;; result<report, string>: ok, and a report of four empty lists
  (func (export "{PLUGIN}#[method]instance.report") (param i32) (result i32)
    (memory.fill (i32.const 1500) (i32.const 0) (i32.const 40))
    (i32.const 1500))

  (func (export "{PLUGIN}#[dtor]instance") (param i32))
)"#
    )
}

/// The component of `misdeed`: its core module with the world's type embedded, componentized.
fn component(misdeed: Misdeed) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    let (package, _) = resolve.push_dir(&wit).expect("wit/ parses");
    let world = resolve.select_world(&[package], Some("dqm-plugin")).expect("the plugin world");
    let mut module = wat::parse_str(core_module(misdeed)).expect("the WAT parses");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("metadata embeds");
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .expect("a core module of the world")
        .encode()
        .expect("componentizes")
}

fn runtime(limits: Limits) -> Arc<Runtime> {
    Runtime::new(limits, None).unwrap()
}

fn limits() -> Limits {
    Limits { memory_bytes: 256 << 20, call_timeout: Duration::from_secs(5), ..Limits::default() }
}

fn one_batch() -> RecordBatch {
    let schema = Schema::new(vec![Field::new("packet_type", DataType::UInt8, false)]);
    RecordBatch::try_new(Arc::new(schema), vec![Arc::new(UInt8Array::from(vec![0u8; 100]))])
        .unwrap()
}

/// This process's resident set, from /proc (None elsewhere).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The margin over the plugin's memory limit the host may grow by while running it.
const RSS_MARGIN: u64 = 128 << 20;

/// Checks the host grew by less than the plugin's limit plus [`RSS_MARGIN`] since `before`.
fn assert_host_grew_within(before: Option<u64>, limit_bytes: u64) {
    if let (Some(before), Some(after)) = (before, resident_bytes()) {
        let grown = after.saturating_sub(before);
        assert!(
            grown < limit_bytes + RSS_MARGIN,
            "the host grew by {} MiB running a plugin limited to {} MiB",
            grown >> 20,
            limit_bytes >> 20
        );
    }
}

/// Loads `misdeed`, feeds it one batch and returns why it was stopped, checking the host's
/// growth meanwhile.
fn consume_failure(runtime: &Runtime, misdeed: Misdeed) -> PluginFailure {
    let plugin = runtime.load(&component(misdeed), "crafted").unwrap();
    let before = resident_bytes();
    let mut run = plugin.open(runtime, "{}").unwrap();
    let failure = run.consume("packets", &one_batch()).unwrap_err();
    assert_host_grew_within(before, runtime.limits().memory_bytes as u64);
    failure
}

#[test]
fn the_memory_limit_covers_every_memory_a_component_grows() {
    let failure = consume_failure(&runtime(limits()), Misdeed::GrowEightMemories);
    assert!(matches!(failure, PluginFailure::MemoryLimit { .. }), "{failure:?}");
    assert!(failure.to_string().contains("memory limit of 256 MiB"), "{failure}");
}

#[test]
fn memories_declared_over_the_limit_are_refused_at_instantiation() {
    let runtime = runtime(limits());
    let before = resident_bytes();
    // `load` instantiates once to call info(): the declared 8 x 128 MiB is refused there
    // (each memory alone is within the 256 MiB limit, the second takes the total over it).
    let refused = match runtime.load(&component(Misdeed::DeclareEightMemories), "declared") {
        Ok(plugin) => plugin.open(&runtime, "{}").err().map(|e| e.to_string()),
        Err(e) => Some(e.to_string()),
    };
    let refused = refused.expect("8 x 128 MiB of declared memory is refused");
    assert!(refused.contains("memory limit"), "{refused}");
    assert_host_grew_within(before, 256 << 20);
}

#[test]
fn tables_count_against_the_memory_limit() {
    let runtime = runtime(Limits { memory_bytes: 64 << 20, ..limits() });
    let failure = consume_failure(&runtime, Misdeed::GrowTable);
    assert!(matches!(failure, PluginFailure::MemoryLimit { .. }), "{failure:?}");
    assert!(failure.to_string().contains("memory limit of 64 MiB"), "{failure}");
}

#[test]
fn an_info_that_never_returns_is_refused_within_the_call_limit() {
    let runtime = runtime(Limits { call_timeout: Duration::from_secs(1), ..limits() });
    let started = Instant::now();
    let refused = runtime.load(&component(Misdeed::InfoLoops), "loops").err().unwrap();
    assert!(matches!(refused, RuntimeError::Invalid { .. }), "{refused:?}");
    let message = refused.to_string();
    assert!(message.contains("info()") && message.contains("time limit"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

#[test]
fn a_name_with_escape_codes_is_refused_and_printed_escaped() {
    let runtime = runtime(limits());
    let refused = runtime.load(&component(Misdeed::EscapeName), "escape").err().unwrap();
    let message = refused.to_string();
    assert!(message.contains("is not a plugin name"), "{message}");
    assert!(!message.chars().any(|c| c.is_control()), "raw control characters: {message:?}");
    assert!(message.contains("quality ok"), "{message}");
}

/// The crafted component itself is sound: with nothing wrong it loads, runs and reports, so
/// the failures above are the misdeeds', not the crafting's.
#[test]
fn a_crafted_component_that_behaves_runs() {
    let runtime = runtime(limits());
    let plugin = runtime.load(&component(Misdeed::Nothing), "calm").unwrap();
    assert_eq!(plugin.info().name, "crafted");
    assert_eq!(plugin.info().consumes[0].stream, "packets");
    assert_eq!(plugin.info().consumes[0].columns, ["packet_type"]);
    let mut run = plugin.open(&runtime, "{}").unwrap();
    run.consume("packets", &one_batch()).unwrap();
    let report = run.report().unwrap();
    assert!(report.figures.is_empty() && report.metrics.is_empty());
}
