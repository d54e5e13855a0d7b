//! Run reports: what `larmon run` writes (`OUT/<run>/report.json`), the checks a shifter
//! configures as data (metric → warning/error ranges) with the worst-case roll-up to a run
//! quality flag, and the store of runs that the dashboard and `larmon runs` read.

pub mod health;
pub mod model;
pub mod quality;
pub mod references;
pub mod run_kind;
pub mod store;

pub use health::{DaqFailure, DaqStatus, WatchHealth};
pub use model::{
    Check, FigureFiles, Metric, PluginEntry, Provenance, ReplacedPlugin, RunReport, Status,
};
pub use quality::{ChecksConfig, Limits, evaluate, run_flag};
pub use run_kind::RunKinds;
pub use store::RunStore;
