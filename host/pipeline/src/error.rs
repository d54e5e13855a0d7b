//! The pipeline's errors: each says what was being done and to which file.

use std::path::PathBuf;

use larmon_calibrate::CalibrationError;
use larmon_ingest::IngestError;
use larmon_runtime::RuntimeError;

/// Why a run, a merge or a watch pass could not go on. A plugin that fails is *not* an error of
/// the pipeline: it is reported in its report entry while the others go on.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The system refused a thread (of a plugin, or of a stage).
    #[error("starting the thread of {what}: {source}")]
    Thread {
        /// Whose thread.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configuration file is not valid.
    #[error("{path}: {reason}")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The detector description (layout, channel constants) could not be set up.
    #[error("{what}: {source}")]
    Calibration {
        /// What was being read or set up.
        what: &'static str,
        /// The calibration's error.
        source: CalibrationError,
    },
    /// A data file could not be read (boxed: the reader's errors are large).
    #[error(transparent)]
    Ingest(Box<IngestError>),
    /// A data file could not be read, with what was being done with it.
    #[error("{path}: {what}: {source}")]
    File {
        /// The data file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The reader's error.
        source: Box<IngestError>,
    },
    /// The plugin runtime could not be set up or a plugin not loaded.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// No plugin to run.
    #[error(
        "no plugins: none in the plugin directory and no --plugin given (build them with `bash .ci/plugins`)"
    )]
    NoPlugins,
    /// A state file (checkpoint, manifest, calibrator state) is not what larmon wrote.
    #[error("{path}: {source}")]
    State {
        /// The state file.
        path: PathBuf,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// The shards of a run do not add up to the run.
    #[error("{0}")]
    Shards(String),
    /// The watch options are not usable.
    #[error("{0}")]
    Watch(String),
    /// A run kind (`--run-kind KIND`) that cannot name one.
    #[error("--run-kind {0:?}: {rule}", rule = larmon_report::run_kind::KIND_RULE)]
    RunKind(String),
    /// A reviewer version (`--as NAME`) that cannot be written.
    #[error("--as: {0}")]
    Version(String),
}

impl From<IngestError> for PipelineError {
    fn from(error: IngestError) -> Self {
        Self::Ingest(Box::new(error))
    }
}

/// The pipeline's result type.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// Attaches the path to an I/O error.
pub(crate) trait IoContext<T> {
    /// The error as [`PipelineError::Io`] of `path`.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| PipelineError::Io { path: path.into(), source })
    }
}

/// An error and its causes on one line, each cause once (errors often spell out their source
/// already).
pub fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        cause = c.source();
    }
    message
}
