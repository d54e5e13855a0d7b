//! What a plugin declares ([`Info`]) and what it reports ([`Report`]): figures with their data,
//! metrics with errors and units, checks with a status.

use serde::Serialize;

use crate::bindings::larmon::plugin::types as wit;
use crate::figure::TypedFigure;

/// Name, version, description, shifter help, streams and columns.
#[derive(Clone, Debug, Default)]
pub struct Info {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) help: String,
    pub(crate) consumes: Vec<(String, Vec<String>)>,
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
    /// What its figures show and what bad looks like, in a few sentences for the shifter: the
    /// dashboard shows it beside the plugin's figures (`**bold**` allowed).
    pub fn help(mut self, text: &str) -> Self {
        self.help = text.into();
        self
    }
    /// It reads the columns declared with [`columns!`](crate::columns) as `C`.
    pub fn reads<C: crate::Columns>(self) -> Self {
        self.consumes(C::STREAM, &C::names())
    }
    /// It needs the detector's pixels (where every channel is, anodes, drift geometry): the
    /// host sends them before any data and the SDK hands them to `Plugin::new`.
    pub fn uses_pixels(self) -> Self {
        self.consumes("pixels", crate::geometry::Pixels::COLUMNS)
    }
    /// It reads these columns of `stream` (called again for the same stream, it adds columns).
    pub fn consumes(mut self, stream: &str, columns: &[&str]) -> Self {
        let index = match self.consumes.iter().position(|(s, _)| s == stream) {
            Some(index) => index,
            None => {
                self.consumes.push((stream.into(), Vec::new()));
                self.consumes.len() - 1
            }
        };
        let listed = &mut self.consumes[index].1;
        for column in columns {
            if !listed.iter().any(|c| c == column) {
                listed.push((*column).into());
            }
        }
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
    results: Vec<wit::NamedResult>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a figure: an SVG and the data plotted in it (serialised as JSON).
    pub fn figure(mut self, name: &str, title: &str, svg: String, data: &impl Serialize) -> Self {
        let data_json = match crate::adapter::to_json_exact(data) {
            // serde_json writes UTF-8: the buffer becomes the string as it is.
            Ok(bytes) => String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            Err(e) => format!("{{\"error\":\"{e}\"}}"),
        };
        self.figures.push(wit::Figure { name: name.into(), title: title.into(), svg, data_json });
        self
    }
    /// Adds a figure as typed data ([`crate::svg::Plot`]): the host draws it in the common style
    /// with hover values and, when the run has a reference, the reference's histogram over it
    /// and the shape comparison ([`crate::figure`]).
    pub fn plot(self, name: &str, title: &str, plot: crate::svg::Plot) -> Self {
        self.typed(name, title, TypedFigure::Plot { plot })
    }
    /// Adds a table as typed data (drawn by the host like [`crate::svg::table`]).
    pub fn table(self, name: &str, title: &str, header: &[&str], rows: &[Vec<String>]) -> Self {
        self.typed(name, title, TypedFigure::table(title, header, rows))
    }
    /// Adds any typed figure (e.g. [`TypedFigure::hist2d`], a value map).
    pub fn typed(mut self, name: &str, title: &str, figure: TypedFigure) -> Self {
        self.figures.push(wit::Figure {
            name: name.into(),
            title: title.into(),
            svg: String::new(),
            data_json: figure.to_json(),
        });
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
    /// Checks `value` of a metric against upper limits: `error` if above `error_above`,
    /// `warning` if above `warn_above`, else ok; the message says value and limit.
    pub fn check_max(
        self,
        name: &str,
        value: f64,
        warn_above: f64,
        error_above: f64,
        unit: &str,
    ) -> Self {
        let (status, message) = if !value.is_finite() || value > error_above {
            (CheckStatus::Error, format!("{value:.4} {unit} > error limit {error_above} {unit}"))
        } else if value > warn_above {
            (CheckStatus::Warning, format!("{value:.4} {unit} > warning limit {warn_above} {unit}"))
        } else {
            (CheckStatus::Ok, format!("{value:.4} {unit} ≤ {warn_above} {unit}"))
        };
        self.check(name, status, message)
    }
    /// Checks `value` against a band: `error` outside `error_band`, `warning` outside
    /// `warn_band`, else ok.
    pub fn check_band(
        self,
        name: &str,
        value: f64,
        warn_band: (f64, f64),
        error_band: (f64, f64),
        unit: &str,
    ) -> Self {
        let outside = |(lo, hi): (f64, f64)| !(value >= lo && value <= hi);
        let (status, band) = if outside(error_band) {
            (CheckStatus::Error, error_band)
        } else if outside(warn_band) {
            (CheckStatus::Warning, warn_band)
        } else {
            (CheckStatus::Ok, warn_band)
        };
        let verb = if status == CheckStatus::Ok { "inside" } else { "outside" };
        self.check(
            name,
            status,
            format!("{value:.4} {unit} {verb} [{}, {}] {unit}", band.0, band.1),
        )
    }
    /// Adds a structured result (e.g. the list of flagged channels): it appears in report.json
    /// under `results.NAME`.
    pub fn result(mut self, name: &str, value: &impl Serialize) -> Self {
        let json =
            serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        self.results.push(wit::NamedResult { name: name.into(), json });
        self
    }
    pub(crate) fn into_wit(self) -> wit::Report {
        wit::Report {
            figures: self.figures,
            metrics: self.metrics,
            checks: self.checks,
            results: self.results,
        }
    }
}
