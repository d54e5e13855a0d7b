//! Checks as data: a TOML table of `"plugin/metric"` → warning and error ranges, evaluated by the
//! host beside the plugins' own checks, and the worst-case roll-up to a run quality flag.
//!
//! ```toml
//! [checks."dqdx/mpv_ke_per_cm"]
//! warn = [45.0, 60.0]     # outside: warning
//! error = [36.0, 75.0]    # outside: error
//! [checks."electron-lifetime/lifetime_us"]
//! warn = [1000.0, 1e9]
//! error = [500.0, 1e9]
//! [checks."packet-rate/parity_error_fraction"]
//! warn = [0.0, 0.002]
//! missing = "warning"     # metric absent from the run: ok (default) | warning | error
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::{Check, PluginEntry, Status};

/// Limits of one metric.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Inside this [low, high] the metric is fine; outside, a warning.
    pub warn: Option<[f64; 2]>,
    /// Outside this [low, high], an error.
    pub error: Option<[f64; 2]>,
    /// What a run without the metric gets.
    #[serde(default = "missing_default")]
    pub missing: Status,
}

fn missing_default() -> Status {
    Status::Ok
}

/// The `[checks]` table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChecksConfig {
    /// `"plugin/metric"` → limits.
    pub limits: BTreeMap<String, Limits>,
}

/// Why a checks table is not valid.
#[derive(Debug, thiserror::Error)]
#[error("[checks.\"{key}\"]: {reason}")]
pub struct ChecksError {
    /// The key.
    pub key: String,
    /// Why.
    pub reason: String,
}

impl ChecksConfig {
    /// Reads the `[checks]` table of a configuration file.
    pub fn from_table(table: toml::Table) -> Result<Self, ChecksError> {
        let mut limits = BTreeMap::new();
        for (key, value) in table {
            if !key.contains('/') {
                return Err(ChecksError {
                    key,
                    reason: "name a metric as \"plugin/metric\"".into(),
                });
            }
            let parsed: Limits = value.try_into().map_err(|e: toml::de::Error| ChecksError {
                key: key.clone(),
                reason: e.message().to_string(),
            })?;
            for range in [parsed.warn, parsed.error].into_iter().flatten() {
                if range[0].is_nan() || range[1].is_nan() || range[0] > range[1] {
                    return Err(ChecksError { key, reason: format!("range {range:?} is empty") });
                }
            }
            limits.insert(key, parsed);
        }
        Ok(Self { limits })
    }
}

/// Evaluates the configured limits on the plugins' metrics.
pub fn evaluate(config: &ChecksConfig, plugins: &[PluginEntry]) -> Vec<Check> {
    config
        .limits
        .iter()
        .map(|(key, limits)| {
            let metric = key.split_once('/').and_then(|(plugin, name)| {
                plugins.iter().find(|p| p.name == plugin)?.metrics.iter().find(|m| m.name == name)
            });
            let Some(metric) = metric else {
                return Check {
                    name: key.clone(),
                    status: limits.missing,
                    message: "metric not in this run".into(),
                };
            };
            let v = metric.value;
            let outside = |r: [f64; 2]| !(v >= r[0] && v <= r[1]);
            let (status, message) = match (limits.error, limits.warn) {
                (Some(e), _) if outside(e) => {
                    (Status::Error, format!("{v} {} outside [{}, {}]", metric.unit, e[0], e[1]))
                }
                (_, Some(w)) if outside(w) => {
                    (Status::Warning, format!("{v} {} outside [{}, {}]", metric.unit, w[0], w[1]))
                }
                _ => (Status::Ok, format!("{v} {} within limits", metric.unit)),
            };
            Check { name: key.clone(), status, message }
        })
        .collect()
}

/// The run flag: the worst of the host checks, every plugin check, and `error` for a plugin
/// that failed (its plots are missing).
pub fn run_flag(plugins: &[PluginEntry], host_checks: &[Check]) -> Status {
    let plugin_worst = plugins.iter().flat_map(|p| {
        let failed = if p.status == Status::Ok { Status::Ok } else { Status::Error };
        p.checks.iter().map(|c| c.status).chain([failed])
    });
    host_checks.iter().map(|c| c.status).chain(plugin_worst).max().unwrap_or(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_entry;

    fn plugin(metric: f64, check: Status) -> PluginEntry {
        test_entry("dqdx", ("mpv_ke_per_cm", metric, "ke-/cm"), check)
    }

    fn config(text: &str) -> ChecksConfig {
        ChecksConfig::from_table(toml::from_str(text).unwrap()).unwrap()
    }

    #[test]
    fn limits_give_ok_warning_error_and_the_flag_is_the_worst() {
        let c = config(
            "[\"dqdx/mpv_ke_per_cm\"]\nwarn = [45.0, 60.0]\nerror = [36.0, 75.0]\n[\"x/absent\"]\nmissing = \"warning\"\n",
        );
        for (value, expected) in [
            (50.0, Status::Ok),
            (62.0, Status::Warning),
            (80.0, Status::Error),
            (f64::NAN, Status::Error),
        ] {
            let checks = evaluate(&c, &[plugin(value, Status::Ok)]);
            assert_eq!(checks[0].status, expected, "{value}");
            assert_eq!(checks[1].status, Status::Warning, "missing metric");
            assert_eq!(
                run_flag(&[plugin(value, Status::Ok)], &checks),
                expected.max(Status::Warning)
            );
        }
        // A plugin's own error check or a failed plugin makes the run an error.
        assert_eq!(run_flag(&[plugin(50.0, Status::Error)], &[]), Status::Error);
        let mut failed = plugin(50.0, Status::Ok);
        failed.status = Status::Error;
        assert_eq!(run_flag(&[failed], &[]), Status::Error);
    }

    #[test]
    fn bad_tables_are_refused_with_the_key() {
        let bad = |text: &str| {
            ChecksConfig::from_table(toml::from_str(text).unwrap()).unwrap_err().to_string()
        };
        assert!(bad("[nokey]\nwarn = [1.0, 2.0]\n").contains("plugin/metric"));
        assert!(bad("[\"a/b\"]\nwarn = [3.0, 2.0]\n").contains("empty"));
        assert!(bad("[\"a/b\"]\nwran = [1.0, 2.0]\n").contains("a/b"));
    }
}
