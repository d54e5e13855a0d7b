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
    let location = destination.location(&file.declaration.namespace, &file.declaration.name);
    let outcome = place_file(file, destination, &location)?;
    Ok((location, outcome))
}

/// Copies one file to `location` at `destination` under a partial name, verifies the adler32
/// there and publishes it; a location already holding the same bytes is left as it is, one
/// holding other bytes is never replaced.
pub fn place_file(
    file: &FileRecord,
    destination: &Destination,
    location: &str,
) -> Result<Outcome, TransferError> {
    let expected = Adler32::parse(&file.adler32).ok_or_else(|| TransferError::Verify {
        file: file.did.clone(),
        reason: format!("catalogued adler32 {:?} is not 8 hex digits", file.adler32),
    })?;
    match destination.checksum(location)? {
        Some(found) if found == expected => return Ok(Outcome::AlreadyThere),
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
    let partial = destination.copy_to_partial(&file.path, location)?;
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
    destination.publish(&partial, location)?;
    Ok(Outcome::Copied)
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
    // Each file is tried at most once per pass, whatever the backoff (0 included).
    let mut tried = std::collections::BTreeSet::new();
    while let Some((transfer, file)) = catalog.next_transfer(site, &tried)? {
        tried.insert(file.id);
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

    /// A catalog with the given files (name, bytes) declared as they are on disk.
    fn catalog_with(dir: &std::path::Path, files: &[(&str, &[u8])]) -> Catalog {
        let catalog = Catalog::open(&dir.join("catalog.sqlite")).unwrap();
        for (name, bytes) in files {
            let path = dir.join("daq").join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
            let (adler32, size) = Adler32::of_file(&path).unwrap();
            let declaration = larmon_catalog::Declaration {
                namespace: "ns".into(),
                name: name.to_string(),
                size,
                checksums: [("adler32".to_string(), adler32.to_string())].into(),
                metadata: [("core.runs".to_string(), serde_json::json!([1]))].into_iter().collect(),
                parents: Vec::new(),
            };
            catalog.add(&path, &declaration).unwrap();
        }
        catalog
    }

    #[test]
    fn a_pass_copies_verifies_and_records_each_file_once() {
        let dir = std::env::temp_dir().join(format!("larmon-replicate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut catalog = catalog_with(&dir, &[("a.h5", b"charge"), ("b.h5", &[7u8; 70_000])]);
        let site = Destination::Directory(dir.join("nersc"));
        let policy = RetryPolicy::default();
        let summary = run_queue(&mut catalog, "NERSC", &site, &policy, |_, _| {}).unwrap();
        assert_eq!(summary, PassSummary { copied: 2, already_there: 0, failed: 0 });
        for name in ["a.h5", "b.h5"] {
            let copy = dir.join("nersc/ns").join(name);
            assert_eq!(
                std::fs::read(&copy).unwrap(),
                std::fs::read(dir.join("daq").join(name)).unwrap()
            );
            let file = catalog.find(name).unwrap().unwrap();
            let replicas = catalog.replicas(file.id).unwrap();
            assert_eq!(replicas.len(), 1, "{name}");
            assert_eq!(replicas[0].adler32, file.adler32);
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("nersc/ns"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name().to_string_lossy().ends_with(crate::destination::PARTIAL_SUFFIX)
            })
            .collect();
        assert!(leftovers.is_empty(), "no partial file is left");
        // A second pass has nothing to do.
        let again = run_queue(&mut catalog, "NERSC", &site, &policy, |_, _| {}).unwrap();
        assert_eq!(again, PassSummary::default());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn other_bytes_at_the_destination_are_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("larmon-squatter-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut catalog = catalog_with(&dir, &[("a.h5", b"charge")]);
        std::fs::create_dir_all(dir.join("nersc/ns")).unwrap();
        std::fs::write(dir.join("nersc/ns/a.h5"), b"squatter").unwrap();
        let site = Destination::Directory(dir.join("nersc"));
        let mut errors = Vec::new();
        let summary = run_queue(&mut catalog, "NERSC", &site, &RetryPolicy::default(), |_, r| {
            errors.extend(r.as_ref().err().map(ToString::to_string))
        })
        .unwrap();
        assert_eq!(summary.failed, 1);
        assert!(errors[0].contains("not overwritten"), "{errors:?}");
        assert_eq!(std::fs::read(dir.join("nersc/ns/a.h5")).unwrap(), b"squatter");
        let transfer = &catalog.transfers("NERSC").unwrap()[0];
        assert_eq!((transfer.state.as_str(), transfer.attempts), ("failed", 1));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
