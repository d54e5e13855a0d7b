//! The one configuration of larmon: a TOML file with the detector description at the top level,
//! `[plugins.NAME]` tables of plugin settings and `[checks]` thresholds. Every command reads it
//! with [`LarmonConfig::load`], so one file serves `run`, `watch`, `merge`, `calibrate`, `meta`
//! and `simulate` alike; a command ignores the sections it has no use for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use larmon_calibrate::DetectorConfig;
use larmon_report::{ChecksConfig, RunKinds};

use larmon_runtime::PluginInfo;

use crate::error::{IoContext, PipelineError, Result};
use crate::known_bad::{KnownBad, load_known_bad};
use crate::output::figures::{References, ShapeCheck};

/// Everything a configuration file says, read once.
#[derive(Debug, Clone, Default)]
pub struct LarmonConfig {
    /// The detector description (layouts, calibration constants, event building).
    pub detector: DetectorConfig,
    /// Plugin name → its settings as JSON (the `[plugins.NAME]` table), handed to the plugin.
    pub plugins: BTreeMap<String, String>,
    /// Check thresholds over plugin metrics, and the run quality rules.
    pub checks: ChecksConfig,
    /// The file it was read from and the SHA-256 of its bytes (none: the built-in defaults),
    /// recorded in every report's provenance.
    pub source: Option<(PathBuf, String)>,
    /// Known-bad channels (`known_bad_channels = "FILE"`, [`crate::known_bad`]), with the
    /// file and the SHA-256 of its bytes.
    pub known_bad: Option<KnownBad>,
    /// Reference runs of the plugins (`[references]`; OUT/references.json fills the gaps).
    pub references: References,
    /// Shape checks of typed figures against their reference (`[shape_checks."plugin/figure"]`).
    pub shape_checks: BTreeMap<String, ShapeCheck>,
    /// Rules that tell a run's kind from its metrics (`[[run_kinds]]`).
    pub run_kinds: RunKinds,
    /// The kind the operator named (`--run-kind`), before every rule.
    pub run_kind: Option<String>,
}

impl LarmonConfig {
    /// Reads `path`, or gives the built-in defaults when there is none. Unknown detector keys
    /// are refused with the file's name and the key.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else { return Ok(Self::default()) };
        let text = std::fs::read_to_string(path).at(path)?;
        let mut config = Self::parse(&text, path)?;
        config.source = Some((path.to_path_buf(), sha256_hex(text.as_bytes())));
        Ok(config)
    }

    /// [`Self::load`], then selects the built-in detector `detector` (`--detector NAME`) when
    /// one is given. Naming a detector that does not exist, or one while the file lists its own
    /// `[[modules]]`, is an error.
    pub fn load_for(path: Option<&Path>, detector: Option<&str>) -> Result<Self> {
        let mut config = Self::load(path)?;
        if let Some(name) = detector {
            let bad = |source| PipelineError::Calibration { what: "choosing the detector", source };
            larmon_calibrate::detectors::built_in_detector(name).map_err(bad)?;
            if !config.detector.modules.is_empty() {
                return Err(bad(larmon_calibrate::CalibrationError::Config(format!(
                    "--detector {name}: the configuration lists its own [[modules]]; remove one \
                     or the other"
                ))));
            }
            config.detector.detector = name.to_owned();
        }
        // A name that is not built in fails here, not at the first file.
        config.detector.modules_in_force().map_err(|source| PipelineError::Calibration {
            what: "reading the configuration",
            source,
        })?;
        Ok(config)
    }

    /// Names the kind of every run this configuration reports (`--run-kind KIND`), before the
    /// `[[run_kinds]]` rules.
    pub fn with_run_kind(mut self, kind: Option<&str>) -> Result<Self> {
        if let Some(kind) = kind {
            if !larmon_report::run_kind::valid_kind(kind) {
                return Err(PipelineError::RunKind(kind.to_string()));
            }
            self.run_kind = Some(kind.to_string());
        }
        Ok(self)
    }

    /// Parses the text of a configuration file read from `source` (relative paths inside are
    /// taken relative to it).
    pub fn parse(text: &str, source: &Path) -> Result<Self> {
        let bad = |reason: String| PipelineError::Config { path: source.into(), reason };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut plugins = BTreeMap::new();
        if let Some(section) = table.remove("plugins") {
            let toml::Value::Table(section) = section else {
                return Err(bad("[plugins] must be a table".into()));
            };
            for (name, value) in section {
                let json = serde_json::to_string(&value).map_err(|e| bad(e.to_string()))?;
                plugins.insert(name, json);
            }
        }
        let known_bad = match table.remove("known_bad_channels") {
            None => None,
            Some(toml::Value::String(file)) => {
                Some(load_known_bad(&source.parent().unwrap_or(Path::new(".")).join(file))?)
            }
            Some(_) => return Err(bad("known_bad_channels must be a file name".into())),
        };
        let references: References = match table.remove("references") {
            None => References::default(),
            Some(value) => value.try_into().map_err(|e| bad(format!("[references]: {e}")))?,
        };
        let shape_checks: BTreeMap<String, ShapeCheck> = match table.remove("shape_checks") {
            None => BTreeMap::new(),
            Some(value) => value.try_into().map_err(|e| bad(format!("[shape_checks]: {e}")))?,
        };
        for (key, check) in &shape_checks {
            if !key.contains('/') {
                return Err(bad(format!("[shape_checks.\"{key}\"]: keys are \"plugin/figure\"")));
            }
            if !(check.warn.is_finite() && check.error.is_finite()) {
                return Err(bad(format!("[shape_checks.\"{key}\"]: limits must be numbers")));
            }
        }
        let run_kinds = match table.remove("run_kinds") {
            None => RunKinds::default(),
            Some(value) => RunKinds::from_value(value).map_err(bad)?,
        };
        references.check().map_err(|e| bad(format!("[references]: {e}")))?;
        let checks = match table.remove("checks") {
            Some(toml::Value::Table(checks)) => {
                ChecksConfig::from_table(checks).map_err(|e| bad(e.to_string()))?
            }
            Some(_) => return Err(bad("[checks] must be a table".into())),
            None => ChecksConfig::default(),
        };
        let detector = DetectorConfig::from_table(table, source).map_err(|e| {
            PipelineError::Calibration { what: "reading the configuration", source: e }
        })?;
        Ok(Self {
            detector,
            plugins,
            checks,
            source: None,
            known_bad,
            references,
            shape_checks,
            run_kinds,
            run_kind: None,
        })
    }

    /// The settings of plugin `name` as JSON (`{}` when the file has none).
    pub fn plugin_config(&self, name: &str) -> String {
        self.plugins.get(name).cloned().unwrap_or_else(|| "{}".into())
    }

    /// The settings a plugin gets: its `[plugins.NAME]` table, plus the known-bad channels
    /// when it declares the `known_bad_channels` setting and its table does not set it.
    pub fn settings_for(&self, info: &PluginInfo) -> String {
        let own = self.plugin_config(&info.name);
        let Some(known) = &self.known_bad else { return own };
        if !info.config_keys.iter().any(|k| k == "known_bad_channels") {
            return own;
        }
        let Ok(serde_json::Value::Object(mut settings)) = serde_json::from_str(&own) else {
            return own;
        };
        settings.entry("known_bad_channels").or_insert_with(|| {
            serde_json::to_value(&known.channels).expect("known-bad channels serialise")
        });
        serde_json::Value::Object(settings).to_string()
    }
}

/// The SHA-256 of `bytes`, in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    larmon_calibrate::config::sha256_hex(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_holds_detector_plugins_and_checks() {
        let text = r#"
            [charge]
            gain_mv_per_ke = 4.0
            [plugins.dqdx]
            bins = 40
            [checks."packet-rate/parity_error_fraction"]
            warn = [0.0, 0.01]
        "#;
        let config = LarmonConfig::parse(text, Path::new("/cfg/larmon.toml")).unwrap();
        assert_eq!(config.plugin_config("dqdx"), r#"{"bins":40}"#);
        assert_eq!(config.plugin_config("other"), "{}");
        assert_eq!(config.checks.limits.len(), 1);
        assert_eq!(config.detector.charge.gain_mv_per_ke, 4.0);
    }

    #[test]
    fn an_unknown_detector_key_names_the_file_and_the_key() {
        let err = LarmonConfig::parse("e_feild_kv_cm = 0.5\n", Path::new("larmon.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("larmon.toml") && err.contains("e_feild_kv_cm"), "{err}");
    }

    #[test]
    fn a_detector_is_chosen_by_name_and_an_unknown_one_is_refused() {
        let config = LarmonConfig::load_for(None, Some("sim-module")).unwrap();
        assert_eq!(config.detector.detector, "sim-module");
        assert_eq!(LarmonConfig::load(None).unwrap().detector.detector, "2x2");
        let err = LarmonConfig::load_for(None, Some("3x3")).unwrap_err().to_string();
        assert!(err.contains("3x3") && err.contains("sim-module"), "{err}");
        let parsed = LarmonConfig::parse("detector = \"4x4\"\n", Path::new("x.toml")).unwrap();
        assert!(parsed.detector.modules_in_force().is_err());
    }

    #[test]
    fn a_plugins_key_that_is_not_a_table_is_refused() {
        let err = LarmonConfig::parse("plugins = 3\n", Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("[plugins] must be a table"), "{err}");
    }
}
