//! The data-management chain of a DAQ folder (`larmon daq`): every new data file is declared
//! (from its verified DAQ sidecar or from the data), catalogued, replicated to the site with its
//! adler32 verified there, registered in Rucio (when a Rucio target is given), judged processed
//! when the caller says so (`larmon daq`: its run report lists it and the watcher finished it),
//! and — only if asked — removed from the DAQ buffer once its
//! remote copy verifies again. With [`DqPacking`], each run's DQ outputs are packed once the
//! run has settled, catalogued, and shipped (replicated, registered) like the data.
//!
//! A pass recomputes everything from the folder, the catalog and the destination, so the chain
//! keeps no state of its own: after a kill -9 at any point the next pass goes on where the last
//! one stopped, and repeating a pass changes nothing (each stage is idempotent).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use larmon_catalog::metadata::sidecar_path;
use larmon_catalog::{Adler32, Catalog, Declaration};
use larmon_report::{DaqFailure, DaqStatus, RunStore};

use crate::rucio::{RucioClient, RucioTarget, register_file};
use crate::{Destination, Outcome, RetryPolicy, TransferError, run_queue};

/// The stages of the chain, in order (the keys of [`DaqStatus::backlog`] and `done`).
pub const STAGES: [&str; 7] =
    ["arriving", "declare", "replicate", "register", "process", "clean", "pack"];

/// Packs run `run` as revision `revision`: the pack's file and declaration, or why not.
pub type PackRun<'a> = dyn Fn(&str, u32) -> Result<(PathBuf, Declaration), String> + 'a;

/// Packing each run's DQ outputs (report and figures) as a file shipped like the data
/// (`larmon daq --pack-dq-into`). A run is packed once its report has been unchanged for
/// `quiet_for`, no file of the folder is arriving or undeclared and every file there has been
/// processed; a run whose report changes after its pack was catalogued gets a new revision.
pub struct DqPacking<'a> {
    /// The DQ output folder's run reports.
    pub reports: &'a RunStore,
    /// Where packs are written; catalogued files under it are replicated and registered.
    pub into: PathBuf,
    /// How long a run's report must be unchanged before it is packed.
    pub quiet_for: Duration,
    /// The file name of a run's pack revision (1, 2, …).
    pub name: fn(&str, u32) -> String,
    /// Packs a run as a revision into `into`: the file and its declaration.
    pub pack: &'a PackRun<'a>,
}

/// When a DAQ file may be removed from the buffer.
#[derive(Clone, Debug)]
pub struct CleanUp {
    /// Only files unchanged for this long (the DQ watcher has long finished them).
    pub min_age: Duration,
}

/// How the chain runs.
#[derive(Clone, Debug)]
pub struct ChainOptions {
    /// The DAQ folder.
    pub folder: PathBuf,
    /// The replication site (its name in the catalog).
    pub site: String,
    /// Where replicas go.
    pub destination: Destination,
    /// Retries of failed copies.
    pub policy: RetryPolicy,
    /// A file is complete once unchanged for this long.
    pub stable_for: Duration,
    /// Clean the buffer after a verified remote copy (none: never).
    pub clean_up: Option<CleanUp>,
}

/// One thing a pass did, for the log.
#[derive(Debug)]
pub enum ChainEvent {
    /// A file was catalogued under this DID.
    Declared(PathBuf, String),
    /// A file was copied to the site (or found there already).
    Replicated(String, Outcome),
    /// A file was placed on the Rucio RSE and registered (replica, dataset, rule).
    Registered(String, String),
    /// A file was removed from the DAQ buffer after its remote copy verified.
    Cleaned(PathBuf),
    /// A run's DQ outputs were packed into this file and catalogued under this DID.
    Packed(PathBuf, String),
    /// A stage failed for a file (retried on the next pass).
    Failed(DaqFailure),
}

/// Whether `path` is a data file of the DAQ (not a sidecar, partial copy or hidden file).
fn is_data_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    if name.starts_with('.') || name.contains(".tmp") || name.contains(".larmon-partial") {
        return false;
    }
    [".h5", ".hdf5", ".data"].iter().any(|ext| name.ends_with(ext))
}

/// The data files of the folder, sorted.
fn data_files(folder: &Path) -> Result<Vec<PathBuf>, TransferError> {
    let entries = std::fs::read_dir(folder).map_err(|e| TransferError::io(folder, e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_data_file(p))
        .collect();
    files.sort();
    Ok(files)
}

/// How long ago `path` last changed.
fn age(path: &Path) -> Option<Duration> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(SystemTime::now().duration_since(modified).unwrap_or_default())
}

/// One pass of the chain. `declare` reads a file's declaration (its verified sidecar, else
/// the data); `rucio` registers replicated files (None: no Rucio stage); `processed` holds the
/// names of the files the DQ has processed (None: no DQ stage); `packing` packs settled runs' DQ
/// outputs (it needs `processed`).
pub fn pass(
    catalog: &mut Catalog,
    options: &ChainOptions,
    declare: &dyn Fn(&Path) -> Result<Declaration, String>,
    rucio: Option<(&RucioClient, &RucioTarget)>,
    processed: Option<&BTreeSet<String>>,
    packing: Option<&DqPacking<'_>>,
    on_event: impl FnMut(&ChainEvent),
) -> Result<DaqStatus, TransferError> {
    let on_event = std::cell::RefCell::new(on_event);
    let emit = |event: &ChainEvent| (on_event.borrow_mut())(event);
    let mut backlog: BTreeMap<String, usize> = STAGES.iter().map(|s| (s.to_string(), 0)).collect();
    let mut done: BTreeMap<String, usize> = STAGES.iter().map(|s| (s.to_string(), 0)).collect();
    let mut failures = Vec::new();
    let fail = |failures: &mut Vec<DaqFailure>, file: &Path, stage: &str, error: String| {
        let failure = DaqFailure { file: file.to_path_buf(), stage: stage.into(), error };
        emit(&ChainEvent::Failed(failure.clone()));
        failures.push(failure);
    };

    // Declare and catalogue the complete files.
    let files = data_files(&options.folder)?;
    for file in &files {
        if age(file).is_none_or(|a| a < options.stable_for) {
            *backlog.entry("arriving".into()).or_default() += 1;
            continue;
        }
        // Catalogued already, from here or (`larmon catalog add`) under another path.
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if catalog.find(&file.to_string_lossy())?.is_some() || catalog.find(&name)?.is_some() {
            continue;
        }
        let added = declare(file)
            .and_then(|d| catalog.add(file, &d).map(|_| d.did()).map_err(|e| e.to_string()));
        match added {
            Ok(did) => emit(&ChainEvent::Declared(file.clone(), did)),
            Err(error) => fail(&mut failures, file, "declare", error),
        }
    }

    // Pack the runs that settled; the packs are catalogued, so the queue below ships them.
    if let (Some(packing), Some(processed)) = (packing, processed) {
        let settled = backlog.get("arriving") == Some(&0)
            && !failures.iter().any(|f| f.stage == "declare")
            && files.iter().all(|f| {
                f.file_name().is_some_and(|n| processed.contains(n.to_string_lossy().as_ref()))
            });
        let (runs, _unreadable) = packing.reports.runs();
        for report in runs {
            let report_path = packing.reports.root().join(&report.run).join("report.json");
            // The newest catalogued revision of this run's pack.
            let mut newest = None;
            for revision in 1.. {
                match catalog.find(&(packing.name)(&report.run, revision))? {
                    Some(record) => newest = Some((revision, record)),
                    None => break,
                }
            }
            let report_age = age(&report_path);
            let revision = match &newest {
                // Packed after the report's last change (or the pack is not here to compare).
                Some((revision, record)) => match (age(&record.path), report_age) {
                    (Some(pack_age), Some(report_age)) if pack_age > report_age => revision + 1,
                    _ => {
                        *done.entry("pack".into()).or_default() += 1;
                        continue;
                    }
                },
                None => 1,
            };
            if !settled || report_age.is_none_or(|a| a < packing.quiet_for) {
                *backlog.entry("pack".into()).or_default() += 1;
                continue;
            }
            let packed = (packing.pack)(&report.run, revision).and_then(|(path, declaration)| {
                // A report written again with the same content packs to the same bytes (packs
                // are reproducible): no new revision, the newest one is marked as current.
                let same = newest.as_ref().filter(|(_, record)| {
                    declaration.checksums.get("adler32") == Some(&record.adler32)
                });
                if let Some((_, record)) = same {
                    let _ = std::fs::remove_file(sidecar_path(&path));
                    std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                    let touch = std::fs::File::options().append(true).open(&record.path);
                    touch
                        .and_then(|f| f.set_modified(SystemTime::now()))
                        .map_err(|e| format!("{}: {e}", record.path.display()))?;
                    return Ok(None);
                }
                catalog.add(&path, &declaration).map_err(|e| e.to_string())?;
                Ok(Some((path, declaration.did())))
            });
            match packed {
                Ok(None) => *done.entry("pack".into()).or_default() += 1,
                Ok(Some((path, did))) => {
                    *done.entry("pack".into()).or_default() += 1;
                    emit(&ChainEvent::Packed(path, did));
                }
                Err(error) => {
                    *backlog.entry("pack".into()).or_default() += 1;
                    fail(&mut failures, &report_path, "pack", error);
                }
            }
        }
    }

    // Replicate everything catalogued and not yet at the site.
    run_queue(catalog, &options.site, &options.destination, &options.policy, |record, result| {
        match result {
            Ok(outcome) => emit(&ChainEvent::Replicated(record.did.clone(), outcome.clone())),
            Err(e) => {
                let failure = DaqFailure {
                    file: record.path.clone(),
                    stage: "replicate".into(),
                    error: e.to_string(),
                };
                emit(&ChainEvent::Failed(failure.clone()));
                failures.push(failure);
            }
        }
    })?;

    // Where each file of the folder stands; clean-up where it is due.
    let records = catalog.list(None)?;
    let in_folder: BTreeSet<PathBuf> = files.iter().cloned().collect();
    for record in &records {
        // The file in the folder under its name (it may have been catalogued from elsewhere).
        let is_pack = packing.is_some_and(|p| record.path.starts_with(&p.into));
        let local = if is_pack {
            record.path.clone()
        } else {
            options.folder.join(&record.declaration.name)
        };
        let here = !is_pack && in_folder.contains(&local);
        if !here && !record.path.starts_with(&options.folder) && !is_pack {
            continue; // not a file of this folder
        }
        *done.entry("declare".into()).or_default() += 1;
        let replicas = catalog.replicas(record.id)?;
        let replica =
            replicas.iter().find(|r| r.site == options.site && r.adler32 == record.adler32);
        let Some(replica) = replica else {
            *backlog.entry("replicate".into()).or_default() += 1;
            continue;
        };
        *done.entry("replicate".into()).or_default() += 1;
        if let Some((client, target)) = rucio {
            let registered = replicas.iter().any(|r| r.site == target.rse)
                || match register_file(client, catalog, record, target) {
                    Ok(r) => {
                        emit(&ChainEvent::Registered(record.did.clone(), r.pfn));
                        true
                    }
                    Err(e) => {
                        fail(&mut failures, &local, "register", e.to_string());
                        false
                    }
                };
            let stage = if registered { &mut done } else { &mut backlog };
            *stage.entry("register".into()).or_default() += 1;
            if !registered {
                continue;
            }
        }
        if is_pack {
            continue; // DQ outputs: not processed, and not in the DAQ buffer
        }
        let name = record.declaration.name.as_str();
        let is_processed = processed.is_none_or(|names| names.contains(name));
        if processed.is_some() {
            let stage = if is_processed { &mut done } else { &mut backlog };
            *stage.entry("process".into()).or_default() += 1;
        }
        if !here {
            *done.entry("clean".into()).or_default() += 1;
            continue;
        }
        let Some(clean) = &options.clean_up else { continue };
        if !is_processed || age(&local).is_none_or(|a| a < clean.min_age) {
            *backlog.entry("clean".into()).or_default() += 1;
            continue;
        }
        // The remote copy is checked again just before the only copy here goes.
        match options.destination.checksum(&replica.location) {
            Ok(Some(remote)) if Adler32::parse(&record.adler32) == Some(remote) => {
                let here_adler32 = Adler32::of_file(&local).map(|(a, _)| a).ok();
                if here_adler32 != Some(remote) {
                    let error = format!(
                        "the file here no longer has the catalogued adler32 {}: kept",
                        record.adler32
                    );
                    fail(&mut failures, &local, "clean", error);
                    continue;
                }
                match std::fs::remove_file(&local) {
                    Ok(()) => {
                        let _ = std::fs::remove_file(sidecar_path(&local));
                        *done.entry("clean".into()).or_default() += 1;
                        emit(&ChainEvent::Cleaned(local.clone()));
                    }
                    Err(e) => fail(&mut failures, &local, "clean", e.to_string()),
                }
            }
            Ok(other) => {
                let found = other.map_or("nothing".into(), |a| format!("adler32 {a}"));
                let error = format!(
                    "{} at {} holds {found}, not {}: kept",
                    options.site, replica.location, record.adler32
                );
                fail(&mut failures, &local, "clean", error);
            }
            Err(e) => fail(&mut failures, &local, "clean", e.to_string()),
        }
    }
    let declare_backlog = failures.iter().filter(|f| f.stage == "declare").count();
    *backlog.entry("declare".into()).or_default() += declare_backlog;
    Ok(DaqStatus {
        updated_unix_s: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        pid: std::process::id(),
        folder: options.folder.clone(),
        site: options.site.clone(),
        backlog,
        done,
        failures,
    })
}
