//! Errors of the ingest stage. Each names the file and, where it applies, the dataset and row, so
//! the message alone tells a shifter what is wrong and where.

use std::path::PathBuf;

use larmon_decode::MessageError;

/// Everything that can go wrong reading or writing a LArPix file.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The file could not be read at the OS level.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not HDF5 at all (no signature at any of the places HDF5 looks).
    #[error("{path}: not an HDF5 file ({reason})")]
    NotHdf5 {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// HDF5 refused to open the file (truncated, corrupt, locked by a writer, ...).
    #[error("{path}: HDF5 cannot open the file: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// HDF5's own message.
        source: Hdf5Failure,
    },
    /// An HDF5 file, but not one larmon knows.
    #[error("{path}: not a LArPix file: {reason}")]
    NotLarpix {
        /// The file.
        path: PathBuf,
        /// Which datasets were expected and which were found.
        reason: String,
    },
    /// An HDF5 file, but not a light-readout file (what `larmon light` reads).
    #[error("{path}: not a light-readout file: {reason}")]
    NotLight {
        /// The file.
        path: PathBuf,
        /// What was expected and what was found.
        reason: String,
    },
    /// A dataset is there but its type or shape is not what the format allows.
    #[error("{path}: dataset `{dataset}`: {reason}")]
    Layout {
        /// The file.
        path: PathBuf,
        /// The dataset.
        dataset: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading rows failed inside HDF5 (corrupt chunk, decompression error, ...).
    #[error("{path}: dataset `{dataset}`, rows {start}..{end}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The dataset.
        dataset: String,
        /// First row of the failed read.
        start: u64,
        /// One past the last row.
        end: u64,
        /// HDF5's own message.
        source: Hdf5Failure,
    },
    /// One raw PACMAN message could not be decoded.
    #[error("{path}: dataset `msgs`, row {row}: {source}")]
    Message {
        /// The file.
        path: PathBuf,
        /// Row of the message in `msgs`.
        row: u64,
        /// What is wrong with it.
        source: MessageError,
    },
    /// Any other HDF5 call failed.
    #[error("{path}: {what}: {source}")]
    Hdf5 {
        /// The file.
        path: PathBuf,
        /// What larmon was doing.
        what: String,
        /// HDF5's own message.
        source: Hdf5Failure,
    },
    /// The output exists and overwriting was not asked for.
    /// A light-readout (MPD) file is malformed at a byte offset.
    #[error("{path}: byte {offset}: {reason}")]
    Mpd {
        /// The file.
        path: PathBuf,
        /// Where the bad block starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An output file exists and overwriting it was not asked for.
    #[error("{path}: already exists (use --force to overwrite)")]
    OutputExists {
        /// The file.
        path: PathBuf,
    },
}

/// An HDF5 library error, displayed once: the library's error stack often repeats the same
/// frame text ("H5Fopen(): ...: H5Fopen(): ..."), which helps nobody at 3 a.m.
#[derive(Debug)]
pub struct Hdf5Failure(pub hdf5::Error);

impl From<hdf5::Error> for Hdf5Failure {
    fn from(e: hdf5::Error) -> Self {
        Self(e)
    }
}

impl std::fmt::Display for Hdf5Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0.to_string();
        let parts: Vec<&str> = text.split(": ").collect();
        // Drop a repetition of the whole sequence of frames (A: B: A: B -> A: B).
        let n = parts.len();
        if n.is_multiple_of(2) && parts[..n / 2] == parts[n / 2..] {
            return f.write_str(&parts[..n / 2].join(": "));
        }
        f.write_str(&text)
    }
}

impl std::error::Error for Hdf5Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl IngestError {
    /// A [`IngestError::Layout`] error: `dataset` of `path` is not what the format allows.
    pub(crate) fn layout(path: &std::path::Path, dataset: &str, reason: String) -> Self {
        Self::Layout { path: path.to_path_buf(), dataset: dataset.into(), reason }
    }
}

/// Result of the ingest stage.
pub type Result<T, E = IngestError> = std::result::Result<T, E>;

/// Attaches the file and an action to HDF5 errors.
pub(crate) trait Hdf5Context<T> {
    fn context(self, path: &std::path::Path, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Hdf5Context<T> for hdf5::Result<T> {
    fn context(self, path: &std::path::Path, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| IngestError::Hdf5 {
            path: path.to_path_buf(),
            what: what(),
            source: source.into(),
        })
    }
}
