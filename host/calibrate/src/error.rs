//! Errors of the calibration stage: bad configuration, layout or channel files.

/// What can go wrong setting up calibration.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// A configuration file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The detector configuration (TOML) is invalid.
    #[error("detector configuration: {0}")]
    Config(String),
    /// A pixel layout YAML is invalid.
    #[error("pixel layout: {0}")]
    Layout(String),
    /// A pedestal or configuration JSON is invalid.
    #[error("{path}: {reason}")]
    ChannelFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
}
