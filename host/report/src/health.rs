//! The realtime watcher's heartbeat, `OUT/watch-health.json`: rewritten by `larmon watch` after
//! every pass, read by the dashboard and `/metrics`, so that a watcher that stopped, or a DAQ
//! that stopped writing, is seen by a shifter and by an alert — not only the reports it wrote.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name in the output directory.
pub const HEALTH_FILE: &str = "watch-health.json";

/// A heartbeat older than this means the watcher stopped (s).
pub const WATCHER_STOPPED_AFTER_S: f64 = 120.0;

/// Newest data older than this, with a watcher running, means no data is arriving (s).
pub const NO_DATA_AFTER_S: f64 = 900.0;

/// What the watcher says of itself after a pass.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchHealth {
    /// When the pass ended, Unix s (the heartbeat).
    pub updated_unix_s: f64,
    /// The watcher's process id.
    pub pid: u32,
    /// The DAQ folder it watches.
    pub folder: PathBuf,
    /// Modification time of the newest data file it has seen, Unix s (none before the first).
    pub newest_data_unix_s: Option<f64>,
    /// Files held open (being read, or finished but of a run not yet released).
    pub files_open: usize,
    /// Files still growing or with data left to read.
    pub files_unfinished: usize,
    /// Files that cannot be read now (retried), plus files set aside for good.
    pub files_with_errors: usize,
    /// Run reports that could not be written on this pass (retried).
    pub reports_unwritten: usize,
    /// The latest error, if any.
    pub last_error: Option<String>,
}

impl WatchHealth {
    /// The heartbeat of output directory `out`, if a watcher ever wrote one.
    pub fn read(out: &Path) -> Option<Result<Self, String>> {
        let path = out.join(HEALTH_FILE);
        let text = std::fs::read_to_string(&path).ok()?;
        Some(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display())))
    }

    /// Seconds since the heartbeat, at `now_unix_s`.
    pub fn heartbeat_age_s(&self, now_unix_s: f64) -> f64 {
        (now_unix_s - self.updated_unix_s).max(0.0)
    }

    /// Seconds since the newest data, at `now_unix_s`.
    pub fn data_age_s(&self, now_unix_s: f64) -> Option<f64> {
        self.newest_data_unix_s.map(|t| (now_unix_s - t).max(0.0))
    }
}

/// The data-management chain's status file (`larmon daq`), in its status folder.
pub const DAQ_STATUS_FILE: &str = "daq-status.json";

/// A `larmon daq` status older than this means the chain stopped (s).
pub const DAQ_STOPPED_AFTER_S: f64 = 300.0;

/// What `larmon daq` says after each pass: how many files wait at each stage of the chain, how
/// many are past it, and the latest failures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DaqStatus {
    /// When the pass ended, Unix s.
    pub updated_unix_s: f64,
    /// The chain's process id.
    pub pid: u32,
    /// The DAQ folder.
    pub folder: PathBuf,
    /// The replication site.
    pub site: String,
    /// Files waiting per stage: `arriving` (still growing), `declare`, `replicate`, `process`
    /// (DQ: no run report lists them yet), `clean` (DAQ buffer clean-up due).
    pub backlog: std::collections::BTreeMap<String, usize>,
    /// Files past each stage.
    pub done: std::collections::BTreeMap<String, usize>,
    /// Failures of the last pass (retried on the next).
    pub failures: Vec<DaqFailure>,
}

/// One failure of a chain stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DaqFailure {
    /// The file.
    pub file: PathBuf,
    /// The stage.
    pub stage: String,
    /// Why.
    pub error: String,
}

impl DaqStatus {
    /// The status in folder `dir`, if a chain ever wrote one there.
    pub fn read(dir: &Path) -> Option<Result<Self, String>> {
        let path = dir.join(DAQ_STATUS_FILE);
        let text = std::fs::read_to_string(&path).ok()?;
        Some(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display())))
    }

    /// Files waiting anywhere in the chain.
    pub fn total_backlog(&self) -> usize {
        self.backlog.values().sum()
    }
}
