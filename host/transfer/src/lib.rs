//! Replication of catalogued files to other sites, verified by adler32 at the destination, and
//! their registration in Rucio.
//!
//! - [`destination`]: local/mounted directories, XRootD servers ([`xrootd`]), HTTPS/WebDAV
//!   storage ([`webdav`]) or shell command templates (rsync, gfal…);
//!   partial name → verify → atomic rename;
//! - [`replicate`]: the persistent queue in the catalog, retries with exponential backoff, a
//!   visible `failed` state, kill -9 safety;
//! - [`chain`]: `larmon daq`, the whole chain per DAQ file (declare, catalogue, replicate,
//!   processed by DQ, DAQ buffer clean-up after a verified remote copy), stateless and
//!   resumable;
//! - [`rucio`]: placement at the RSE's deterministic path, replica (bytes, adler32), dataset,
//!   attachment and rule over Rucio's REST API, idempotently.

pub mod chain;
pub mod credentials;
mod curl;
pub mod destination;
pub mod replicate;
pub mod rucio;
pub mod webdav;
pub mod xrootd;

use std::path::{Path, PathBuf};

pub use destination::Destination;
pub use replicate::{Outcome, PassSummary, RetryPolicy, replicate_file, run_queue};

/// What can go wrong moving or registering a file.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A command template failed.
    #[error("`{command}`: {reason}")]
    Command {
        /// The command run.
        command: String,
        /// Why it failed.
        reason: String,
    },
    /// A copy or an existing file did not verify.
    #[error("{file}: {reason}")]
    Verify {
        /// The file's DID.
        file: String,
        /// What did not match.
        reason: String,
    },
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] larmon_catalog::CatalogError),
    /// Rucio refused or could not be reached.
    #[error("Rucio {action}: {reason}")]
    Rucio {
        /// What was being done.
        action: String,
        /// HTTP status, ExceptionClass and message, or the transport error.
        reason: String,
    },
}

impl TransferError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
