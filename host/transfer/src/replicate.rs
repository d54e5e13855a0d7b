//! The replication loop over the catalog's persistent queue: one file at a time, each attempt
//! idempotent, each outcome committed to the catalog in one transaction.
//!
//! kill -9 at any moment: a partial copy is only ever under its `.larmon-partial` name (the
//! next attempt overwrites it); a copy renamed but not yet recorded is found on the next
//! attempt with the right adler32 and recorded without copying again; the replica row and the
//! `done` state are written together, so nothing is recorded twice or half.

use std::time::Duration;

use larmon_catalog::{Adler32, Catalog, FileRecord};

use crate::TransferError;
use crate::destination::Destination;

/// Retry policy.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Backoff after the first failure; doubled after each further one.
    pub first_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { first_backoff: Duration::from_secs(30), max_backoff: Duration::from_secs(3600) }
    }
}

impl RetryPolicy {
    /// The wait after `attempts` failed attempts.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.min(20));
        self.first_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// What one attempt did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Copied, verified and published.
    Copied,
    /// The destination already held the same bytes: recorded without copying.
    AlreadyThere,
}

/// Copies one file to `destination` and verifies it; does not touch the catalog.
pub fn replicate_file(
    file: &FileRecord,
    destination: &Destination,
) -> Result<(String, Outcome), TransferError> {
    let expected = Adler32::parse(&file.adler32).ok_or_else(|| TransferError::Verify {
        file: file.did.clone(),
        reason: format!("catalogued adler32 {:?} is not 8 hex digits", file.adler32),
    })?;
    let location = destination.location(&file.declaration.namespace, &file.declaration.name);
    match destination.checksum(&location)? {
        Some(found) if found == expected => return Ok((location, Outcome::AlreadyThere)),
        Some(found) => {
            return Err(TransferError::Verify {
                file: file.did.clone(),
                reason: format!(
                    "{location} already exists with adler32 {found}, not {expected}: not overwritten"
                ),
            });
        }
        None => {}
    }
    // The source must still be what was catalogued.
    let (source_adler, size) =
        Adler32::of_file(&file.path).map_err(|e| TransferError::io(&file.path, e))?;
    if source_adler != expected || size != file.size {
        return Err(TransferError::Verify {
            file: file.did.clone(),
            reason: format!(
                "the source {} now has {size} bytes, adler32 {source_adler}; catalogued {} bytes, {expected}",
                file.path.display(),
                file.size
            ),
        });
    }
    let partial = destination.copy_to_partial(&file.path, &location)?;
    let copied = destination.checksum(&partial)?;
    if copied != Some(expected) {
        return Err(TransferError::Verify {
            file: file.did.clone(),
            reason: format!(
                "the copy at {partial} has adler32 {}, expected {expected}",
                copied.map_or("(missing)".into(), |a| a.to_string())
            ),
        });
    }
    destination.publish(&partial, &location)?;
    Ok((location, Outcome::Copied))
}

/// Counts of a replication pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassSummary {
    /// Files copied.
    pub copied: usize,
    /// Files found already there.
    pub already_there: usize,
    /// Failed attempts (retried later).
    pub failed: usize,
}

/// Works through every due transfer to `site`; `on_event` hears about each attempt.
pub fn run_queue(
    catalog: &mut Catalog,
    site: &str,
    destination: &Destination,
    policy: &RetryPolicy,
    mut on_event: impl FnMut(&FileRecord, &Result<Outcome, TransferError>),
) -> Result<PassSummary, TransferError> {
    catalog.enqueue_all(site)?;
    let mut summary = PassSummary::default();
    while let Some((transfer, file)) = catalog.next_transfer(site)? {
        let result = replicate_file(&file, destination);
        match &result {
            Ok((location, outcome)) => {
                catalog.transfer_done(file.id, site, location, &file.adler32)?;
                match outcome {
                    Outcome::Copied => summary.copied += 1,
                    Outcome::AlreadyThere => summary.already_there += 1,
                }
            }
            Err(error) => {
                let backoff = policy.backoff(transfer.attempts);
                catalog.transfer_failed(file.id, site, &error.to_string(), backoff)?;
                summary.failed += 1;
            }
        }
        on_event(&file, &result.map(|(_, outcome)| outcome));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            first_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(100),
        };
        let waits: Vec<u64> = (0..6).map(|a| p.backoff(a).as_secs()).collect();
        assert_eq!(waits, vec![10, 20, 40, 80, 100, 100]);
    }
}
