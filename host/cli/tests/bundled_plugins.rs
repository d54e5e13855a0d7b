//! The bundled plot plugins (plugins/*) run by `larmon run` on real-format fixtures, checked
//! against the simulation truth: parity errors, FIFO flags, hot channels, clocks, drift edges
//! on the committed small fixture; dQ/dx and electron lifetime on the cosmics fixture
//! (../shared/fixtures, skipped with a message when absent) and on a 40 s run of our own
//! generator (`larmon simulate`), which needs no configuration.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use larmon_tests::{data, scratch, shared_fixture};
use serde_json::Value;

const BUNDLED: [&str; 14] = [
    "channel-health",
    "charge",
    "charge-light",
    "dqdx",
    "electron-lifetime",
    "event-display",
    "fifo-flags",
    "light-baseline",
    "light-health",
    "light-pulses",
    "packet-rate",
    "pixel-maps",
    "tile-rate",
    "timing",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs every bundled plugin over `file` with `config` (TOML text) and returns report.json.
fn run_bundled(test: &str, file: &Path, config: &str) -> (Value, PathBuf) {
    run_bundled_files(test, &[file], config)
}

/// Runs every bundled plugin over the files of one run.
fn run_bundled_files(test: &str, files: &[&Path], config: &str) -> (Value, PathBuf) {
    let dir = scratch(test);
    let plugin_dir = repo().join("target/wasm32-wasip2/plugin");
    for name in BUNDLED {
        let wasm = plugin_dir.join(format!("larmon_plugin_{}.wasm", name.replace('-', "_")));
        assert!(
            wasm.exists(),
            "{} is missing: build the plugins with `bash .ci/plugins`",
            wasm.display()
        );
    }
    std::fs::write(dir.join("larmon.toml"), config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_larmon"))
        .arg("run")
        .args(files)
        .args(["--run", "run", "--out"])
        .arg(dir.join("reports"))
        .arg("--plugin-dir")
        .arg(&plugin_dir)
        .arg("--config")
        .arg(dir.join("larmon.toml"))
        .arg("--cache-dir")
        .arg(repo().join("target/test-plugin-cache"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run_dir = dir.join("reports/run");
    let report =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json")).unwrap())
            .unwrap();
    (report, run_dir)
}

fn plugin<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no plugin {name}"))
}

fn metric(report: &Value, name: &str, metric: &str) -> (f64, Option<f64>) {
    let m = plugin(report, name)["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == metric)
        .unwrap_or_else(|| panic!("{name} has no metric {metric}"));
    (m["value"].as_f64().unwrap(), m["error"].as_f64())
}

fn truth(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

type Channel = (u64, u64, u64, u64);

fn channels(list: &Value) -> BTreeSet<Channel> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c[0].as_u64().unwrap(),
                c[1].as_u64().unwrap(),
                c[2].as_u64().unwrap(),
                c[3].as_u64().unwrap(),
            )
        })
        .collect()
}

fn flagged(report: &Value, kind: &str) -> BTreeSet<Channel> {
    plugin(report, "channel-health")["results"]["flagged_channels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == kind)
        .map(|f| {
            let n = |k: &str| f[k].as_u64().unwrap();
            (n("io_group"), n("io_channel"), n("chip_id"), n("channel_id"))
        })
        .collect()
}

/// Checks that shared by both fixtures.
fn assert_packet_level_truth(report: &Value, run_dir: &Path, truth: &Value, pixels: f64) {
    for name in BUNDLED {
        let p = plugin(report, name);
        assert_eq!(p["status"], "ok", "{name}: {}", p["error"]);
        assert!(!p["figures"].as_array().unwrap().is_empty(), "{name} drew nothing");
        for figure in p["figures"].as_array().unwrap() {
            let svg =
                std::fs::read_to_string(run_dir.join(figure["svg"].as_str().unwrap())).unwrap();
            assert!(
                svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
                "{name}: {}",
                figure["svg"]
            );
            assert!(!svg.contains("plot failed"), "{name}: {}", figure["svg"]);
            let json =
                std::fs::read_to_string(run_dir.join(figure["data"].as_str().unwrap())).unwrap();
            serde_json::from_str::<Value>(&json).unwrap();
        }
    }
    // Parity: the count and the number of LArPix packets (types 0–3) exactly; the fraction is
    // their ratio (compared to 1e-12: serde_json's float parsing may differ in the last bit).
    let counts = &truth["counts"]["packet_rows_by_type"];
    let larpix: f64 = ["0", "1", "2", "3"].iter().filter_map(|k| counts[k].as_f64()).sum();
    let bad = truth["faults"]["n_bad_parity"].as_f64().unwrap();
    assert_eq!(metric(report, "packet-rate", "parity_errors").0, bad);
    assert_eq!(metric(report, "packet-rate", "larpix_packets").0, larpix);
    let fraction = metric(report, "packet-rate", "parity_error_fraction").0;
    assert!((fraction - bad / larpix).abs() <= 1e-12 * fraction, "{fraction}");
    // FIFO flags of valid-parity data packets: 1 = half, 2 = full.
    let fifo = &truth["counts"]["fifo_flag_rows_valid_parity"];
    for (flag, column, value) in [
        ("local_half", "local_fifo", "1"),
        ("local_full", "local_fifo", "2"),
        ("shared_half", "shared_fifo", "1"),
        ("shared_full", "shared_fifo", "2"),
    ] {
        let expected = fifo[column][value].as_f64().unwrap() + fifo[column]["3"].as_f64().unwrap();
        assert_eq!(metric(report, "fifo-flags", &format!("{flag}_packets")).0, expected, "{flag}");
    }
    // Every hot channel of the truth flagged, no other.
    let hot = channels(&truth["faults"]["hot_channels"]);
    assert_eq!(flagged(report, "hot"), hot);
    // Noisy flags are a subset of the truth's noisy channels (false flags ≤ 10 %).
    let noisy = flagged(report, "noisy");
    let truly_noisy = channels(&truth["faults"]["noisy_channels"]);
    let false_noisy = noisy.difference(&truly_noisy).count();
    assert!(
        false_noisy * 10 <= noisy.len().max(1),
        "{false_noisy} of {} noisy flags are false",
        noisy.len()
    );
    // Clocks: the PPS sync rows hold 9 999 999 (one tick before the reset) on every io_group.
    assert_eq!(metric(report, "timing", "io_group1_sync_offset_ticks").0, -1.0);
    assert_eq!(metric(report, "timing", "io_group2_sync_offset_ticks").0, -1.0);
    // The cathode edge of the drift-time distribution at the full drift time.
    let full_drift = truth["physics"]["max_drift_us"].as_f64().unwrap();
    for tpc in [1, 2] {
        let (edge, bin) = metric(report, "charge", &format!("tpc{tpc}_cathode_edge_us"));
        assert!(
            (edge - full_drift).abs() <= bin.unwrap() + 0.5,
            "TPC {tpc}: edge {edge} µs vs {full_drift}"
        );
    }
    assert_eq!(metric(report, "pixel-maps", "channels_in_layout").0, pixels);
    assert_eq!(metric(report, "pixel-maps", "channels_outside_layout").0, 0.0);
}

#[test]
fn bundled_plugins_report_the_small_fixture_truth() {
    let config = format!("[[modules]]\nid = 1\nlayout = {:?}\n", data("small-layout.yaml"));
    let (report, run_dir) = run_bundled("bundled-small", &data("small-raw.h5"), &config);
    assert_packet_level_truth(&report, &run_dir, &truth(&data("small-truth.json")), 78_400.0);
    assert_eq!(metric(&report, "event-display", "events_shown").0, 4.0);
    assert_each_plugin_carries_the_shifter_text_of_the_docs(&report);
}

/// Every bundled plugin brings its own shifter text (the dashboard shows it), the same words
/// as its `## name` section of docs/plots.md.
fn assert_each_plugin_carries_the_shifter_text_of_the_docs(report: &Value) {
    let docs = std::fs::read_to_string(repo().join("docs/plots.md")).unwrap();
    let folded = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut documented = 0;
    for section in docs.split("\n## ").skip(1) {
        let (name, text) = section.split_once('\n').unwrap();
        let help = plugin(report, name.trim())["help"].as_str().unwrap_or_default();
        assert_eq!(folded(help), folded(text), "{name}: its help differs from docs/plots.md");
        documented += 1;
    }
    let plugins = report["plugins"].as_array().unwrap();
    assert_eq!(documented, plugins.len(), "a bundled plugin has no section in docs/plots.md");
    assert!(plugins.iter().all(|p| p["help"].as_str().is_some_and(|h| h.contains("**Bad:**"))));
}

#[test]
fn dqdx_and_electron_lifetime_match_the_cosmics_truth() {
    let Some(packets) = shared_fixture("cosmics-packets.h5") else { return };
    let fixture = |name: &str| shared_fixture(name).unwrap();
    let config = format!(
        "[charge]\npedestal_file = {:?}\nconfig_file = {:?}\n[[modules]]\nid = 1\nlayout = {:?}\n",
        fixture("cosmics-pedestal.json"),
        fixture("cosmics-config.json"),
        fixture("cosmics-layout.yaml")
    );
    let (report, run_dir) = run_bundled("bundled-cosmics", &packets, &config);
    let truth = truth(&fixture("cosmics-truth.json"));
    assert_packet_level_truth(&report, &run_dir, &truth, 78_400.0);
    assert_physics_truth(&report, &truth);
}

/// Our own generator (`larmon simulate`, 40 s of cosmics like the reference fixture) processed
/// by every plugin with no configuration at all: the same truths hold.
#[test]
fn simulated_run_matches_its_truth() {
    let dir = scratch("bundled-simulated");
    let out = Command::new(env!("CARGO_BIN_EXE_larmon"))
        .args(["simulate", "--duration-s", "40", "--muon-rate-hz", "62.5", "--seed", "7", "--out"])
        .arg(dir.join("daq"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let raw: Vec<PathBuf> = std::fs::read_dir(dir.join("daq"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "h5"))
        .collect();
    assert_eq!(raw.len(), 1, "{raw:?}");
    let (report, run_dir) = run_bundled("bundled-simulated-run", &raw[0], "");
    let truth = truth(&dir.join("daq/binary-0000001-truth.json"));
    assert_eq!(truth["tracks"].as_array().unwrap().len(), 2500);
    // The simulation is the real 2x2: 3 × 78 400 + 102 400 pixels.
    assert_packet_level_truth(&report, &run_dir, &truth, 337_600.0);
    assert_physics_truth(&report, &truth);
}

/// dQ/dx MPV and electron lifetime against the truth.
fn assert_physics_truth(report: &Value, truth: &Value) {
    // dQ/dx: the truth draws, per pixel crossing, dQ/dx = MPV + width·Moyal before attenuation;
    // the plugin measures per pixel crossing (`track_pixels`), corrects the attenuation with the
    // configured lifetime (default 2200 µs = the truth's) and fits the Moyal MPV.
    let truth_mpv = truth["physics"]["dqdx_mpv_ke_per_mm"].as_f64().unwrap() * 10.0;
    let (mpv, mpv_error) = metric(report, "dqdx", "mpv_ke_per_cm");
    assert!((mpv - truth_mpv).abs() <= 0.03 * truth_mpv, "MPV {mpv} ke-/cm vs truth {truth_mpv}");
    assert!(mpv_error.unwrap() > 0.0);

    let truth_tau = truth["physics"]["electron_lifetime_us"].as_f64().unwrap();
    let (tau, tau_error) = metric(report, "electron-lifetime", "lifetime_us");
    let tau_error = tau_error.unwrap();
    assert!((tau - truth_tau).abs() <= 0.05 * truth_tau, "τ {tau} µs vs truth {truth_tau}");
    assert!(
        (tau - truth_tau).abs() <= 2.0 * tau_error,
        "τ {tau} ± {tau_error} µs vs truth {truth_tau}"
    );
    // An honest error: neither tiny nor useless for a 40 s run.
    assert!(tau_error > 10.0 && tau_error < 0.1 * truth_tau, "error {tau_error} µs");
}

/// Light files beside the charge file of the same run: light-health finds every dead, noisy
/// and clipping input and every missing board of the light truth (no false flag), and
/// charge-light matches every light event to its charge trigger and back — from the MPD file
/// (small) and from the flow file (cosmics).
#[test]
fn light_plugins_match_the_light_truth() {
    // larmon's own simulation of the 2x2 (always), then the fixtures of another generator.
    let sim = larmon_tests::simulated_light_run(&scratch("bundled-light-sim"), 2, 3, 1);
    let mut cases = vec![(sim.charge[0].clone(), sim.light.clone(), sim.light_truth.clone())];
    for (charge, light, truth_file) in [
        (Some(data("small-raw.h5")), shared_fixture("small-light.data"), "small-light-truth.json"),
        (
            shared_fixture("cosmics-raw.h5"),
            shared_fixture("cosmics-light-flow.h5"),
            "cosmics-light-truth.json",
        ),
    ] {
        if let (Some(charge), Some(light)) = (charge, light) {
            cases.push((charge, light, truth(&shared_fixture(truth_file).unwrap())));
        }
    }
    for (charge, light, light_truth) in cases {
        let truth_file = light.display().to_string();
        let (report, run_dir) = run_bundled_files("bundled-light", &[&charge, &light], "");
        for name in ["light-health", "light-baseline", "light-pulses", "charge-light"] {
            let p = plugin(&report, name);
            assert_eq!(p["status"], "ok", "{name}: {}", p["error"]);
            for figure in p["figures"].as_array().unwrap() {
                let svg =
                    std::fs::read_to_string(run_dir.join(figure["svg"].as_str().unwrap())).unwrap();
                assert!(svg.starts_with("<svg") && !svg.contains("plot failed"), "{name}");
            }
        }
        let flagged = |kind: &str| -> BTreeSet<(u64, u64)> {
            plugin(&report, "light-health")["results"]["flagged_inputs"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["kind"] == kind)
                .map(|f| (f["adc"].as_u64().unwrap(), f["channel"].as_u64().unwrap()))
                .collect()
        };
        let truth_pairs = |key: &str| -> BTreeSet<(u64, u64)> {
            light_truth["faults"][key]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_u64().unwrap(), p[1].as_u64().unwrap()))
                .collect()
        };
        assert_eq!(flagged("dead"), truth_pairs("dead_channels"), "{truth_file}");
        assert_eq!(flagged("noisy"), truth_pairs("noisy_channels"), "{truth_file}");
        assert_eq!(flagged("clipping"), truth_pairs("saturating_channels"), "{truth_file}");
        assert!(!flagged("clipping").is_empty() && !flagged("dead").is_empty(), "{truth_file}");
        let missing: BTreeSet<(u64, u64)> =
            plugin(&report, "light-health")["results"]["missing_boards"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| (m["event"].as_u64().unwrap(), m["adc"].as_u64().unwrap()))
                .collect();
        let truth_missing: BTreeSet<(u64, u64)> = light_truth["faults"]["missing_board_events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m[0].as_u64().unwrap(), m[1].as_u64().unwrap()))
            .collect();
        assert_eq!(missing, truth_missing, "{truth_file}");
        // Every light event has its charge trigger (the truth's rule) and back.
        let events = light_truth["events"].as_array().unwrap().len() as f64;
        assert_eq!(metric(&report, "charge-light", "light_events").0, events);
        assert_eq!(metric(&report, "charge-light", "matched_events").0, events);
        assert_eq!(metric(&report, "charge-light", "light_to_charge_efficiency").0, 1.0);
        assert_eq!(metric(&report, "charge-light", "charge_to_light_efficiency").0, 1.0);
        // Light and charge of the same muons grow together.
        let correlation = metric(&report, "charge-light", "light_charge_correlation").0;
        assert!(correlation > 0.4, "light-charge correlation {correlation}");
        assert_eq!(metric(&report, "light-pulses", "light_events").0, events);
        // The noise the truth put in (2–4 ADC14 per input, 10× on a few): the mean RMS of
        // each detector type is inside that band.
        for kind in ["arclight", "lcm"] {
            let rms = metric(&report, "light-baseline", &format!("{kind}_mean_rms_adc")).0;
            assert!((2.0..=5.0).contains(&rms), "{kind}: mean RMS {rms} ADC");
        }
    }
}

/// dQ/dx is corrected with the lifetime measured in the same run, so two runs with the same
/// true dQ/dx and different lifetimes (1400 and 2200 µs) give the same MPV within 1 %.
#[test]
fn dqdx_does_not_depend_on_the_true_lifetime() {
    let mut mpvs = Vec::new();
    for lifetime in ["1400", "2200"] {
        let dir = scratch(&format!("dqdx-lifetime-{lifetime}"));
        let out = Command::new(env!("CARGO_BIN_EXE_larmon"))
            .args(["simulate", "--duration-s", "30", "--muon-rate-hz", "62.5", "--seed", "11"])
            .args(["--lifetime-us", lifetime, "--out"])
            .arg(dir.join("daq"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let raw: Vec<PathBuf> = std::fs::read_dir(dir.join("daq"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "h5"))
            .collect();
        let (report, _) = run_bundled(&format!("dqdx-lifetime-{lifetime}-run"), &raw[0], "");
        let (tau, _) = metric(&report, "dqdx", "lifetime_used_us");
        let (source, _) = metric(&report, "dqdx", "lifetime_source");
        assert_eq!(source, 0.0, "the lifetime is measured in the run");
        let truth_tau: f64 = lifetime.parse().unwrap();
        assert!((tau - truth_tau).abs() < 0.1 * truth_tau, "τ {tau} vs {truth_tau}");
        mpvs.push(metric(&report, "dqdx", "mpv_ke_per_cm").0);
    }
    let (a, b) = (mpvs[0], mpvs[1]);
    assert!((a - b).abs() <= 0.01 * b, "MPV {a} (τ 1400 µs) vs {b} (τ 2200 µs)");
}

/// The event ids that have tracks in `file`, from `larmon calibrate --stream tracks`, sorted.
fn events_with_tracks(dir: &Path, file: &Path, config: &Path) -> Vec<u64> {
    let export = dir.join("tracks.arrow");
    let out = Command::new(env!("CARGO_BIN_EXE_larmon"))
        .arg("calibrate")
        .arg(file)
        .arg("--config")
        .arg(config)
        .args(["--stream", "tracks", "--export"])
        .arg(&export)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reader =
        arrow::ipc::reader::FileReader::try_new(std::fs::File::open(&export).unwrap(), None)
            .unwrap();
    let mut ids = BTreeSet::new();
    for batch in reader {
        let batch = batch.unwrap();
        let column = batch.column_by_name("event_id").unwrap();
        let column = column.as_any().downcast_ref::<arrow::array::UInt64Array>().unwrap();
        ids.extend(column.values().iter().copied());
    }
    ids.into_iter().collect()
}

/// The figures of event-display: (event id, title).
fn displayed(report: &Value) -> Vec<(u64, String)> {
    plugin(report, "event-display")["figures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let id = f["name"].as_str().unwrap().trim_start_matches("event_").parse().unwrap();
            (id, f["title"].as_str().unwrap().to_string())
        })
        .collect()
}

/// The event display shows the latest events with tracks by default (what a live run just
/// saw), the first ones with `pick = "first"`, and chosen events by id in any case — the ids
/// checked against the tracks larmon calibrate finds.
#[test]
fn event_display_shows_the_latest_the_first_or_the_chosen_events() {
    let layout = format!("[[modules]]\nid = 1\nlayout = {:?}\n", data("small-layout.yaml"));
    let dir = scratch("event-display-pick");
    std::fs::write(dir.join("larmon.toml"), &layout).unwrap();
    let with_tracks = events_with_tracks(&dir, &data("small-raw.h5"), &dir.join("larmon.toml"));
    assert!(with_tracks.len() >= 12, "{} events with tracks", with_tracks.len());
    let ids = |report: &Value| displayed(report).into_iter().map(|(id, _)| id).collect::<Vec<_>>();

    let (latest, _) = run_bundled("event-display-latest", &data("small-raw.h5"), &layout);
    assert_eq!(ids(&latest), with_tracks[with_tracks.len() - 4..], "the latest four");
    let first = format!("{layout}[plugins.event-display]\npick = \"first\"\nevents = 3\n");
    let (first, _) = run_bundled("event-display-first", &data("small-raw.h5"), &first);
    assert_eq!(ids(&first), with_tracks[..3], "the first three");

    let middle = with_tracks[with_tracks.len() / 2];
    let chosen = format!("{layout}[plugins.event-display]\nevent_ids = [{middle}, 987654321]\n");
    let (chosen, _) = run_bundled("event-display-chosen", &data("small-raw.h5"), &chosen);
    let shown = displayed(&chosen);
    assert_eq!(shown[0], (middle, format!("Event {middle} (chosen)")), "{shown:?}");
    assert_eq!(
        shown[1..].iter().map(|s| s.0).collect::<Vec<_>>(),
        with_tracks[with_tracks.len() - 4..]
    );
    let checks = plugin(&chosen, "event-display")["checks"].as_array().unwrap();
    let missing = checks.iter().find(|c| c["name"] == "chosen_events").unwrap();
    assert_eq!(missing["status"], "warning");
    assert!(missing["message"].as_str().unwrap().contains("987654321"), "{missing}");
}

/// `larmon run` of small-raw.h5 as run `name` into `out` with the bundled plugins, the
/// configuration `config` (written to `dir/<name>.toml`) and `extra` arguments; its report.
fn run_small_raw(dir: &Path, out: &Path, name: &str, config: &str, extra: &[&str]) -> Value {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, config).unwrap();
    let done = Command::new(env!("CARGO_BIN_EXE_larmon"))
        .arg("run")
        .arg(data("small-raw.h5"))
        .args(["--run", name, "--out"])
        .arg(out)
        .arg("--plugin-dir")
        .arg(repo().join("target/wasm32-wasip2/plugin"))
        .arg("--config")
        .arg(&file)
        .arg("--cache-dir")
        .arg(repo().join("target/test-plugin-cache"))
        .args(extra)
        .output()
        .unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    serde_json::from_str(&std::fs::read_to_string(out.join(name).join("report.json")).unwrap())
        .unwrap()
}

/// A typed figure (dqdx's histogram, reported as data) is drawn by the host over the reference
/// run's histogram with the shape comparison noted; a configured shape check passes for the
/// same data and flags a run whose dQ/dx moved (a wrong lifetime correction).
#[test]
fn typed_figures_are_drawn_over_their_reference_and_shape_checked() {
    let dir = scratch("references");
    let out = dir.join("reports");
    let layout = format!("[[modules]]\nid = 1\nlayout = {:?}\n", data("small-layout.yaml"));
    let shape = "[shape_checks.\"dqdx/dqdx\"]\nstatistic = \"ks_probability\"\nwarn = 0.05\nerror = 0.001\n";
    let run = |name: &str, config: &str| run_small_raw(&dir, &out, name, config, &[]);
    let reference = run("run-0000010", &format!("{layout}{shape}"));
    let svg = std::fs::read_to_string(out.join("run-0000010/dqdx/dqdx.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("Moyal"), "drawn by the host");
    assert!(svg.contains("<title>["), "hover values on the bins");
    assert!(!svg.contains("reference"), "no reference yet");
    assert!(reference["provenance"].get("reference_runs").is_none());

    let set = Command::new(env!("CARGO_BIN_EXE_larmon"))
        .args(["reference", out.to_str().unwrap(), "--set", "run-0000010", "--plugin", "dqdx"])
        .output()
        .unwrap();
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));

    let same = run("run-0000011", &format!("{layout}{shape}"));
    let svg = std::fs::read_to_string(out.join("run-0000011/dqdx/dqdx.svg")).unwrap();
    assert!(svg.contains("reference run-0000010"), "the reference's legend");
    assert!(svg.contains("vs run-0000010: KS p = 1.000"), "the comparison noted");
    let check = |report: &Value| {
        plugin(report, "dqdx")["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "shape: dqdx")
            .unwrap_or_else(|| panic!("no shape check: {}", plugin(report, "dqdx")))
            .clone()
    };
    assert_eq!(check(&same)["status"], "ok", "{}", check(&same));
    assert_eq!(same["provenance"]["reference_runs"]["dqdx"], "run-0000010");

    // dQ/dx corrected with a far too short lifetime: the distribution moves to higher values.
    let moved = run("run-0000012", &format!("{layout}{shape}[plugins.dqdx]\nlifetime_us = 100\n"));
    let moved_check = check(&moved);
    assert_eq!(moved_check["status"], "error", "{moved_check}");
    assert!(moved_check["message"].as_str().unwrap().contains("ks_probability"), "{moved_check}");
    assert_eq!(moved["quality"]["flag"], "error", "the shape check rolls into the flag");
}

/// A run's kind picks its reference: named by `--run-kind`, or told from the run's metrics by
/// the configuration's `[[run_kinds]]` rules; `larmon reference --kind` sets one per kind, and
/// a run of no kind gets none of them.
#[test]
fn a_run_kind_picks_its_own_reference() {
    let dir = scratch("run-kinds");
    let out = dir.join("reports");
    let layout = format!("[[modules]]\nid = 1\nlayout = {:?}\n", data("small-layout.yaml"));
    let rule =
        "[[run_kinds]]\nkind = \"cosmic\"\nmetric = \"packet-rate/larpix_packets\"\nmin = 1\n";
    let larmon = |args: &[&str]| {
        let done = Command::new(env!("CARGO_BIN_EXE_larmon")).args(args).output().unwrap();
        assert!(done.status.success(), "{args:?}: {}", String::from_utf8_lossy(&done.stderr));
        String::from_utf8(done.stdout).unwrap()
    };
    let run = |name: &str, config: &str, kind: Option<&str>| {
        let kind: Vec<&str> = kind.map(|k| vec!["--run-kind", k]).unwrap_or_default();
        run_small_raw(&dir, &out, name, config, &kind)
    };
    let beam = run("run-0000020", &layout, Some("beam"));
    assert_eq!(beam["run_kind"], "beam", "named by the operator");
    let cosmic = run("run-0000021", &format!("{layout}{rule}"), None);
    assert_eq!(cosmic["run_kind"], "cosmic", "told by the rule from packet-rate's metric");
    let none = run("run-0000022", &layout, None);
    assert!(none.get("run_kind").is_none(), "no rule, no kind");

    let out_arg = out.to_str().unwrap();
    larmon(&["reference", out_arg, "--set", "run-0000020", "--kind", "beam"]);
    let shown = larmon(&["reference", out_arg, "--set", "run-0000021", "--kind", "cosmic"]);
    assert!(shown.contains("every plugin: -"), "{shown}");
    assert!(shown.contains("beam runs, every plugin: run-0000020"), "{shown}");
    assert!(shown.contains("cosmic runs, every plugin: run-0000021"), "{shown}");

    let next_beam = run("run-0000023", &format!("{layout}{rule}"), Some("beam"));
    assert_eq!(next_beam["run_kind"], "beam", "the operator's kind before the rules");
    assert_eq!(next_beam["provenance"]["reference_runs"]["dqdx"], "run-0000020");
    let svg = std::fs::read_to_string(out.join("run-0000023/dqdx/dqdx.svg")).unwrap();
    assert!(svg.contains("reference run-0000020"), "drawn over the beam reference");
    let next_cosmic = run("run-0000024", &format!("{layout}{rule}"), None);
    assert_eq!(next_cosmic["provenance"]["reference_runs"]["dqdx"], "run-0000021");
    let other = run("run-0000025", &layout, None);
    assert!(other["provenance"].get("reference_runs").is_none(), "{}", other["provenance"]);

    // The run list filters by kind.
    let cosmic_runs = larmon(&["runs", out_arg, "--kind", "cosmic"]);
    let listed: Vec<&str> =
        cosmic_runs.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(listed, ["run-0000021", "run-0000024"], "{cosmic_runs}");

    // A kind that cannot be one is refused before anything runs.
    let bad = Command::new(env!("CARGO_BIN_EXE_larmon"))
        .args(["reference", out_arg, "--set", "run-0000020", "--kind", "beam/2"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--kind \"beam/2\""));
}
