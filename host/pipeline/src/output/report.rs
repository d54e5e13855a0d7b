//! A plugin's report entry (its metrics, checks and figures written under the run's folder) and
//! the run's report.json: checks evaluated, quality flag rolled up, written atomically.

use std::path::{Path, PathBuf};

use larmon_report::model::{LoadEntry, Quality, non_finite_text};
use larmon_report::{Check, FigureFiles, PluginEntry, Provenance, RunReport, Status};
use larmon_runtime::{LoadedPlugin, PluginFailure, PluginReport, PluginRun, printable};

use crate::config::LarmonConfig;
use crate::error::{IoContext, PipelineError, Result};
use crate::output::figures::{References, draw_typed_figures};
use crate::output::{safe_name, write_atomically};
use crate::plugins::PluginSet;

/// Asks a plugin's run instance for its report and writes its figures. `failure` is the first
/// error of a per-file instance or merge; `file_logs` the per-file instances' captured logs.
pub fn finish_plugin(
    plugin: &LoadedPlugin,
    run: Result<PluginRun, PluginFailure>,
    failure: Option<String>,
    file_logs: Vec<String>,
    run_dir: &Path,
) -> PluginEntry {
    let info = plugin.info();
    let (result, mut log) = match run {
        Ok(mut run) => {
            let report = run.report().map_err(|e| e.to_string());
            (report, run.log())
        }
        Err(e) => (Err(format!("open failed: {e}")), Vec::new()),
    };
    log.splice(0..0, file_logs);
    let result = match failure {
        Some(f) => Err(f),
        None => result,
    };
    let mut entry = PluginEntry {
        name: info.name.clone(),
        version: info.version.clone(),
        description: info.description.clone(),
        help: info.help.trim().to_owned(),
        file: plugin.label().into(),
        sha256: plugin.sha256().into(),
        status: Status::Ok,
        error: None,
        load: LoadEntry {
            source: format!("{:?}", plugin.compile_source()),
            milliseconds: plugin.load_time().as_secs_f64() * 1e3,
        },
        metrics: Vec::new(),
        checks: Vec::new(),
        figures: Vec::new(),
        results: Default::default(),
        log,
    };
    match result {
        Ok(PluginReport { figures, metrics, checks, results }) => {
            entry.checks = checks;
            // NaN or infinite numbers are kept (report.json notes them) and flagged, so they are
            // seen on the run page instead of breaking plots and trends.
            let odd: Vec<String> = metrics
                .iter()
                .filter_map(|m| {
                    let bad =
                        [Some(m.value), m.error].into_iter().flatten().find(|v| !v.is_finite())?;
                    Some(format!("{} = {}", printable(&m.name), non_finite_text(bad)))
                })
                .collect();
            if !odd.is_empty() {
                entry.checks.push(Check {
                    name: "host: finite metrics".into(),
                    status: Status::Warning,
                    message: format!("not a finite number: {}", odd.join(", ")),
                });
            }
            entry.metrics = metrics;
            entry.results = results;
            let dir = run_dir.join(safe_name(&info.name));
            let _ = std::fs::create_dir_all(&dir);
            for figure in figures {
                let stem = safe_name(&figure.name);
                let (svg, data) = (format!("{stem}.svg"), format!("{stem}.json"));
                let written = std::fs::write(dir.join(&svg), &figure.svg)
                    .and_then(|()| std::fs::write(dir.join(&data), &figure.data_json));
                if let Err(e) = written {
                    entry.status = Status::Error;
                    entry.error = Some(format!("writing figure {stem}: {e}"));
                }
                let prefix = safe_name(&info.name);
                entry.figures.push(FigureFiles {
                    name: figure.name,
                    title: figure.title,
                    svg: format!("{prefix}/{svg}"),
                    data: format!("{prefix}/{data}"),
                });
            }
        }
        Err(e) => {
            entry.status = Status::Error;
            entry.error = Some(e);
        }
    }
    entry
}

/// The report entry of a plugin file that could not be loaded.
pub fn unusable_entry(file: &str, reason: &str) -> PluginEntry {
    PluginEntry {
        name: file.trim_end_matches(".wasm").into(),
        version: String::new(),
        description: "could not be loaded".into(),
        help: String::new(),
        file: file.into(),
        sha256: String::new(),
        status: Status::Error,
        error: Some(format!("not loaded: {reason}")),
        load: LoadEntry { source: "None".into(), milliseconds: 0.0 },
        metrics: Vec::new(),
        checks: Vec::new(),
        figures: Vec::new(),
        results: Default::default(),
        log: Vec::new(),
    }
}

/// What goes into a run's report besides the plugin entries.
pub struct RunTotals {
    /// The run's files, in order.
    pub files: Vec<PathBuf>,
    /// Unix seconds of the first and last timestamp row of the data.
    pub span: Option<(u64, u64)>,
    /// The host's statistics (calibration, light), summed over the files.
    pub host: serde_json::Value,
    /// The detector description and channel constants in force
    /// ([`crate::input::charge::RunCalibration::summary`]).
    pub detector: serde_json::Value,
    /// What made the report ([`provenance`]).
    pub provenance: Provenance,
    /// A reviewer's version name (`larmon run --as NAME`); none for the official report.
    pub version: Option<String>,
}

/// The provenance of a run's report: the detector description's hash, the configuration file
/// and its hash, and the bundled plugins replaced in `plugins`.
pub fn provenance(config: &LarmonConfig, detector_sha256: &str, plugins: &PluginSet) -> Provenance {
    Provenance {
        detector_sha256: detector_sha256.into(),
        config_file: config.source.as_ref().map(|(path, _)| path.clone()),
        config_sha256: config.source.as_ref().map(|(_, sha256)| sha256.clone()),
        replaced_plugins: plugins.replaced.clone(),
        known_bad_channels: config.known_bad.as_ref().map(|k| (k.file.clone(), k.sha256.clone())),
        reference_runs: Default::default(),
    }
}

/// A report written to disk.
pub struct WrittenReport {
    /// Where it was written.
    pub path: PathBuf,
    /// What was written.
    pub report: RunReport,
}

impl WrittenReport {
    /// The run's quality flag.
    pub fn flag(&self) -> Status {
        self.report.quality.flag.unwrap_or(Status::Error)
    }

    /// The names of the plugins that failed.
    pub fn failed_plugins(&self) -> Vec<&str> {
        self.report
            .plugins
            .iter()
            .filter(|p| p.status != Status::Ok)
            .map(|p| p.name.as_str())
            .collect()
    }

    /// The line larmon prints for a written report: run, flag, plugins, figures, path and the
    /// time it took (`seconds`).
    pub fn summary_line(&self, seconds: f64) -> String {
        let failed = self.failed_plugins();
        format!(
            "{}: quality {}, {} plugins ({} failed{}), {} figures -> {} in {:.2} s",
            self.report.run,
            self.flag().as_str(),
            self.report.plugins.len(),
            failed.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(": {}", printable(&failed.join(", ")))
            },
            self.report.plugins.iter().map(|p| p.figures.len()).sum::<usize>(),
            self.path.display(),
            seconds
        )
    }
}

/// Draws the typed figures (over their references), evaluates the configured checks, rolls up
/// the quality flag and writes
/// `run_dir/report.json` atomically.
pub fn write_report(
    run_name: &str,
    run_dir: &Path,
    totals: RunTotals,
    mut entries: Vec<PluginEntry>,
    config: &LarmonConfig,
) -> Result<WrittenReport> {
    // Typed figures are drawn now, over their references, with their shape checks (which
    // count toward the flag like every other check).
    let out = match &totals.version {
        None => run_dir.parent(),
        Some(_) => run_dir.parent().and_then(Path::parent).and_then(Path::parent),
    }
    .unwrap_or(run_dir);
    let references = match References::read(out) {
        Ok(file) => config.references.with_fallback(&file),
        Err(e) => {
            entries.iter_mut().for_each(|p| p.log.push(format!("references: {e}")));
            config.references.clone()
        }
    };
    // The kind (from the plugins' metrics) picks the references.
    let run_kind = config.run_kinds.kind_of(config.run_kind.as_deref(), &entries);
    let reference_runs = draw_typed_figures(
        run_name,
        run_dir,
        out,
        &mut entries,
        &references.for_kind(run_kind.as_deref()),
        &config.shape_checks,
        totals.span.map(|s| s.0),
    );
    let mut totals = totals;
    totals.provenance.reference_runs = reference_runs;
    let checks = &config.checks;
    let host_checks = larmon_report::evaluate(checks, &entries);
    let flag = larmon_report::run_flag(&entries, &host_checks);
    let report = RunReport {
        run: run_name.to_string(),
        version: totals.version,
        files: totals.files,
        run_kind,
        larmon_version: env!("CARGO_PKG_VERSION").into(),
        provenance: totals.provenance,
        created_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
        start_unix_s: totals.span.map(|s| s.0),
        end_unix_s: totals.span.map(|s| s.1),
        host: totals.host,
        detector: totals.detector,
        quality: Quality { flag: Some(flag), host_checks },
        plugins: entries,
    };
    let path = run_dir.join("report.json");
    let text = serde_json::to_string_pretty(&report)
        .map_err(|source| PipelineError::State { path: path.clone(), source })?;
    write_atomically(&path, text.as_bytes()).at(&path)?;
    Ok(WrittenReport { path, report })
}
