//! Batch mode: a run split over shards (`larmon run --shard I/N`, then `larmon merge`) gives
//! the same report and the same figures, byte for byte, as one `larmon run` over all files —
//! here with the shards run one after the other, and as a real Slurm job array when a Slurm
//! cluster is reachable (CI starts one: .ci/slurm-local.sh).

use std::path::{Path, PathBuf};
use std::process::Command;

use larmon_ingest::read::ReadOptions;
use larmon_ingest::write::{PacketFileWriter, WriteOptions};
use larmon_tests::{data, read_all, scratch};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The committed small run split into `parts` packet files at message (type-4 row) boundaries.
fn split_run(dir: &Path, parts: usize) -> Vec<PathBuf> {
    let all = read_all(&data("small-packets.h5"), &ReadOptions::default());
    let starts: Vec<usize> =
        (0..all.len()).filter(|i| all.row(*i).unwrap().packet_type == 4).collect();
    let mut files = Vec::new();
    for k in 0..parts {
        let first = starts[k * starts.len() / parts];
        let end = if k + 1 == parts { all.len() } else { starts[(k + 1) * starts.len() / parts] };
        let path = dir.join(format!("run-part{k}.h5"));
        let mut writer = PacketFileWriter::create(&path, &WriteOptions::default()).unwrap();
        let rows: Vec<_> = (first..end).map(|i| all.row(i).unwrap()).collect();
        writer.append_rows(&rows).unwrap();
        writer.finish().unwrap();
        files.push(path);
    }
    files
}

fn larmon(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_larmon")).args(args).output().unwrap();
    assert!(out.status.success(), "larmon {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn common<'a>(config: &'a str, cache: &'a str, plugins: &'a str) -> [&'a str; 6] {
    ["--config", config, "--cache-dir", cache, "--plugin-dir", plugins]
}

/// report.json without what legitimately differs (write time, compile source and time).
fn comparable(run_dir: &Path) -> serde_json::Value {
    let mut report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json")).unwrap())
            .unwrap();
    report.as_object_mut().unwrap().remove("created_unix_s");
    for plugin in report["plugins"].as_array_mut().unwrap() {
        plugin.as_object_mut().unwrap().remove("load");
    }
    report
}

/// Reports and every figure file equal.
fn assert_same_run(single: &Path, merged: &Path) {
    let report = comparable(single);
    assert_eq!(report, comparable(merged), "report.json differs");
    let mut figures = 0;
    for plugin in report["plugins"].as_array().unwrap() {
        assert_eq!(plugin["status"], "ok", "{}: {}", plugin["name"], plugin["error"]);
        for figure in plugin["figures"].as_array().unwrap() {
            for key in ["svg", "data"] {
                let name = figure[key].as_str().unwrap();
                let (a, b) = (
                    std::fs::read(single.join(name)).unwrap(),
                    std::fs::read(merged.join(name)).unwrap(),
                );
                assert!(a == b, "{name} differs");
                figures += 1;
            }
        }
    }
    assert!(figures > 40, "{figures} files compared");
}

struct Setup {
    dir: PathBuf,
    files: Vec<String>,
    config: String,
    cache: String,
    plugins: String,
}

fn setup(test: &str) -> Setup {
    let dir = scratch(test);
    let files = split_run(&dir, 4).iter().map(|f| f.to_str().unwrap().to_string()).collect();
    let config = dir.join("larmon.toml");
    std::fs::write(
        &config,
        format!("[[modules]]\nid = 1\nlayout = {:?}\n", data("small-layout.yaml")),
    )
    .unwrap();
    Setup {
        files,
        config: config.to_str().unwrap().into(),
        cache: repo().join("target/test-plugin-cache").to_str().unwrap().into(),
        plugins: repo().join("target/wasm32-wasip2/plugin").to_str().unwrap().into(),
        dir,
    }
}

impl Setup {
    fn single_run(&self) -> PathBuf {
        let out = self.dir.join("single");
        let mut args = vec!["run"];
        args.extend(self.files.iter().map(String::as_str));
        args.extend(["--out", out.to_str().unwrap(), "--run", "r1"]);
        args.extend(common(&self.config, &self.cache, &self.plugins));
        larmon(&args);
        out.join("r1")
    }

    /// `larmon run --shard` for each shard, into `out`.
    fn run_shards(&self, out: &Path, shards: &[&str]) {
        for shard in shards {
            let mut args = vec!["run"];
            args.extend(self.files.iter().map(String::as_str));
            args.extend(["--out", out.to_str().unwrap(), "--run", "r1", "--shard", shard]);
            args.extend(common(&self.config, &self.cache, &self.plugins));
            larmon(&args);
            assert!(!out.join("r1/report.json").exists(), "a shard writes no report");
        }
    }

    /// `larmon merge OUT/r1`.
    fn merge(&self, out: &Path) {
        let mut args = vec!["merge".to_string(), out.join("r1").to_str().unwrap().to_string()];
        args.extend(common(&self.config, &self.cache, &self.plugins).map(String::from));
        larmon(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

#[test]
fn shards_merged_equal_one_pass_over_all_files() {
    let s = setup("batch-shards");
    let single = s.single_run();
    let out = s.dir.join("sharded");
    s.run_shards(&out, &["0/3", "1/3", "2/3"]);
    // A merge with a shard missing refuses, naming what is missing.
    let missing = out.join("r1/shards/file-000002");
    std::fs::rename(&missing, s.dir.join("aside")).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_larmon"))
        .args(["merge", out.join("r1").to_str().unwrap()])
        .args(common(&s.config, &s.cache, &s.plugins))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("[2]"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    std::fs::rename(s.dir.join("aside"), &missing).unwrap();
    s.merge(&out);
    assert_same_run(&single, &out.join("r1"));
    // Every file's events were seen: 150 triggers in the small run. Files are independent
    // units (as in ndlar_flow), so a trigger whose two io_group rows land on both sides of a
    // file boundary opens an event in each file: at most 2 extra per boundary.
    let events = comparable(&single)["host"]["triggered_events"].as_u64().unwrap();
    assert!((150..=156).contains(&events), "{events} triggered events");
}

/// A metric of a plugin in report.json.
fn metric(run_dir: &Path, plugin: &str, name: &str) -> f64 {
    let report = comparable(run_dir);
    let plugin = report["plugins"].as_array().unwrap().iter().find(|p| p["name"] == plugin);
    let metrics = plugin.unwrap_or_else(|| panic!("no plugin {plugin:?}"))["metrics"].clone();
    let metric = metrics.as_array().unwrap().iter().find(|m| m["name"] == name).cloned();
    metric.unwrap_or_else(|| panic!("no metric {name}"))["value"].as_f64().unwrap()
}

#[test]
fn a_shard_matches_its_light_file_to_the_triggers_of_the_whole_run() {
    // A simulated 2x2 run in three raw files of one second each and its light file: the light
    // file comes last, in a shard with only the last charge file; its events must still find
    // the triggers of the charge files in the other shards.
    let mut s = setup("batch-shards-light");
    let sim = larmon_tests::simulated_light_run(&s.dir.join("sim"), 1, 3, 3);
    s.files = sim.charge.iter().chain([&sim.light]).map(|f| f.to_str().unwrap().into()).collect();
    std::fs::write(&s.config, "# the default detector: the 2x2\n").unwrap();
    let single = s.single_run();
    // Every light event finds its trigger, so the shards have something to get wrong.
    assert_eq!(metric(&single, "charge-light", "light_to_charge_efficiency"), 1.0);
    assert_eq!(metric(&single, "charge-light", "charge_to_light_efficiency"), 1.0);
    let events = sim.light_truth["events"].as_array().unwrap().len() as f64;
    assert_eq!(metric(&single, "charge-light", "matched_events"), events);
    let out = s.dir.join("sharded");
    s.run_shards(&out, &["0/3", "1/3", "2/3"]);
    s.merge(&out);
    assert_same_run(&single, &out.join("r1"));
}

#[test]
fn a_slurm_job_array_gives_the_single_node_report() {
    let Some(conf) = std::env::var_os("SLURM_CONF").filter(|c| Path::new(c).exists()) else {
        println!(
            "SKIPPED: no Slurm cluster (SLURM_CONF unset; CI starts one with .ci/slurm-local.sh)"
        );
        return;
    };
    let s = setup("batch-slurm");
    let single = s.single_run();
    let out = s.dir.join("slurm");
    let files = s.files.join(" ");
    let script = s.dir.join("shard.sh");
    // The job-array script of docs/batch.md, with this test's paths.
    std::fs::write(
        &script,
        format!(
            "#!/bin/bash\n#SBATCH --array=0-3\n#SBATCH --output={dir}/slurm-%a.out\n\
             exec {larmon} run {files} --out {out} --run r1 --shard $SLURM_ARRAY_TASK_ID/4 \
             --config {config} --cache-dir {cache} --plugin-dir {plugins}\n",
            dir = s.dir.display(),
            larmon = env!("CARGO_BIN_EXE_larmon"),
            out = out.display(),
            config = s.config,
            cache = s.cache,
            plugins = s.plugins,
        ),
    )
    .unwrap();
    let submitted = Command::new("sbatch")
        .env("SLURM_CONF", &conf)
        .args(["--parsable", "--wait"])
        .arg(&script)
        .output()
        .unwrap();
    assert!(submitted.status.success(), "sbatch: {}", String::from_utf8_lossy(&submitted.stderr));
    for task in 0..4 {
        let log =
            std::fs::read_to_string(s.dir.join(format!("slurm-{task}.out"))).unwrap_or_default();
        assert!(log.contains(&format!("shard {task}/4")), "task {task}: {log}");
    }
    s.merge(&out);
    assert_same_run(&single, &out.join("r1"));
}
