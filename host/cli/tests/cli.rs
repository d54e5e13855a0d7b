//! The `larmon` binary as a user runs it: help text, exit codes, messages, files left behind.

use std::path::Path;
use std::process::{Command, Output};

use larmon_tests::{data, scratch};

fn larmon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_larmon")).args(args).output().expect("runs larmon")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn help_teaches_the_subcommands_with_examples() {
    let out = larmon(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in ["convert", "inspect", "bench", "Examples"] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
    let help = text(&larmon(&["convert", "--help"]).stdout);
    assert!(help.contains("--force") && help.contains("Example"), "{help}");
}

#[test]
fn convert_writes_then_refuses_to_overwrite_without_force() {
    let dir = scratch("cli-convert");
    let out_file = dir.join("packets.h5");
    let raw = data("small-raw.h5");
    let first = larmon(&["convert", p(&raw), "-o", p(&out_file)]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(text(&first.stdout).contains("36730 rows"), "{}", text(&first.stdout));
    let again = larmon(&["convert", p(&raw), "-o", p(&out_file)]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already exists"), "{}", text(&again.stderr));
    let forced = larmon(&["convert", p(&raw), "-o", p(&out_file), "--force", "--gzip", "4"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    // the gzip'd output reads back to the same rows
    let inspect = larmon(&["inspect", "--json", p(&out_file)]);
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(json[0]["rows"], 36730);
    assert_eq!(json[0]["format_version"], "2.4");
}

#[test]
fn failed_convert_leaves_no_output_behind() {
    let dir = scratch("cli-convert-fail");
    // A raw file whose last message is cut short: the writer has started when the error comes.
    let broken = dir.join("broken.h5");
    let mut writer = larmon_ingest::write::RawFileWriter::create(&broken, 1.7e9, false).unwrap();
    let good = [b'D', 1, 0, 0, 0, 0, 0, 0];
    let short = [b'D', 1, 0, 0, 0, 0, 1, 0, b'D'];
    writer.append([(1u8, &good[..]), (1, &good[..]), (2, &short[..])]).unwrap();
    writer.finish(1.7e9).unwrap();
    let out_file = dir.join("packets.h5");
    let out = larmon(&["convert", p(&broken), "-o", p(&out_file)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("larmon: error: ") && stderr.contains(p(&broken)), "{stderr}");
    assert!(stderr.contains("dataset `msgs`, row 2"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "files left behind: {left:?}");
}

#[test]
fn inspect_json_reports_kind_layout_counts_and_time_span() {
    let out =
        larmon(&["inspect", "--json", p(&data("small-raw.h5")), p(&data("small-legacy-v3_4.h5"))]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let raw = &json[0];
    assert_eq!(raw["kind"], "raw");
    assert_eq!(raw["messages"], 149);
    assert_eq!(raw["packets_by_type"], serde_json::json!([36261, 0, 2, 0, 149, 0, 18, 300]));
    assert_eq!(raw["parity_errors"], 33);
    assert_eq!(raw["io_groups"], serde_json::json!([1, 2]));
    assert_eq!(
        (raw["first_unix_time"].as_u64(), raw["last_unix_time"].as_u64()),
        (Some(1678848001), Some(1678848005))
    );
    let legacy = &json[1];
    assert_eq!(legacy["kind"], "packets");
    assert_eq!(legacy["layout"]["record_size"], 35);
    assert_eq!(legacy["layout"]["members"][17]["dtype"], "u1");
    let text_out = text(&larmon(&["inspect", p(&data("small-packets.h5"))]).stdout);
    assert!(
        text_out.contains("parity errors   33") && text_out.contains("36 bytes, 22 members"),
        "{text_out}"
    );
}

#[test]
fn inspect_of_a_non_hdf5_file_is_a_one_line_error() {
    let out = larmon(&["inspect", p(&data("README.md"))]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not an HDF5 file"), "{stderr}");
}

#[test]
fn calibrate_exports_streams_as_arrow_ipc_and_parquet() {
    let dir = scratch("cli-calibrate");
    let hits = dir.join("hits.arrow");
    let out = larmon(&["calibrate", p(&data("small-raw.h5")), "--export", p(&hits)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(summary.contains("150 events (150 triggered"), "{summary}");
    let reader =
        arrow::ipc::reader::FileReader::try_new(std::fs::File::open(&hits).unwrap(), None).unwrap();
    assert_eq!(reader.schema().metadata()["larmon.stream"], "hits");
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert!(summary.contains(&format!("-> {rows} hits")), "{rows} rows vs {summary}");

    let events = dir.join("events.arrow");
    let out = larmon(&[
        "calibrate",
        p(&data("small-packets.h5")),
        "--export",
        p(&events),
        "--stream",
        "events",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reader =
        arrow::ipc::reader::FileReader::try_new(std::fs::File::open(&events).unwrap(), None)
            .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 150);

    let again = larmon(&["calibrate", p(&data("small-raw.h5")), "--export", p(&hits)]);
    assert!(!again.status.success() && text(&again.stderr).contains("--force"));
    let csv = larmon(&["calibrate", p(&data("small-raw.h5")), "--export", p(&dir.join("x.csv"))]);
    assert!(text(&csv.stderr).contains("not .csv"), "{}", text(&csv.stderr));

    // The fixtures are the simulation's one module: on the 2x2's module-1 layout (the
    // default) their tracks fall apart.
    let parquet = dir.join("tracks.parquet");
    let out = larmon(&[
        "calibrate",
        p(&data("small-raw.h5")),
        "--detector",
        "sim-module",
        "--export",
        p(&parquet),
        "--stream",
        "tracks",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&parquet).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert!((150..=160).contains(&rows), "{rows} tracks for 150 true tracks");
}

#[test]
fn calibrate_reports_a_bad_configuration_clearly() {
    let dir = scratch("cli-calibrate-config");
    let config = dir.join("larmon.toml");
    std::fs::write(&config, "e_feild_kv_cm = 0.5\n").unwrap();
    let out = larmon(&["calibrate", p(&data("small-raw.h5")), "--config", p(&config)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("larmon.toml") && stderr.contains("e_feild_kv_cm"), "{stderr}");
}

fn component(profile: &str, name: &str) -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-wasip2")
        .join(profile)
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the plugins with `bash .ci/plugins`",
        path.display()
    );
    path
}

#[test]
fn run_writes_a_report_with_each_plugins_status_metrics_checks_and_figures() {
    let dir = scratch("cli-run");
    let config = dir.join("larmon.toml");
    // A relative path in the config is taken relative to the config file.
    std::fs::create_dir_all(dir.join("calibration")).unwrap();
    std::fs::write(dir.join("calibration/pedestal.json"), "{}").unwrap();
    std::fs::write(
        &config,
        "[charge]\npedestal_file = \"calibration/pedestal.json\"\n[plugins.hostile]\nmode = \"spin\"\n",
    )
    .unwrap();
    let plugin_dir =
        component("plugin", "larmon_plugin_packet_rate").parent().unwrap().to_path_buf();
    let hostile = component("plugin-test", "larmon_test_hostile");
    let out = larmon(&[
        "run",
        p(&data("small-raw.h5")),
        "--out",
        p(&dir.join("reports")),
        "--plugin-dir",
        p(&plugin_dir),
        "--plugin",
        p(&hostile),
        "--config",
        p(&config),
        "--plugin-timeout",
        "1",
        "--cache-dir",
        p(&dir.join("cache")),
    ]);
    assert!(
        out.status.success(),
        "the host did not fail, so the exit code is 0: {}",
        text(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reports/small-raw/report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["host"]["triggered_events"], 150);
    let plugins = report["plugins"].as_array().unwrap();
    let by_name = |n: &str| plugins.iter().find(|p| p["name"] == n).unwrap();
    let rate = by_name("packet-rate");
    assert_eq!(rate["status"], "ok");
    let parity =
        rate["metrics"].as_array().unwrap().iter().find(|m| m["name"] == "parity_errors").unwrap();
    assert_eq!(parity["value"], 33.0);
    assert_eq!(rate["checks"][0]["status"], "ok");
    let svg = dir.join("reports/small-raw").join(rate["figures"][0]["svg"].as_str().unwrap());
    assert!(std::fs::read_to_string(svg).unwrap().starts_with("<svg"));
    let hostile = by_name("hostile");
    assert_eq!(hostile["status"], "error");
    let error = hostile["error"].as_str().unwrap();
    assert!(error.contains("time limit of 1.0 s"), "{hostile}");
    assert!(error.starts_with("file 1: "), "the file the failure came from: {hostile}");
}

/// Every file under `dir` with its bytes and modification time.
fn files_with_times(
    dir: &Path,
) -> std::collections::BTreeMap<std::path::PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut files = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(folder) = todo.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let modified = entry.metadata().unwrap().modified().unwrap();
                files.insert(path.clone(), (std::fs::read(&path).unwrap(), modified));
            }
        }
    }
    files
}

/// A reviewer's `larmon run --as NAME` with their own plugins — one that fails and one that
/// replaces a bundled plugin — writes a version beside the official report and leaves every
/// official file byte-identical (and unwritten); both reports say what made them.
#[test]
fn a_reviewer_version_leaves_the_official_report_untouched_and_names_its_plugin_builds() {
    let dir = scratch("cli-reviewer");
    let out = dir.join("reports");
    let bundled = component("plugin", "larmon_plugin_packet_rate");
    let plugin_dir = dir.join("bundled");
    std::fs::create_dir_all(&plugin_dir).unwrap();
    std::fs::copy(&bundled, plugin_dir.join("larmon_plugin_packet_rate.wasm")).unwrap();
    let (raw, cache) = (data("small-raw.h5"), dir.join("cache"));
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            p(&raw),
            "--out",
            p(&out),
            "--plugin-dir",
            p(&plugin_dir),
            "--cache-dir",
            p(&cache),
            "--plugin-timeout",
            "1",
        ];
        args.extend_from_slice(extra);
        larmon(&args)
    };
    let official = run(&[]);
    assert!(official.status.success(), "{}", text(&official.stderr));
    let official_dir = out.join("small-raw");
    let before = files_with_times(&official_dir);
    let report: serde_json::Value =
        serde_json::from_slice(&before[&official_dir.join("report.json")].0).unwrap();
    assert_eq!(report["quality"]["flag"], "ok", "{report}");
    assert!(report.get("version").is_none(), "the official report is no version");
    let detector_sha256 = report["provenance"]["detector_sha256"].as_str().unwrap().to_string();
    assert_eq!(detector_sha256.len(), 64, "{report}");
    assert!(report["provenance"]["config_sha256"].is_null(), "no --config: built-in defaults");

    let mine = dir.join("my-packet-rate.wasm");
    std::fs::copy(&bundled, &mine).unwrap();
    let config = dir.join("mine.toml");
    let config_text = "[plugins.hostile]\nmode = \"spin\"\n";
    std::fs::write(&config, config_text).unwrap();
    let hostile = component("plugin-test", "larmon_test_hostile");
    let args =
        ["--as", "alice", "--plugin", p(&mine), "--plugin", p(&hostile), "--config", p(&config)];
    let review = run(&args);
    assert!(review.status.success(), "{}", text(&review.stderr));

    let version_dir = official_dir.join("versions/alice");
    let after = files_with_times(&official_dir);
    for (path, (bytes, modified)) in &before {
        let (now, now_modified) = &after[path];
        assert!(now == bytes && now_modified == modified, "{} was touched", path.display());
    }
    assert!(after.keys().all(|p| before.contains_key(p) || p.starts_with(&version_dir)));

    let version: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(version_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(version["run"], "small-raw");
    assert_eq!(version["version"], "alice");
    assert_eq!(version["quality"]["flag"], "error", "the failing plugin flags the version only");
    let provenance = &version["provenance"];
    assert_eq!(provenance["detector_sha256"], detector_sha256.as_str(), "same detector");
    assert_eq!(
        provenance["config_sha256"],
        larmon_pipeline::config::sha256_hex(config_text.as_bytes()).as_str()
    );
    let replaced = &provenance["replaced_plugins"][0];
    assert_eq!(replaced["name"], "packet-rate", "{provenance}");
    assert_eq!(replaced["bundled_file"], "larmon_plugin_packet_rate.wasm");
    assert_eq!(replaced["by_file"], "my-packet-rate.wasm");
    let plugins = version["plugins"].as_array().unwrap();
    let rate = plugins.iter().find(|p| p["name"] == "packet-rate").unwrap();
    assert_eq!(rate["file"], "my-packet-rate.wasm");
    assert_eq!(rate["sha256"].as_str().unwrap().len(), 64);
    let svg = version_dir.join(rate["figures"][0]["svg"].as_str().unwrap());
    assert!(std::fs::read_to_string(svg).unwrap().starts_with("<svg"), "figures beside it");

    let listed = text(&larmon(&["runs", p(&out)]).stdout);
    assert_eq!(listed.matches("small-raw").count(), 1, "a version is no run of its own: {listed}");
    for bad in ["../escape", ".hidden", "a/b", ""] {
        let refused = run(&["--as", bad]);
        assert!(!refused.status.success(), "--as {bad:?} was taken");
        assert!(
            text(&refused.stderr).contains("cannot name a version"),
            "{}",
            text(&refused.stderr)
        );
    }
    assert!(!dir.join("escape").exists() && !out.join("escape").exists());
}

/// `larmon signoff` records who decided what and why; `larmon runs --good` follows the human
/// decision over the automatic flag, in both directions, and `--flag auto` hands a run back.
#[test]
fn a_sign_off_overrides_the_automatic_flag_in_the_good_run_list() {
    let dir = scratch("cli-signoff");
    let out = dir.join("reports");
    for (run, flag, start) in [("run-0000001", "ok", 100), ("run-0000002", "error", 200)] {
        std::fs::create_dir_all(out.join(run)).unwrap();
        let report = serde_json::json!({
            "run": run, "files": [format!("{run}.h5")], "larmon_version": "0.1.0",
            "created_unix_s": 1.7e9, "start_unix_s": start, "end_unix_s": start + 9,
            "host": {}, "quality": {"flag": flag, "host_checks": []}, "plugins": []
        });
        std::fs::write(out.join(run).join("report.json"), report.to_string()).unwrap();
    }
    let good = || -> Vec<String> {
        let listed = larmon(&["runs", p(&out), "--good"]);
        assert!(listed.status.success(), "{}", text(&listed.stderr));
        let runs: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        runs.as_array().unwrap().iter().map(|r| r["run"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(good(), ["run-0000001"], "no sign-off: the automatic flags decide");

    let sign = |run: &str, flag: &str, comment: &str| {
        larmon(&["signoff", p(&out), run, "--flag", flag, "--by", "ana", "--comment", comment])
    };
    let signed = sign("run-0000002", "good", "the error was a known cable, masked offline");
    assert!(signed.status.success(), "{}", text(&signed.stderr));
    assert!(text(&signed.stdout).contains("good by ana (automatic flag error)"));
    assert!(sign("run-0000001", "bad", "HV trip at 03:12").status.success());
    assert_eq!(good(), ["run-0000002"], "the human decisions rule");
    let listed = larmon(&["runs", p(&out), "--good"]);
    let runs: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(runs[0]["good_by"], "sign-off");
    assert_eq!(runs[0]["signoff"]["comment"], "the error was a known cable, masked offline");
    let table = text(&larmon(&["runs", p(&out)]).stdout);
    assert!(table.contains("bad (ana)") && table.contains("good (ana)"), "{table}");

    assert!(sign("run-0000001", "auto", "trip was after the run ended").status.success());
    assert_eq!(good(), ["run-0000001", "run-0000002"]);
    let history = text(&larmon(&["signoff", p(&out), "run-0000001"]).stdout);
    assert!(history.contains("HV trip at 03:12") && history.contains("after the run ended"));

    let missing_reason =
        larmon(&["signoff", p(&out), "run-0000001", "--flag", "good", "--by", "ana"]);
    assert!(!missing_reason.status.success(), "a decision needs a reason");
    let unknown = sign("run-0000009", "good", "typo");
    assert!(!unknown.status.success());
    assert!(text(&unknown.stderr).contains("no run \"run-0000009\""), "{}", text(&unknown.stderr));
    let wrong = sign("run-0000001", "great", "why not");
    assert!(text(&wrong.stderr).contains("no decision"), "{}", text(&wrong.stderr));
}

/// A truncated .wasm in the plugin folder and a --plugin that does not exist are reported as
/// failed plugins, on stderr and in the report, while the run goes on with the others; a plugin
/// that sleeps for an hour inside a WASI call is stopped by its time limit.
#[test]
fn bad_plugin_files_and_a_sleeping_plugin_do_not_stop_the_run() {
    let dir = scratch("cli-bad-plugins");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let good = component("plugin", "larmon_plugin_packet_rate");
    std::fs::copy(&good, plugins.join("larmon_plugin_packet_rate.wasm")).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(plugins.join("truncated.wasm"), &bytes[..bytes.len() / 3]).unwrap();
    std::fs::write(dir.join("larmon.toml"), "[plugins.hostile]\nmode = \"sleep\"\n").unwrap();
    let started = std::time::Instant::now();
    let out = larmon(&[
        "run",
        p(&data("small-raw.h5")),
        "--out",
        p(&dir.join("reports")),
        "--plugin-dir",
        p(&plugins),
        "--plugin",
        p(&dir.join("missing.wasm")),
        "--plugin",
        p(&component("plugin-test", "larmon_test_hostile")),
        "--plugin-timeout",
        "2",
        "--config",
        p(&dir.join("larmon.toml")),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(started.elapsed() < std::time::Duration::from_secs(120), "{:?}", started.elapsed());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("warning: plugin truncated.wasm not loaded"), "{stderr}");
    assert!(stderr.contains("warning: plugin missing.wasm not loaded"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reports/small-raw/report.json")).unwrap(),
    )
    .unwrap();
    let status = |name: &str| {
        let plugin = report["plugins"].as_array().unwrap().iter().find(|p| p["name"] == name);
        let plugin = plugin.unwrap_or_else(|| panic!("{name} not in the report"));
        (plugin["status"].as_str().unwrap().to_string(), plugin["error"].to_string())
    };
    assert_eq!(status("packet-rate").0, "ok");
    for name in ["truncated", "missing"] {
        let (state, error) = status(name);
        assert_eq!(state, "error");
        assert!(error.contains("not loaded"), "{name}: {error}");
    }
    let (state, error) = status("hostile");
    assert_eq!(state, "error");
    assert!(error.contains("time limit of 2.0 s"), "{error}");
    assert_eq!(report["quality"]["flag"], "error");
}

#[test]
fn plugin_check_prints_info_and_plugin_new_scaffolds_a_member() {
    let out = larmon(&["plugin", "check", p(&component("plugin", "larmon_plugin_packet_rate"))]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("packet-rate 0.1.0") && stdout.contains("consumes     packets:"),
        "{stdout}"
    );

    let repo = scratch("cli-plugin-new");
    std::fs::create_dir_all(repo.join("plugins")).unwrap();
    std::fs::write(repo.join("plugins/Cargo.toml"), "[workspace]\nmembers = [\"packet-rate\"]\n")
        .unwrap();
    let out = larmon(&["plugin", "new", "my-plot", "--repo", p(&repo)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let members = std::fs::read_to_string(repo.join("plugins/Cargo.toml")).unwrap();
    assert!(members.contains("\"my-plot\", \"packet-rate\""), "{members}");
    let source = std::fs::read_to_string(repo.join("plugins/my-plot/src/lib.rs")).unwrap();
    assert!(source.contains("Info::new(\"my-plot\"") && source.contains("export_plugin!(State)"));
    let bad = larmon(&["plugin", "new", "My Plot", "--repo", p(&repo)]);
    assert!(!bad.status.success() && text(&bad.stderr).contains("lower-case"));
}

#[test]
fn simulate_writes_split_raw_files_that_read_back_to_the_truth_counts() {
    let dir = scratch("cli-simulate");
    let out = larmon(&[
        "simulate",
        "--out",
        p(&dir),
        "--run",
        "12",
        "--duration-s",
        "3",
        "--files",
        "2",
        "--muon-rate-hz",
        "20",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("binary-0000012-truth.json")).unwrap(),
    )
    .unwrap();
    let files: Vec<String> = truth["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| dir.join(f.as_str().unwrap()))
        .map(|f| f.to_string_lossy().into())
        .collect();
    assert_eq!(files.len(), 2);
    // Run 12 starts at the default base + 12 h; the files are named by their UTC start.
    assert!(files[0].ends_with("binary-0000012-2023_03_15_14_40_00_UTC.h5"), "{files:?}");
    assert!(files[1].ends_with("binary-0000012-2023_03_15_14_40_01_UTC.h5"), "{files:?}");
    let mut args = vec!["inspect", "--json"];
    args.extend(files.iter().map(String::as_str));
    let inspect = larmon(&args);
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let expected = &truth["counts"]["packet_rows_by_type"];
    for kind in [0, 4, 6, 7] {
        let rows: u64 = (0..2).map(|i| json[i]["packets_by_type"][kind].as_u64().unwrap()).sum();
        assert_eq!(rows, expected[kind.to_string()].as_u64().unwrap(), "type {kind}");
    }
    assert_eq!(expected["7"], 8 * 60); // 60 muons, a trigger word on each of the 2x2's io_groups
    assert_eq!(json[0]["first_unix_time"], truth["run"]["unix_start"]);
}

#[test]
fn demo_simulates_three_runs_processes_them_and_flags_the_bad_one() {
    let dir = scratch("cli-demo");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(env!("CARGO_BIN_EXE_larmon"))
        .args(["demo", "--no-serve", "--out", p(&dir)])
        .env("LARMON_PLUGIN_DIR", repo.join("target/wasm32-wasip2/plugin"))
        .env("XDG_CACHE_HOME", repo.join("target/test-plugin-cache-home"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let flag = |run: &str| -> String {
        let path = dir.join("reports").join(run).join("report.json");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        report["quality"]["flag"].as_str().unwrap().into()
    };
    assert_eq!(flag("run-0000001"), "ok");
    assert_eq!(flag("run-0000003"), "error", "run 3 has τ = 900 µs and 40 hot channels");
    let good = larmon(&["runs", "--good", p(&dir.join("reports"))]);
    let good: serde_json::Value = serde_json::from_slice(&good.stdout).unwrap();
    let good: Vec<&str> =
        good.as_array().unwrap().iter().filter_map(|r| r["run"].as_str()).collect();
    assert!(good.contains(&"run-0000001") && !good.contains(&"run-0000003"), "{good:?}");
}

/// Out of the box the detector is the real 2x2: `detector show` lists its four modules with
/// their pitches, `detector check` knows every channel of the real Run-2 ndlar_flow sample.
#[test]
fn detector_show_and_check_describe_the_real_2x2() {
    let out = larmon(&["detector", "show", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["detector"], "2x2");
    assert_eq!(json["pixels"], 337_600);
    let modules = json["modules"].as_array().unwrap();
    assert_eq!(modules.len(), 4);
    let pitches: Vec<f64> = modules.iter().map(|m| m["pitch_mm"].as_f64().unwrap()).collect();
    assert_eq!(pitches, [4.434, 4.434, 3.87975, 4.434]);
    assert_eq!(modules[3]["io_groups"], serde_json::json!([7, 8]));
    let table = text(&larmon(&["detector", "show"]).stdout);
    assert!(table.contains("pixels: 337600") && table.contains("builtin:2x2-module3"), "{table}");

    let sample = data("real/run2-cosmics-flow-sample.hdf5");
    let out = larmon(&["detector", "check", p(&sample), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((check["channels"].as_u64(), check["unknown"].as_u64()), (Some(4964), Some(0)));
    assert_eq!(check["read_on_another_uart_of_their_tile"], 1834);
    assert_eq!(check["hits_on_known_channels"], 15_297);
    // The same file against the simulation's one module: io_groups 3-8 are unknown.
    let out = larmon(&["detector", "check", p(&sample), "--detector", "sim-module", "--json"]);
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(check["unknown"].as_u64().unwrap() > 3000, "{check}");

    let out = larmon(&["detector", "show", "--detector", "3x3"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("3x3") && stderr.contains("sim-module"), "{stderr}");
}

/// A run's report says which detector and where the channel constants came from: a 2x2
/// decimal-key pedestal file applies to exactly its 10 channels.
#[test]
fn the_run_report_records_the_detector_and_the_pedestal_files() {
    let dir = scratch("cli-report-detector");
    let config = dir.join("larmon.toml");
    std::fs::write(
        &config,
        format!("[charge]\npedestal_file = {:?}\n", data("real/ped-iog1-excerpt.json")),
    )
    .unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let plugin = repo.join("target/wasm32-wasip2/plugin/larmon_plugin_packet_rate.wasm");
    std::fs::create_dir_all(dir.join("no-plugins")).unwrap();
    let out = larmon(&[
        "run",
        p(&data("small-packets.h5")),
        "--out",
        p(&dir.join("reports")),
        "--run",
        "r",
        "--config",
        p(&config),
        "--plugin-dir",
        p(&dir.join("no-plugins")),
        "--plugin",
        p(&plugin),
        "--cache-dir",
        p(&repo.join("target/test-plugin-cache")),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reports/r/report.json")).unwrap())
            .unwrap();
    let detector = &report["detector"];
    assert_eq!(detector["name"], "2x2");
    assert_eq!(detector["pixels"], 337_600);
    assert_eq!(detector["pitches_mm"], serde_json::json!([3.87975, 4.434]));
    let file = &detector["channel_files"][0];
    assert_eq!(file["key_format"], "decimal2x2");
    assert_eq!((file["keys"].as_u64(), file["applied"].as_u64()), (Some(10), Some(10)));
    assert_eq!(detector["channels_with_file_constants"], 10);
    assert_eq!(detector["channels_with_default_constants"], 337_590);
}

/// The real Run-2 ndlar_flow sample through every command that takes a charge file: inspect,
/// calibrate, run and meta see its 100 events and 15 297 hits.
#[test]
fn an_ndlar_flow_file_is_input_to_inspect_calibrate_run_and_meta() {
    let dir = scratch("cli-flow");
    let flow = data("real/run2-cosmics-flow-sample.hdf5");
    let out = larmon(&["inspect", "--json", p(&flow)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary[0]["kind"], "ndlar_flow");
    assert_eq!(
        (summary[0]["events"].as_u64(), summary[0]["hits"].as_u64()),
        (Some(100), Some(15_297))
    );
    assert_eq!(summary[0]["io_groups"], serde_json::json!([1, 2, 3, 4, 5, 6, 7, 8]));

    let export = dir.join("events.parquet");
    let out = larmon(&["calibrate", p(&flow), "--export", p(&export), "--stream", "events"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("15297 hits") && stdout.contains("100 events"), "{stdout}");
    let file = std::fs::File::open(&export).unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let mark = reader.schema().metadata().get("larmon.calibration").cloned().unwrap_or_default();
    assert!(mark.starts_with("ndlar_flow charge/calib_prompt_hits"), "{mark}");
    let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 100);

    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let plugin = repo.join("target/wasm32-wasip2/plugin/larmon_plugin_event_display.wasm");
    std::fs::create_dir_all(dir.join("no-plugins")).unwrap();
    let out = larmon(&[
        "run",
        p(&flow),
        "--out",
        p(&dir.join("reports")),
        "--plugin-dir",
        p(&dir.join("no-plugins")),
        "--plugin",
        p(&plugin),
        "--cache-dir",
        p(&repo.join("target/test-plugin-cache")),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reports/run2-cosmics-flow-sample/report.json")).unwrap(),
    )
    .unwrap();
    let host = &report["host"];
    assert_eq!(host["hits"], 15_297);
    assert_eq!(
        host["triggered_events"].as_u64().unwrap()
            + host["self_triggered_events"].as_u64().unwrap(),
        100
    );
    assert_eq!(host["flow_hits_charge_from_adc"], 15_297);
    let display = report["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "event-display")
        .unwrap();
    let shown = display["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "events_shown")
        .unwrap();
    assert_eq!(shown["value"], 4.0, "larmon's tracks on flow's hits: {display}");

    let out = larmon(&["meta", p(&flow), "--stable-s", "0"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(meta["namespace"], "neardet-2x2-lar");
    assert_eq!(meta["metadata"]["core.event_count"], 100);
    assert_eq!(meta["metadata"]["dune.triggered_events"], 81);
    assert!(meta["metadata"].get("core.runs").is_none(), "the name has no run number: {meta}");
}

/// Small fixes: a closed pipe ends `inspect` quietly; `larmon light` on a charge file says it is
/// not a light file.
#[test]
fn a_closed_pipe_is_no_panic_and_light_names_what_it_wants() {
    let file = data("small-packets.h5");
    let many: Vec<&str> = std::iter::repeat_n(p(&file), 80).collect();
    let script = format!(
        "{} inspect --json {} | head -c 10 >/dev/null; echo \"${{PIPESTATUS[0]}}\"",
        env!("CARGO_BIN_EXE_larmon"),
        many.join(" ")
    );
    let out = Command::new("bash").arg("-c").arg(&script).output().unwrap();
    let status = text(&out.stdout);
    // 141 = killed by SIGPIPE, as `cat` is; 101 was Rust's panic on the broken pipe.
    assert!(matches!(status.trim(), "0" | "141"), "exit {status}: {}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("panicked"), "{}", text(&out.stderr));

    let out = larmon(&["light", p(&file)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("not a light-readout file") && !stderr.contains("LArPix"), "{stderr}");
}

/// `larmon light --export`: the reduced product of a light file, a row per waveform, with its
/// declaration naming the raw file as parent, far smaller than the waveforms.
#[test]
fn light_export_writes_the_reduced_product_with_its_parent() {
    let dir = scratch("cli-light-export");
    let raw = larmon_tests::simulated_light_run(&dir.join("sim"), 1, 3, 1).light;
    let out = dir.join("pulses.parquet");
    let run = larmon(&["light", p(&raw), "--export", p(&out)]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let file = std::fs::File::open(&out).unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert!(text(&run.stdout).contains(&format!("{rows} waveforms")), "{}", text(&run.stdout));
    let declaration: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("pulses.parquet.json")).unwrap())
            .unwrap();
    assert_eq!(
        declaration["parents"][0]["did"],
        "neardet-2x2-lar-light:mpd_run_sim_rctl_1_p0.data"
    );
    assert_eq!(declaration["metadata"]["core.file_format"], "parquet");
    let ratio = std::fs::metadata(&raw).unwrap().len() as f64
        / std::fs::metadata(&out).unwrap().len() as f64;
    assert!(ratio > 10.0, "only {ratio:.1}x smaller than the waveforms");
    let again = larmon(&["light", p(&raw), "--export", p(&out)]);
    assert!(text(&again.stderr).contains("already exists"), "{}", text(&again.stderr));
}

/// `larmon bench` measures every stage on the file it is given, the whole run through the
/// bundled plugins included, and counts the file's rows in each.
#[test]
fn bench_measures_each_stage_and_the_whole_run_with_every_plugin() {
    let plugin_dir =
        component("plugin", "larmon_plugin_packet_rate").parent().unwrap().to_path_buf();
    let plugins = std::fs::read_dir(&plugin_dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "wasm"))
        .count();
    let raw = data("small-raw.h5");
    let bench = |extra: &[&str]| {
        let mut args = vec!["bench", p(&raw), "--seconds", "0", "--json"];
        args.extend(["--detector", "sim-module", "--plugin-dir", p(&plugin_dir)]);
        args.extend(extra);
        let out = larmon(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    };
    let measured = bench(&[]);
    let tasks: Vec<&str> = measured.iter().map(|m| m["task"].as_str().unwrap()).collect();
    let whole_run = format!("whole run, {plugins} plugins");
    for task in [
        "file -> arrow packets",
        "file -> calibrated batches (1 core)",
        "file -> calibrated batches (all cores)",
        "convert raw -> packet file",
        &whole_run,
    ] {
        assert!(tasks.contains(&task), "{task} missing from {tasks:?}");
    }
    for m in &measured {
        assert_eq!(m["rows"], 36730, "{m}");
        assert!(m["passes"].as_u64().unwrap() >= 3, "{m}");
        assert!(m["median_rows_per_s"].as_f64().unwrap() > 0.0, "{m}");
    }
    let without_run = bench(&["--no-run"]);
    assert_eq!(without_run.len(), measured.len() - 1);
    assert!(without_run.iter().all(|m| !m["task"].as_str().unwrap().starts_with("whole run")));
}

/// docs/writing-a-plugin.md lists every stream's columns as `larmon streams --markdown` prints
/// them from the pipeline's schemas: a column added, renamed or retyped fails here until the
/// page is regenerated.
#[test]
fn the_plugin_guide_lists_the_streams_the_pipeline_sends() {
    let out = larmon(&["streams", "--markdown"]);
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    // Each column's type as a `columns!` declaration writes it (nullable: Option).
    assert!(generated.contains("| `q_ke` | Float32 | `f32` |"), "{generated}");
    assert!(generated.contains("| `drift_ticks` | Float32 (nullable) | `Option<f32>` |"));
    assert!(generated.contains("| `samples` | List(non-null Int16) | `[i16]` |"), "{generated}");
    let guide = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/writing-a-plugin.md"),
    )
    .unwrap();
    let begin = "<!-- streams: begin (larmon streams --markdown) -->\n";
    let start = guide.find(begin).expect("the guide's streams section") + begin.len();
    let end = guide.find("<!-- streams: end -->").expect("the end of the streams section");
    assert!(
        guide[start..end] == generated,
        "docs/writing-a-plugin.md is out of date: put the output of `larmon streams --markdown` \
         between its `streams:` markers"
    );
}

/// A plugin's settings are typed: a misspelt key or a wrong type in `[plugins.NAME]` stops that
/// plugin with a message naming the key (the others run), and `plugin check` lists the keys the
/// plugin's `settings!` declares, in the order it declares them.
#[test]
fn a_misspelt_or_mistyped_setting_stops_its_plugin_with_the_key_named() {
    let dir = scratch("cli-typed-settings");
    let p = |path: &Path| path.to_str().unwrap().to_owned();
    let packet_rate = component("plugin", "larmon_plugin_packet_rate");
    let checked = larmon(&["plugin", "check", &p(&packet_rate)]);
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    let listed = text(&checked.stdout);
    assert!(
        listed.contains("config keys  parity_warn_fraction, parity_error_fraction"),
        "{listed}"
    );
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for name in ["larmon_plugin_packet_rate", "larmon_plugin_fifo_flags", "larmon_plugin_tile_rate"]
    {
        std::fs::copy(component("plugin", name), plugins.join(format!("{name}.wasm"))).unwrap();
    }
    std::fs::write(
        dir.join("larmon.toml"),
        "[plugins.packet-rate]\nparity_warn_fractoin = 0.01\n\
         [plugins.fifo-flags]\nwarn_full_fraction = \"high\"\n\
         [plugins.tile-rate]\nwarn_low_fraction = 0.5\n",
    )
    .unwrap();
    let out = larmon(&[
        "run",
        &p(&data("small-raw.h5")),
        "--out",
        &p(&dir.join("reports")),
        "--plugin-dir",
        &p(&plugins),
        "--config",
        &p(&dir.join("larmon.toml")),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reports/small-raw/report.json")).unwrap(),
    )
    .unwrap();
    let entry = |name: &str| {
        report["plugins"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap().clone()
    };
    let misspelt = entry("packet-rate");
    assert_eq!(misspelt["status"], "error");
    let error = misspelt["error"].as_str().unwrap();
    assert!(error.contains("unknown field `parity_warn_fractoin`"), "{error}");
    let mistyped = entry("fifo-flags");
    assert_eq!(mistyped["status"], "error");
    assert!(mistyped["error"].as_str().unwrap().contains("invalid type"), "{mistyped}");
    // A correct setting is used: half the median tile rate is the new warning threshold.
    let tile_rate = entry("tile-rate");
    assert_eq!(tile_rate["status"], "ok", "{tile_rate}");
    let checks = tile_rate["checks"].to_string();
    assert!(checks.contains("50 %"), "{checks}");
}
