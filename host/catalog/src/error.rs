//! Errors of the catalog, its declarations and sidecars.

use std::path::{Path, PathBuf};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file or its metadata is not what it should be.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The catalog database failed.
    #[error("catalog {path}: {source}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The catalog already holds the name with other bytes.
    #[error("{did} is already in the catalog with {existing}; this file has {new}")]
    Conflict {
        /// The DID.
        did: String,
        /// What the catalog has.
        existing: String,
        /// What was offered.
        new: String,
    },
    /// Nothing matches.
    #[error("not in the catalog: {0}")]
    NotFound(String),
}

impl CatalogError {
    /// An I/O error of `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
