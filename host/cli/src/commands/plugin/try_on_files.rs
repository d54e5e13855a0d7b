//! `larmon plugin test`: one plugin alone on data files — its status, metrics, checks and figures
//! printed, its metrics compared with an expected.toml (or written to it with `--bless`), so a
//! volunteer's plot has a regression test without a line of test code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use larmon_pipeline::{LarmonConfig, PluginOptions, RunOptions, RunOutcome, run_files};
use larmon_report::Status;

use crate::progress::TerminalProgress;

/// Relative tolerance of an expected metric without its own.
const DEFAULT_TOLERANCE: f64 = 1e-9;

/// What `larmon plugin test` was asked.
pub struct Trial {
    /// Crate folder or component.
    pub plugin: PathBuf,
    /// Data files of one run.
    pub files: Vec<PathBuf>,
    /// expected.toml to compare with.
    pub expect: Option<PathBuf>,
    /// Write expected.toml instead.
    pub bless: bool,
    /// Output folder.
    pub out: Option<PathBuf>,
    /// larmon configuration.
    pub config: Option<PathBuf>,
}

/// One expected metric.
#[derive(Debug, PartialEq)]
struct Expected {
    value: f64,
    tolerance: f64,
}

pub fn run(trial: &Trial) -> Result<()> {
    let started = Instant::now();
    // A source (a crate folder, a Python plugin's folder or file) is built first; its folder
    // keeps the test output and expected.toml.
    let source_dir = if trial.plugin.is_dir() {
        Some(trial.plugin.clone())
    } else if trial.plugin.extension().is_some_and(|e| e == "py") {
        Some(trial.plugin.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf))
    } else {
        None
    };
    let component = match &source_dir {
        Some(_) => super::compile::build(&trial.plugin)?,
        None => trial.plugin.clone(),
    };
    let expectations = match &trial.expect {
        Some(path) => Some(read_expected(path)?),
        None => None,
    };
    let out = match &trial.out {
        Some(out) => out.clone(),
        None => match &source_dir {
            Some(dir) => dir.join("test-output"),
            None => std::env::temp_dir().join(format!("larmon-plugin-test-{}", std::process::id())),
        },
    };
    let config = LarmonConfig::load_for(trial.config.as_deref(), None)?;
    let plugins =
        PluginOptions { extra: vec![component.clone()], bundled: false, ..Default::default() }
            .load()?;
    if let Some((file, reason)) = plugins.unusable.first() {
        bail!("{}: not a usable plugin ({file}): {reason}", component.display());
    }
    let options = RunOptions {
        files: trial.files.clone(),
        out: out.clone(),
        run: None,
        run_db: None,
        light_channel_map: None,
        shard: None,
        version: None,
    };
    let RunOutcome::Report(written) = run_files(&options, &config, &plugins, &TerminalProgress)?
    else {
        bail!("no report (a shard was written)");
    };
    let entry = written.report.plugins.first().context("the report lists no plugin")?;
    let run_dir = written.path.parent().unwrap_or(&out);
    println!(
        "{} {}: {} on {} file(s) in {:.1} s",
        entry.name,
        entry.version,
        entry.status.as_str(),
        trial.files.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(error) = &entry.error {
        println!("  error    {error}");
    }
    for metric in &entry.metrics {
        let error = metric.error.map(|e| format!(" ± {e}")).unwrap_or_default();
        println!("  metric   {} = {}{error} {}", metric.name, metric.value, metric.unit);
    }
    for check in &entry.checks {
        println!("  check    {} {}: {}", check.name, check.status.as_str(), check.message);
    }
    for figure in &entry.figures {
        println!("  figure   {}", run_dir.join(&figure.svg).display());
    }
    for line in entry.log.iter().take(20) {
        println!("  log      {line}");
    }
    let metrics: BTreeMap<&str, f64> =
        entry.metrics.iter().map(|m| (m.name.as_str(), m.value)).collect();
    if trial.bless {
        let path = match &trial.expect {
            Some(path) => path.clone(),
            None => match &source_dir {
                Some(dir) => dir.join("expected.toml"),
                None => bail!("--bless with a .wasm needs --expect FILE to write to"),
            },
        };
        write_expected(&path, &entry.name, &trial.files, &metrics)?;
        println!("wrote {} ({} metrics)", path.display(), metrics.len());
    }
    if entry.status == Status::Error {
        bail!("{} failed on these files", entry.name);
    }
    if let Some(expected) = expectations {
        let differences = compare(&expected, &metrics);
        if !differences.is_empty() {
            bail!(
                "{} metric(s) differ from {}:\n  {}",
                differences.len(),
                trial.expect.as_ref().expect("read above").display(),
                differences.join("\n  ")
            );
        }
        println!("all {} expected metrics match", expected.len());
    }
    Ok(())
}

/// `[metrics] name = value | { value, tolerance }`.
fn read_expected(path: &Path) -> Result<BTreeMap<String, Expected>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_expected(&text).with_context(|| format!("{}", path.display()))
}

fn parse_expected(text: &str) -> Result<BTreeMap<String, Expected>> {
    let table: toml::Table = text.parse().context("not TOML")?;
    let Some(metrics) = table.get("metrics") else {
        bail!("no [metrics] table");
    };
    let metrics = metrics.as_table().context("`metrics` is not a table")?;
    let number = |value: &toml::Value, name: &str, what: &str| -> Result<f64> {
        match value {
            toml::Value::Float(v) => Ok(*v),
            toml::Value::Integer(v) => Ok(*v as f64),
            other => bail!("metrics.{name}: {what} {other} is not a number"),
        }
    };
    let mut expected = BTreeMap::new();
    for (name, value) in metrics {
        let (value, tolerance) = match value {
            toml::Value::Table(spec) => {
                let value =
                    spec.get("value").with_context(|| format!("metrics.{name}: no value"))?;
                let tolerance = match spec.get("tolerance") {
                    Some(t) => number(t, name, "tolerance")?,
                    None => DEFAULT_TOLERANCE,
                };
                if let Some(key) = spec.keys().find(|k| *k != "value" && *k != "tolerance") {
                    bail!("metrics.{name}: unknown key {key:?} (value, tolerance)");
                }
                (number(value, name, "value")?, tolerance)
            }
            other => (number(other, name, "value")?, DEFAULT_TOLERANCE),
        };
        if tolerance.is_nan() || tolerance < 0.0 {
            bail!("metrics.{name}: the tolerance must be ≥ 0, not {tolerance}");
        }
        expected.insert(name.clone(), Expected { value, tolerance });
    }
    Ok(expected)
}

/// One line per expected metric that is missing or outside its tolerance.
fn compare(expected: &BTreeMap<String, Expected>, actual: &BTreeMap<&str, f64>) -> Vec<String> {
    let mut differences = Vec::new();
    for (name, want) in expected {
        match actual.get(name.as_str()) {
            None => differences.push(format!("{name}: expected {}, not reported", want.value)),
            Some(&got) => {
                let same = got == want.value
                    || (got.is_nan() && want.value.is_nan())
                    || (got - want.value).abs() <= want.tolerance * want.value.abs().max(got.abs());
                if !same {
                    differences.push(format!(
                        "{name}: expected {} (relative tolerance {:e}), got {got}",
                        want.value, want.tolerance
                    ));
                }
            }
        }
    }
    differences
}

fn write_expected(
    path: &Path,
    plugin: &str,
    files: &[PathBuf],
    metrics: &BTreeMap<&str, f64>,
) -> Result<()> {
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.file_name().map_or_else(|| f.display().to_string(), |n| n.to_string_lossy().into())
        })
        .collect();
    let mut text = format!(
        "# Metrics of plugin {plugin} on {}, written by `larmon plugin test --bless`.\n\
         # `larmon plugin test PLUGIN --on FILES --expect THIS` fails when one differs.\n\
         # Each is a value, or {{ value = V, tolerance = T }} (relative; default {DEFAULT_TOLERANCE:e}).\n\
         [metrics]\n",
        names.join(", ")
    );
    for (name, value) in metrics {
        // A bare key where TOML allows one, else a quoted one.
        let bare = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let key = if bare {
            (*name).to_owned()
        } else {
            toml::Value::String((*name).to_owned()).to_string()
        };
        text.push_str(&format!("{key} = {}\n", toml::Value::Float(*value)));
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_metrics_are_read_and_compared_within_their_tolerance() {
        let expected = parse_expected(
            "[metrics]\nmean = 10.0\ncount = 3\nrate = { value = 100.0, tolerance = 0.01 }\n\
             missing = 1.0\nundefined = nan\n",
        )
        .unwrap();
        assert_eq!(expected["count"], Expected { value: 3.0, tolerance: DEFAULT_TOLERANCE });
        let actual: BTreeMap<&str, f64> = [
            ("mean", 10.0),
            ("count", 3.0),
            ("rate", 100.9),
            ("undefined", f64::NAN),
            ("new", 1.0),
        ]
        .into_iter()
        .collect();
        assert_eq!(compare(&expected, &actual), vec!["missing: expected 1, not reported"]);
        let moved: BTreeMap<&str, f64> = [
            ("mean", 10.0001),
            ("count", 3.0),
            ("rate", 102.0),
            ("undefined", 1.0),
            ("missing", 1.0),
        ]
        .into_iter()
        .collect();
        let differences = compare(&expected, &moved);
        assert_eq!(differences.len(), 3, "{differences:?}");
        assert!(differences[0].starts_with("mean: expected 10"), "{differences:?}");
    }

    #[test]
    fn a_bad_expected_file_says_what_is_wrong() {
        let error = |text: &str| format!("{:#}", parse_expected(text).unwrap_err());
        assert!(error("metrics = 1").contains("not a table"));
        assert!(error("[other]\n").contains("no [metrics]"));
        assert!(error("[metrics]\nx = \"high\"").contains("metrics.x"));
        assert!(error("[metrics]\nx = { value = 1, tol = 2 }").contains("unknown key \"tol\""));
        assert!(error("[metrics]\nx = { value = 1, tolerance = -1 }").contains("≥ 0"));
    }

    #[test]
    fn blessed_metrics_read_back_as_written() {
        let dir = std::env::temp_dir().join(format!("larmon-bless-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("expected.toml");
        let metrics: BTreeMap<&str, f64> = [
            ("mean_charge", 12.345678901234),
            ("odd name", -0.5),
            ("nothing", f64::NAN),
            ("", 2.0),
        ]
        .into_iter()
        .collect();
        write_expected(&path, "my-plot", &[PathBuf::from("/data/run1.h5")], &metrics).unwrap();
        let back = read_expected(&path).unwrap();
        assert_eq!(back["mean_charge"].value, 12.345678901234);
        assert_eq!(back["odd name"].value, -0.5);
        assert!(back["nothing"].value.is_nan());
        assert_eq!(back[""].value, 2.0);
        assert!(compare(&back, &metrics).is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
