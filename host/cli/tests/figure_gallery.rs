//! The figure gallery: every figure of every bundled plugin for the demo's simulated runs
//! (charge with light) and for a charge-only run, checked by code for what a shifter must be
//! able to rely on, and rendered to PNG under `target/figure-gallery/` (CI keeps that folder as
//! an artifact; docs/plots.md says what bad looks like for each figure).
//!
//! Checked on every figure: it draws (no "plot failed"); no tick or label prints an integer as
//! "3.0"; no text runs off the figure; a typed figure keeps the common style
//! (`TypedFigure::style_problems`: titles, axis labels with units, distinct series colours);
//! an empty typed figure says "no data". With `rsvg-convert` (Debian's librsvg2-bin, which CI
//! installs) every SVG must also render to a PNG; elsewhere that part says SKIPPED.

use std::path::{Path, PathBuf};
use std::process::Command;

use larmon_plugin_sdk::TypedFigure;
use larmon_tests::scratch;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A `<text>` element: position, anchor, font size and content.
struct SvgText {
    x: f64,
    y: f64,
    anchor: String,
    size: f64,
    /// Turned by 90° (a y axis label): it runs along y.
    rotated: bool,
    text: String,
}

fn attribute(attributes: &str, name: &str) -> Option<String> {
    Some(attributes.split(&format!(" {name}=\"")).nth(1)?.split('"').next()?.to_string())
}

fn texts(svg: &str) -> Vec<SvgText> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let (attributes, rest) = t.split_once('>')?;
            let text = rest.split_once("</text>")?.0.trim().to_string();
            Some(SvgText {
                x: attribute(attributes, "x")?.parse().ok()?,
                y: attribute(attributes, "y")?.parse().ok()?,
                anchor: attribute(attributes, "text-anchor").unwrap_or_else(|| "start".into()),
                size: attribute(attributes, "font-size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(13.0),
                rotated: attribute(attributes, "transform").is_some_and(|t| t.contains("rotate")),
                text,
            })
        })
        .collect()
}

/// The problems a shifter would see in one figure.
fn problems(svg: &str, typed: Option<&TypedFigure>) -> Vec<String> {
    let mut problems = Vec::new();
    if !svg.starts_with("<svg") || svg.contains("plot failed") {
        problems.push("does not draw".to_string());
        return problems;
    }
    let size = |name: &str| {
        attribute(&svg[..svg.find('>').unwrap_or(0)], name).and_then(|v| v.parse::<f64>().ok())
    };
    let (width, height) = (size("width").unwrap_or(f64::MAX), size("height").unwrap_or(f64::MAX));
    // Tables print measured decimals as they are ("1.0 expected packets"); axes must not.
    let table = matches!(typed, Some(TypedFigure::Table { .. }));
    for t in texts(svg) {
        let digits = t.text.trim_start_matches('-');
        if !table
            && digits.ends_with(".0")
            && digits[..digits.len() - 2].chars().all(|c| c.is_ascii_digit())
        {
            problems.push(format!("integer printed as {:?}", t.text));
        }
        if t.text.parse::<f64>().is_ok_and(|v| v != 0.0 && v.abs() < 1e-12) {
            problems.push(format!("rounding noise printed as a tick: {:?}", t.text));
        }
        // Sans-serif averages ~0.55 em per character.
        let w = 0.55 * t.size * t.text.chars().count() as f64;
        let (along, limit) = if t.rotated { (t.y, height) } else { (t.x, width) };
        let (start, end) = match t.anchor.as_str() {
            "middle" => (along - w / 2.0, along + w / 2.0),
            "end" => (along - w, along),
            _ => (along, along + w),
        };
        let across_ok =
            if t.rotated { (0.0..=width).contains(&t.x) } else { (0.0..=height).contains(&t.y) };
        if start < -2.0 || end > limit + 2.0 || !across_ok {
            problems.push(format!("text {:?} runs off the {width}×{height} figure", t.text));
        }
    }
    if let Some(typed) = typed {
        problems.extend(typed.style_problems());
        let empty = match typed {
            TypedFigure::Plot { plot } => !plot.has_data(),
            TypedFigure::ValueMap { points, .. } => points.is_empty(),
            TypedFigure::Table { .. } => false,
        };
        if empty && !texts(svg).iter().any(|t| t.text == "no data") {
            problems.push("empty without \"no data\"".to_string());
        }
    }
    problems
}

/// Checks every figure of every report under `reports`, renders each to PNG in `gallery`, and
/// returns the number of figures.
fn check_reports(reports: &Path, gallery: &Path, rsvg: bool) -> usize {
    let mut found = Vec::new();
    let mut figures = 0;
    for run in std::fs::read_dir(reports).unwrap().flatten() {
        let run_dir = run.path();
        let Ok(text) = std::fs::read_to_string(run_dir.join("report.json")) else { continue };
        let report: Value = serde_json::from_str(&text).unwrap();
        for plugin in report["plugins"].as_array().unwrap() {
            assert_eq!(plugin["status"], "ok", "{}", plugin["name"]);
            for figure in plugin["figures"].as_array().unwrap() {
                figures += 1;
                let file = |key: &str| run_dir.join(figure[key].as_str().unwrap());
                let svg = std::fs::read_to_string(file("svg")).unwrap();
                let typed = std::fs::read_to_string(file("data"))
                    .ok()
                    .and_then(|d| TypedFigure::from_json(&d));
                let name = format!(
                    "{}/{}_{}",
                    run.file_name().to_string_lossy(),
                    plugin["name"].as_str().unwrap(),
                    figure["name"].as_str().unwrap()
                );
                for problem in problems(&svg, typed.as_ref()) {
                    found.push(format!("{name}: {problem}"));
                }
                if rsvg {
                    let png = gallery.join(format!("{name}.png"));
                    std::fs::create_dir_all(png.parent().unwrap()).unwrap();
                    let status = Command::new("rsvg-convert")
                        .arg(file("svg"))
                        .arg("-o")
                        .arg(&png)
                        .status()
                        .unwrap();
                    let bytes = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
                    if !status.success() || bytes == 0 {
                        found.push(format!("{name}: rsvg-convert could not render it"));
                    }
                }
            }
        }
    }
    assert!(found.is_empty(), "{} figure problems:\n{}", found.len(), found.join("\n"));
    figures
}

fn rsvg_convert() -> bool {
    let present = Command::new("rsvg-convert").arg("--version").output().is_ok();
    if !present {
        // The code checks above still run; only the PNGs are missing.
        eprintln!("SKIPPED: PNG rendering of the figure gallery (no rsvg-convert on PATH)");
    }
    present
}

#[test]
fn every_bundled_figure_of_the_demo_and_of_a_charge_only_run_reads_at_a_glance() {
    let dir = scratch("figure-gallery");
    let gallery = repo().join("target/figure-gallery");
    let _ = std::fs::remove_dir_all(&gallery);
    let rsvg = rsvg_convert();
    let larmon = env!("CARGO_BIN_EXE_larmon");
    // The demo: three simulated runs, charge and light, one with faults.
    let demo = dir.join("demo");
    let out = Command::new(larmon)
        .args(["demo", "--no-serve", "--duration-s", "6", "--out"])
        .arg(&demo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let demo_figures = check_reports(&demo.join("reports"), &gallery.join("demo"), rsvg);
    // A charge-only run: the light plugins' figures must say "no data", not look broken.
    let daq = dir.join("charge-only");
    let out = Command::new(larmon)
        .args(["simulate", "--duration-s", "4", "--seed", "3", "--out"])
        .arg(&daq)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let charge: Vec<PathBuf> = std::fs::read_dir(&daq)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "h5") && !p.to_string_lossy().contains("light")
        })
        .collect();
    assert!(!charge.is_empty(), "no charge file in {}", daq.display());
    let reports = dir.join("charge-only-reports");
    let out = Command::new(larmon)
        .arg("run")
        .args(&charge)
        .args(["--run", "charge-only", "--out"])
        .arg(&reports)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let charge_figures = check_reports(&reports, &gallery.join("charge-only"), rsvg);
    // Every bundled plugin made figures, the new views among them.
    assert!(demo_figures >= 3 * 60, "{demo_figures} figures in three demo runs");
    assert!(charge_figures >= 55, "{charge_figures} figures in the charge-only run");
    let report = std::fs::read_to_string(reports.join("charge-only/report.json")).unwrap();
    for view in [
        "parity_vs_time",
        "type_fractions",
        "fractions_vs_time",
        "per_tile_vs_time",
        "uart_sync",
        "trigger_coincidence",
        "sync_vs_time",
        "rate_tpc1",
    ] {
        assert!(report.contains(&format!("\"{view}\"")), "no figure {view}");
    }
}
