//! Python plugins, as a volunteer makes them: `larmon plugin new --python` in an empty folder →
//! `build` (componentize-py, installed by larmon on first use) → `test --bless` / `--expect` →
//! `larmon run --plugin` → the plot on the dashboard; the Python port of packet-rate gives the
//! Rust plugin's metrics and figures; the Python SDK's Arrow reader gives arrow-rs's values for
//! every column type the streams carry, through snapshots and merges of several files; and the
//! SDK module's own unit tests (tests/python/test_larmon_plugin.py) pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int16Type, Int64Type};
use arrow::datatypes::{UInt8Type, UInt16Type, UInt64Type};
use larmon_tests::simulated_light_run;
use larmon_tests::{Server, data, output_text as text, plugin_author_command, repo, scratch};

/// `larmon ARGS` in `dir`, with larmon's data folder (SDK, componentize-py) under `dir/data`.
fn larmon(dir: &Path, args: &[&str]) -> Output {
    plugin_author_command(Path::new(env!("CARGO_BIN_EXE_larmon")), dir, args).output().unwrap()
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "{}", text(&output));
    text(&output)
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn plugin<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let plugins = report["plugins"].as_array().unwrap();
    plugins.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name} not in report"))
}

fn metrics(entry: &serde_json::Value) -> BTreeMap<String, f64> {
    assert_eq!(entry["status"], "ok", "{entry}");
    let list = entry["metrics"].as_array().unwrap();
    list.iter()
        .map(|m| (m["name"].as_str().unwrap().to_owned(), m["value"].as_f64().unwrap()))
        .collect()
}

#[test]
fn the_python_sdk_unit_tests_pass() {
    let tests = repo().join("tests/python");
    let output = Command::new("python3")
        .args(["-m", "unittest", "-v", "test_larmon_plugin"])
        .current_dir(&tests)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 (needed for Python plugins)");
    let text = text(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("Ran 7 tests"), "{text}");
}

#[test]
fn a_python_plugin_made_in_an_empty_folder_builds_is_tested_and_shows_on_the_dashboard() {
    let dir = scratch("python-plugin-scaffold");
    let small = data("small-raw.h5");
    let small = small.to_str().unwrap();

    let made = ok(larmon(&dir, &["plugin", "new", "--python", "my-py-plot"]));
    assert!(made.contains("my_py_plot.py"), "{made}");
    let again = larmon(&dir, &["plugin", "new", "--python", "my-py-plot"]);
    assert!(!again.status.success() && text(&again).contains("not empty"), "{}", text(&again));

    // Built with componentize-py, which larmon installs into its data folder on first use.
    let built = ok(larmon(&dir, &["plugin", "build", "my-py-plot"]));
    let wasm = dir.join("my-py-plot/target/my_py_plot.wasm");
    assert!(built.contains(&format!("built {}", wasm.display())), "{built}");
    assert!(dir.join("data/larmon/sdk/componentize-py-0.25.1/componentize_py").is_dir());
    let unchanged = ok(larmon(&dir, &["plugin", "build", "my-py-plot"]));
    assert!(unchanged.contains("up to date"), "{unchanged}");
    let checked = ok(larmon(&dir, &["plugin", "check", wasm.to_str().unwrap()]));
    assert!(checked.contains("name         my-py-plot 0.1.0"), "{checked}");
    assert!(checked.contains("consumes     hits: q_ke"), "{checked}");
    assert!(checked.contains("config keys  warn_below_ke"), "{checked}");

    // Its metrics become its regression test, which fails when one moves.
    let blessed = ok(larmon(&dir, &["plugin", "test", "my-py-plot", "--on", small, "--bless"]));
    assert!(blessed.contains("my-py-plot 0.1.0: ok"), "{blessed}");
    let expected = std::fs::read_to_string(dir.join("my-py-plot/expected.toml")).unwrap();
    let mean: f64 = expected
        .lines()
        .find_map(|l| l.strip_prefix("mean_charge = "))
        .unwrap_or_else(|| panic!("{expected}"))
        .parse()
        .unwrap();
    assert!(mean > 1.0 && mean < 200.0, "{mean} ke-");
    let expect =
        ["plugin", "test", "my-py-plot", "--on", small, "--expect", "my-py-plot/expected.toml"];
    assert!(ok(larmon(&dir, &expect)).contains("all 1 expected metrics match"));

    // Its settings are typed like a Rust plugin's: a misspelt key stops it with the key named.
    std::fs::write(dir.join("bad.toml"), "[plugins.my-py-plot]\nwarn_below = 3.0\n").unwrap();
    let misspelt = larmon(
        &dir,
        &["plugin", "test", "my-py-plot", "--on", small, "--config", "bad.toml", "--out", "o"],
    );
    assert!(!misspelt.status.success(), "{}", text(&misspelt));
    assert!(text(&misspelt).contains("unknown field `warn_below`"), "{}", text(&misspelt));

    // A Python error names the exception and the plugin's line.
    let source = std::fs::read_to_string(dir.join("my-py-plot/my_py_plot.py")).unwrap();
    std::fs::create_dir_all(dir.join("broken")).unwrap();
    std::fs::write(dir.join("broken/broken.py"), source.replace("fill(q)", "fill(q / 0)")).unwrap();
    let broken = larmon(&dir, &["plugin", "test", "broken", "--on", small]);
    assert!(!broken.status.success(), "{}", text(&broken));
    assert!(text(&broken).contains("ZeroDivisionError"), "{}", text(&broken));
    assert!(text(&broken).contains("broken.py:"), "{}", text(&broken));
    // A file without a plugin class is refused when built, not when run.
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::write(dir.join("empty/nothing.py"), "X = 1\n").unwrap();
    let empty = larmon(&dir, &["plugin", "build", "empty"]);
    assert!(!empty.status.success(), "{}", text(&empty));
    assert!(text(&empty).contains("exactly one Plugin subclass"), "{}", text(&empty));

    // With the bundled plugins, in a run report, on the dashboard.
    let out = dir.join("reports");
    ok(larmon(
        &dir,
        &[
            "run",
            small,
            "--run",
            "run-0008",
            "--out",
            out.to_str().unwrap(),
            "--plugin-dir",
            repo().join("target/wasm32-wasip2/plugin").to_str().unwrap(),
            "--plugin",
            wasm.to_str().unwrap(),
        ],
    ));
    let report = report(&out.join("run-0008/report.json"));
    assert!(report["plugins"].as_array().unwrap().len() > 5, "the bundled plugins ran too");
    let mine = plugin(&report, "my-py-plot");
    assert_eq!(metrics(mine)["mean_charge"], mean);
    let figure = mine["figures"][0]["svg"].as_str().unwrap();
    let server = Server::start(Path::new(env!("CARGO_BIN_EXE_larmon")), &out, &[]);
    let (status, _, page) = server.get("/runs/run-0008");
    assert_eq!(status, 200);
    let src = format!("/files/run-0008/{figure}");
    assert!(page.contains(&format!("<img src=\"{src}\"")), "{src} not on the run page");
    assert!(page.contains("<strong>Bad:</strong> a mean below"), "its shifter text is missing");
    let (status, _, svg) = server.get(&src);
    assert_eq!(status, 200);
    assert!(svg.starts_with("<svg") && svg.contains("Hit charge"), "{svg}");
}

/// Builds a copy of the repository's Python plugin `file` in `dir` (the repository is left as
/// it is); returns the component.
fn build_copy(dir: &Path, file: &str) -> PathBuf {
    let source = repo().join(file);
    let copy = dir.join("source").join(source.file_name().unwrap());
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&source, &copy).unwrap();
    let built = ok(larmon(dir, &["plugin", "build", copy.to_str().unwrap()]));
    let wasm = copy
        .parent()
        .unwrap()
        .join("target")
        .join(copy.with_extension("wasm").file_name().unwrap());
    assert!(built.contains(&format!("built {}", wasm.display())), "{built}");
    wasm
}

#[test]
fn the_python_packet_rate_gives_the_rust_plugins_metrics_checks_and_figures() {
    let dir = scratch("python-packet-rate");
    let wasm = build_copy(&dir, "plugins/python/packet-rate-py/packet_rate_py.py");

    // One file, and a run of two files (the second file's state merged from its snapshot).
    let two = dir.join("two-files");
    std::fs::create_dir_all(&two).unwrap();
    let simulated = simulated_light_run(&two, 31, 4, 2);
    let mut runs: Vec<(&str, Vec<PathBuf>)> = vec![("one-file", vec![data("small-raw.h5")])];
    runs.push(("two-files", simulated.charge.clone()));
    for (name, files) in runs {
        let out = dir.join(name);
        let mut args: Vec<String> = vec!["run".into()];
        args.extend(files.iter().map(|f| f.display().to_string()));
        for arg in ["--run", "r", "--out", out.to_str().unwrap(), "--plugin-dir"] {
            args.push(arg.into());
        }
        args.push(repo().join("target/wasm32-wasip2/plugin").display().to_string());
        args.extend(["--plugin".into(), wasm.display().to_string()]);
        ok(larmon(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>()));
        let report = report(&out.join("r/report.json"));
        let (rust, python) = (plugin(&report, "packet-rate"), plugin(&report, "packet-rate-py"));
        assert_eq!(metrics(rust), metrics(python), "{name}");
        assert!(metrics(rust)["larpix_packets"] > 1000.0, "{name}: {rust}");
        assert_eq!(rust["checks"], python["checks"], "{name}");
        let figures = |entry: &serde_json::Value| -> Vec<String> {
            let list = entry["figures"].as_array().unwrap();
            list.iter()
                .map(|f| std::fs::read_to_string(out.join("r").join(f["svg"].as_str().unwrap())))
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let (a, b) = (figures(rust), figures(python));
        assert_eq!(a.len(), 4, "{name}");
        for (i, (a, b)) in a.iter().zip(&b).enumerate() {
            assert!(a == b, "{name}: figure {i} differs");
        }
    }
}

/// Sums as the test plugin columns-py makes them: (sum of the values present, values missing).
fn column_sums(batch: &RecordBatch, stream: &str, sums: &mut BTreeMap<String, f64>) {
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let key = format!("{stream}.{}", field.name());
        let mut total = 0.0;
        let values: Vec<Option<f64>> = match column.data_type() {
            DataType::UInt8 => {
                column.as_primitive::<UInt8Type>().iter().map(|v| v.map(f64::from)).collect()
            }
            DataType::UInt16 => {
                column.as_primitive::<UInt16Type>().iter().map(|v| v.map(f64::from)).collect()
            }
            DataType::UInt64 => {
                column.as_primitive::<UInt64Type>().iter().map(|v| v.map(|v| v as f64)).collect()
            }
            DataType::Int64 => {
                column.as_primitive::<Int64Type>().iter().map(|v| v.map(|v| v as f64)).collect()
            }
            DataType::Float32 => {
                column.as_primitive::<Float32Type>().iter().map(|v| v.map(f64::from)).collect()
            }
            DataType::Float64 => column.as_primitive::<Float64Type>().iter().collect(),
            DataType::List(_) => {
                let lists = column.as_list::<i32>();
                let mut count = 0.0;
                let per_list = (0..lists.len())
                    .map(|i| {
                        let samples = lists.value(i);
                        let samples = samples.as_primitive::<Int16Type>();
                        count += samples.len() as f64;
                        Some(samples.values().iter().map(|s| f64::from(*s)).sum::<f64>())
                    })
                    .collect();
                *sums.entry(format!("{stream}.samples.count")).or_default() += count;
                per_list
            }
            other => panic!("{key}: {other} not summed"),
        };
        let mut missing = 0.0;
        for value in values {
            match value {
                Some(v) => total += v,
                None => missing += 1.0,
            }
        }
        *sums.entry(format!("{key}.sum")).or_default() += total;
        *sums.entry(format!("{key}.nulls")).or_default() += missing;
    }
    *sums.entry(format!("{stream}.rows")).or_default() += batch.num_rows() as f64;
}

#[test]
fn the_python_sdk_reads_every_column_type_as_arrow_rs_does() {
    let dir = scratch("python-columns");
    let wasm = build_copy(&dir, "tests/plugins/python-columns/columns_py.py");
    let columns = ["event_id", "tile", "tpc", "ts_ticks", "unix_time", "q_ke", "x_mm", "t0_ticks"];

    // Hits of a real-format file, against `larmon calibrate --export` read by arrow-rs.
    let small = data("small-raw.h5");
    let hits = dir.join("hits.arrow");
    ok(larmon(&dir, &["calibrate", small.to_str().unwrap(), "--export", hits.to_str().unwrap()]));
    let mut expected = BTreeMap::new();
    let reader =
        arrow::ipc::reader::FileReader::try_new(std::fs::File::open(&hits).unwrap(), None).unwrap();
    for batch in reader {
        let batch = batch.unwrap();
        let indices: Vec<usize> =
            columns.iter().map(|c| batch.schema().index_of(c).unwrap()).collect();
        column_sums(&batch.project(&indices).unwrap(), "hits", &mut expected);
    }
    // Light waveforms (lists of i16) of a simulated run of two charge files and a light file,
    // against the host's own light reader.
    let light_run = simulated_light_run(&dir, 32, 3, 2);
    let map = larmon_pipeline::input::light::default_channel_map(&Default::default());
    larmon_pipeline::input::light::process_light_file(
        &light_run.light,
        0,
        &map,
        Vec::new(),
        &mut |stream, batch| {
            if stream.name() == "light_waveforms" {
                let names = ["event", "channel", "baseline", "peak_sample", "samples"];
                let indices: Vec<usize> =
                    names.iter().map(|c| batch.schema().index_of(c).unwrap()).collect();
                column_sums(&batch.project(&indices).unwrap(), "light_waveforms", &mut expected);
            }
        },
    )
    .unwrap();
    assert!(expected["hits.rows"] > 1000.0 && expected["light_waveforms.rows"] > 100.0);
    assert!(expected["hits.x_mm.nulls"] < expected["hits.rows"]);

    let mut got = BTreeMap::new();
    let hits_run = dir.join("hits-run");
    let light_out = dir.join("light-run");
    for (out, files) in [
        (&hits_run, vec![small.clone()]),
        (&light_out, {
            let mut f = light_run.charge.clone();
            f.push(light_run.light.clone());
            f
        }),
    ] {
        let mut args: Vec<String> =
            vec!["plugin".into(), "test".into(), wasm.display().to_string()];
        args.push("--on".into());
        args.extend(files.iter().map(|f| f.display().to_string()));
        args.extend(["--out".into(), out.display().to_string()]);
        ok(larmon(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>()));
        let run = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().path().join("report.json"))
            .find(|p| p.is_file())
            .expect("a run report");
        let entry = report(&run);
        let values = metrics(plugin(&entry, "columns-py"));
        let prefix = if out == &hits_run { "hits." } else { "light_waveforms." };
        got.extend(values.into_iter().filter(|(k, _)| k.starts_with(prefix)));
    }
    assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (key, want) in &expected {
        let have = got[key];
        assert!(
            (have - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{key}: Python SDK {have}, arrow-rs {want}"
        );
    }
}
