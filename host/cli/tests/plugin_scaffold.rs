//! A volunteer's plugin from an empty folder, with only larmon: `larmon plugin new` → `build`
//! (offline, against the SDK larmon carries) → `test --bless` / `--expect` → `larmon run
//! --plugin` → the plot on the dashboard. Builds a real component with cargo (≈2 min cold; its
//! own target dir, target/scaffold-target, kept between runs).

use std::path::Path;
use std::process::Output;

use larmon_tests::{Server, data, output_text as text, plugin_author_command, repo, scratch};

/// `larmon ARGS` in `dir` with the SDK written under `dir/data`, cargo's builds in
/// target/scaffold-target.
fn larmon(dir: &Path, args: &[&str]) -> Output {
    plugin_author_command(Path::new(env!("CARGO_BIN_EXE_larmon")), dir, args)
        .env("CARGO_TARGET_DIR", repo().join("target/scaffold-target"))
        .output()
        .unwrap()
}

#[test]
fn a_plugin_made_in_an_empty_folder_builds_offline_is_tested_and_shows_on_the_dashboard() {
    let dir = scratch("plugin-scaffold");
    let small = data("small-raw.h5");
    let small = small.to_str().unwrap();

    // Names are checked; a scaffold never overwrites.
    let bad = larmon(&dir, &["plugin", "new", "My_Plot"]);
    assert!(!bad.status.success() && text(&bad).contains("lower-case letters"), "{}", text(&bad));

    let made = larmon(&dir, &["plugin", "new", "my-plot"]);
    assert!(made.status.success(), "{}", text(&made));
    let manifest = std::fs::read_to_string(dir.join("my-plot/Cargo.toml")).unwrap();
    let sdk = dir.join("data/larmon/sdk");
    assert!(manifest.contains(sdk.to_str().unwrap()), "{manifest}");
    assert!(!manifest.contains(repo().canonicalize().unwrap().to_str().unwrap()), "{manifest}");
    let again = larmon(&dir, &["plugin", "new", "my-plot"]);
    assert!(!again.status.success() && text(&again).contains("not empty"), "{}", text(&again));

    // Built offline from cargo's cache: the scaffold's lock file pins what larmon was built with.
    let built = larmon(&dir, &["plugin", "build", "my-plot"]);
    assert!(built.status.success(), "{}", text(&built));
    assert!(!text(&built).contains("building online"), "{}", text(&built));
    let wasm = repo().join("target/scaffold-target/wasm32-wasip2/release/my_plot.wasm");
    assert!(text(&built).contains(&format!("built {}", wasm.display())), "{}", text(&built));

    let checked = larmon(&dir, &["plugin", "check", wasm.to_str().unwrap()]);
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(text(&checked).contains("consumes     hits: q_ke"), "{}", text(&checked));

    // Its metrics become its regression test, which fails when one moves.
    let blessed = larmon(&dir, &["plugin", "test", "my-plot", "--on", small, "--bless"]);
    assert!(blessed.status.success(), "{}", text(&blessed));
    assert!(text(&blessed).contains("my-plot 0.1.0: ok"), "{}", text(&blessed));
    let expected = std::fs::read_to_string(dir.join("my-plot/expected.toml")).unwrap();
    let mean: f64 = expected
        .lines()
        .find_map(|l| l.strip_prefix("mean_charge = "))
        .unwrap_or_else(|| panic!("{expected}"))
        .parse()
        .unwrap();
    assert!(mean > 1.0 && mean < 200.0, "{mean} ke-");
    assert!(dir.join("my-plot/test-output/small-raw/my-plot/charge.svg").is_file());
    let expect = ["plugin", "test", "my-plot", "--on", small, "--expect", "my-plot/expected.toml"];
    let same = larmon(&dir, &expect);
    assert!(same.status.success(), "{}", text(&same));
    assert!(text(&same).contains("all 1 expected metrics match"), "{}", text(&same));
    std::fs::write(
        dir.join("my-plot/expected.toml"),
        format!("[metrics]\nmean_charge = {{ value = {}, tolerance = 1e-3 }}\n", mean * 1.01),
    )
    .unwrap();
    let moved = larmon(&dir, &expect);
    assert!(!moved.status.success(), "{}", text(&moved));
    assert!(text(&moved).contains("mean_charge: expected"), "{}", text(&moved));

    // With the bundled plugins, in a run report, on the dashboard.
    let out = dir.join("reports");
    let run = larmon(
        &dir,
        &[
            "run",
            small,
            "--run",
            "run-0007",
            "--out",
            out.to_str().unwrap(),
            "--plugin-dir",
            repo().join("target/wasm32-wasip2/plugin").to_str().unwrap(),
            "--plugin",
            wasm.to_str().unwrap(),
        ],
    );
    assert!(run.status.success(), "{}", text(&run));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run-0007/report.json")).unwrap())
            .unwrap();
    let plugins = report["plugins"].as_array().unwrap();
    assert!(plugins.len() > 5, "the bundled plugins ran too");
    let mine = plugins.iter().find(|p| p["name"] == "my-plot").expect("my-plot in the report");
    assert_eq!(mine["status"], "ok");
    let figure = mine["figures"][0]["svg"].as_str().unwrap();
    let server = Server::start(Path::new(env!("CARGO_BIN_EXE_larmon")), &out, &[]);
    let (status, _, page) = server.get("/runs/run-0007");
    assert_eq!(status, 200);
    let src = format!("/files/run-0007/{figure}");
    assert!(page.contains(&format!("<img src=\"{src}\"")), "{src} not on the run page");
    assert!(page.contains("<strong>Bad:</strong> a mean below"), "its shifter text is missing");
    let (status, _, svg) = server.get(&src);
    assert_eq!(status, 200);
    assert!(svg.starts_with("<svg") && svg.contains("Hit charge"), "{svg}");

    // A cleaned-away SDK folder is written again by the next build.
    std::fs::remove_dir_all(&sdk).unwrap();
    let rebuilt = larmon(&dir, &["plugin", "build", "my-plot"]);
    assert!(rebuilt.status.success(), "{}", text(&rebuilt));
    assert!(std::fs::read_dir(&sdk).unwrap().count() == 1, "one SDK folder");
}
