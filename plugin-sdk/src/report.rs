//! What a plugin declares ([`Info`]) and what it reports ([`Report`]): figures with their data,
//! metrics with errors and units, checks with a status.

use serde::Serialize;

use crate::bindings::larmon::plugin::types as wit;

/// Name, version, description, streams and columns, configuration keys.
#[derive(Clone, Debug, Default)]
pub struct Info {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) consumes: Vec<(String, Vec<String>)>,
    pub(crate) config_keys: Vec<String>,
}

impl Info {
    /// A plugin called `name` (lower-case, dashes) that does `description`.
    pub fn new(name: &str, description: &str) -> Self {
        Self {
            name: name.into(),
            version: "0.1.0".into(),
            description: description.into(),
            ..Default::default()
        }
    }
    /// Its version (default 0.1.0).
    pub fn version(mut self, version: &str) -> Self {
        self.version = version.into();
        self
    }
    /// It reads these columns of `stream`.
    pub fn consumes(mut self, stream: &str, columns: &[&str]) -> Self {
        self.consumes.push((stream.into(), columns.iter().map(|c| (*c).into()).collect()));
        self
    }
    /// It understands this configuration key.
    pub fn config_key(mut self, key: &str) -> Self {
        self.config_keys.push(key.into());
        self
    }
}

/// Outcome of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckStatus {
    /// Fine.
    Ok,
    /// Look at it.
    Warning,
    /// Act on it.
    Error,
}

/// Figures, metrics and checks.
#[derive(Clone, Debug, Default)]
pub struct Report {
    figures: Vec<wit::Figure>,
    metrics: Vec<wit::Metric>,
    checks: Vec<wit::Check>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a figure: an SVG and the data plotted in it (serialised as JSON).
    pub fn figure(mut self, name: &str, title: &str, svg: String, data: &impl Serialize) -> Self {
        let data_json =
            serde_json::to_string(data).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        self.figures.push(wit::Figure { name: name.into(), title: title.into(), svg, data_json });
        self
    }
    /// Adds a metric with an optional error and a unit.
    pub fn metric(mut self, name: &str, value: f64, error: Option<f64>, unit: &str) -> Self {
        self.metrics.push(wit::Metric { name: name.into(), value, error, unit: unit.into() });
        self
    }
    /// Adds a check.
    pub fn check(mut self, name: &str, status: CheckStatus, message: impl Into<String>) -> Self {
        let status = match status {
            CheckStatus::Ok => wit::CheckStatus::Ok,
            CheckStatus::Warning => wit::CheckStatus::Warning,
            CheckStatus::Error => wit::CheckStatus::Error,
        };
        self.checks.push(wit::Check { name: name.into(), status, message: message.into() });
        self
    }
    pub(crate) fn into_wit(self) -> wit::Report {
        wit::Report { figures: self.figures, metrics: self.metrics, checks: self.checks }
    }
}
