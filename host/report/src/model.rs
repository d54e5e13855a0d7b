//! The report.json model: one run, its host statistics, each plugin's status, metrics, checks,
//! figures and results, and the run's quality.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Outcome of a check, and the run quality flag (worst case of its checks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    #[default]
    Ok,
    /// Look at it.
    Warning,
    /// Act on it.
    Error,
}

impl Status {
    /// "ok", "warning", "error".
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Error => "error",
        }
    }
}

/// A number a plugin measured. NaN and ±infinity are kept: report.json has only finite
/// numbers, so such a value is written as `null` with `value_text` ("NaN", "inf", "-inf")
/// beside it (`error_text` for the error), and read back as the same value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "MetricJson", into = "MetricJson")]
pub struct Metric {
    /// Name, unique within the plugin.
    pub name: String,
    /// Value.
    pub value: f64,
    /// Error, if known.
    pub error: Option<f64>,
    /// Unit.
    pub unit: String,
}

/// A metric as report.json holds it (see [`Metric`]).
#[derive(Serialize, Deserialize)]
struct MetricJson {
    name: String,
    value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_text: Option<String>,
    error: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error_text: Option<String>,
    unit: String,
}

/// A finite number as itself, any other as `None` and its text.
fn split_number(value: f64) -> (Option<f64>, Option<String>) {
    if value.is_finite() {
        (Some(value), None)
    } else {
        (None, Some(non_finite_text(value).to_string()))
    }
}

/// "NaN", "inf" or "-inf".
pub fn non_finite_text(value: f64) -> &'static str {
    if value.is_nan() {
        "NaN"
    } else if value > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

fn join_number(value: Option<f64>, text: Option<&str>) -> Option<f64> {
    match (value, text) {
        (Some(v), _) => Some(v),
        (None, Some("inf")) => Some(f64::INFINITY),
        (None, Some("-inf")) => Some(f64::NEG_INFINITY),
        (None, Some(_)) => Some(f64::NAN),
        (None, None) => None,
    }
}

impl From<Metric> for MetricJson {
    fn from(m: Metric) -> Self {
        let (value, value_text) = split_number(m.value);
        let (error, error_text) = m.error.map_or((None, None), split_number);
        Self { name: m.name, value, value_text, error, error_text, unit: m.unit }
    }
}

impl From<MetricJson> for Metric {
    fn from(m: MetricJson) -> Self {
        Self {
            name: m.name,
            // A value missing without a text (a report of an older larmon that wrote NaN as
            // null) reads as NaN: the run stays readable.
            value: join_number(m.value, m.value_text.as_deref()).unwrap_or(f64::NAN),
            error: join_number(m.error, m.error_text.as_deref()),
            unit: m.unit,
        }
    }
}

/// A check and its outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Name.
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// What was found.
    pub message: String,
}

/// A figure's files, relative to the run directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FigureFiles {
    /// Name, unique within the plugin.
    pub name: String,
    /// Title.
    pub title: String,
    /// The SVG.
    pub svg: String,
    /// The plotted data (JSON).
    pub data: String,
}

/// How a plugin was loaded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadEntry {
    /// "Cache" or "Compiled".
    pub source: String,
    /// Load time, ms.
    pub milliseconds: f64,
}

/// One plugin's part of a run report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PluginEntry {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// What it shows.
    pub description: String,
    /// What its figures show and what bad looks like, for the shifter (the plugin's own text;
    /// `**bold**` allowed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub help: String,
    /// Component file name.
    pub file: String,
    /// SHA-256 of the component.
    pub sha256: String,
    /// `ok` when the plugin ran and reported, `error` when it failed (see `error`); its own
    /// findings are in its checks.
    pub status: Status,
    /// Why it failed.
    pub error: Option<String>,
    /// How it was loaded.
    pub load: LoadEntry,
    /// Metrics.
    pub metrics: Vec<Metric>,
    /// Its own checks.
    pub checks: Vec<Check>,
    /// Figures.
    pub figures: Vec<FigureFiles>,
    /// Structured results (e.g. flagged channels).
    #[serde(default)]
    pub results: BTreeMap<String, serde_json::Value>,
    /// Captured log.
    pub log: Vec<String>,
}

/// The run's quality: the host's checks (from the checks configuration) and the roll-up.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Worst case of every check and plugin status.
    pub flag: Option<Status>,
    /// Checks evaluated by the host on plugin metrics (`[checks]` configuration).
    pub host_checks: Vec<Check>,
}

/// What produced a report beyond the larmon version and each plugin's component hash (in its
/// entry): enough to tell whether two reports were made the same way.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// SHA-256 over the detector description in force: its settings and the bytes of every file
    /// it names (layouts, placement, channel constants); built-in files are part of the larmon
    /// version.
    pub detector_sha256: String,
    /// The configuration file (`--config`), if one was given.
    pub config_file: Option<PathBuf>,
    /// SHA-256 of the configuration file's bytes (plugin settings and check thresholds
    /// included); absent for the built-in defaults.
    pub config_sha256: Option<String>,
    /// Bundled plugins that a `--plugin` of the same name replaced in this run.
    #[serde(default)]
    pub replaced_plugins: Vec<ReplacedPlugin>,
    /// The reference run each plugin's typed figures were compared with (plugin → run).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reference_runs: BTreeMap<String, String>,
    /// The known-bad channel file in force and the SHA-256 of its bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_bad_channels: Option<(PathBuf, String)>,
}

/// A bundled plugin replaced by another component of the same name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplacedPlugin {
    /// The plugin name both components give.
    pub name: String,
    /// The bundled component's file.
    pub bundled_file: String,
    /// Its SHA-256.
    pub bundled_sha256: String,
    /// The component that ran instead (its hash is in the plugin's entry).
    pub by_file: String,
}

/// `OUT/<run>/report.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Run name.
    pub run: String,
    /// The reviewer's version name (`larmon run --as NAME`), written to
    /// `OUT/<run>/versions/<NAME>/`; absent in the official report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Input files.
    pub files: Vec<PathBuf>,
    /// The run's kind (beam, cosmic, …: `--run-kind` or the configuration's `[[run_kinds]]`),
    /// which chose its reference runs; absent when neither names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_kind: Option<String>,
    /// larmon version that wrote it.
    pub larmon_version: String,
    /// Detector description, configuration and replaced plugins behind it.
    #[serde(default)]
    pub provenance: Provenance,
    /// When the report was written, Unix s.
    pub created_unix_s: f64,
    /// First and last Unix second of the data.
    #[serde(default)]
    pub start_unix_s: Option<u64>,
    /// Last Unix second of the data.
    #[serde(default)]
    pub end_unix_s: Option<u64>,
    /// Host (ingest + calibration) statistics.
    pub host: serde_json::Value,
    /// The detector description in force and where the channel constants came from.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detector: serde_json::Value,
    /// Quality flag and host checks.
    #[serde(default)]
    pub quality: Quality,
    /// One entry per plugin.
    pub plugins: Vec<PluginEntry>,
}

impl RunReport {
    /// A metric by `plugin/metric` key.
    pub fn metric(&self, key: &str) -> Option<&Metric> {
        let (plugin, name) = key.split_once('/')?;
        self.plugins.iter().find(|p| p.name == plugin)?.metrics.iter().find(|m| m.name == name)
    }

    /// Every `plugin/metric` key of the run.
    pub fn metric_keys(&self) -> Vec<String> {
        self.plugins
            .iter()
            .flat_map(|p| p.metrics.iter().map(move |m| format!("{}/{}", p.name, m.name)))
            .collect()
    }

    /// Duration of the data, s.
    pub fn duration_s(&self) -> Option<u64> {
        Some(self.end_unix_s? - self.start_unix_s? + 1)
    }

    /// A host statistic as a number.
    pub fn host_number(&self, key: &str) -> Option<f64> {
        self.host.get(key)?.as_f64()
    }
}

/// A plugin entry with one metric and one own check, for the crate's tests.
#[cfg(test)]
pub(crate) fn test_entry(plugin: &str, metric: (&str, f64, &str), check: Status) -> PluginEntry {
    PluginEntry {
        name: plugin.into(),
        version: "0.1.0".into(),
        description: String::new(),
        help: String::new(),
        file: String::new(),
        sha256: String::new(),
        status: Status::Ok,
        error: None,
        load: LoadEntry { source: "Cache".into(), milliseconds: 1.0 },
        metrics: vec![Metric {
            name: metric.0.into(),
            value: metric.1,
            error: None,
            unit: metric.2.into(),
        }],
        checks: vec![Check { name: "own".into(), status: check, message: String::new() }],
        figures: Vec::new(),
        results: BTreeMap::new(),
        log: Vec::new(),
    }
}
