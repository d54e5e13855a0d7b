//! Charge, light and MINERvA files of one run and overlapping time, paired per run.
//!
//! The three DAQs number their runs independently. A file's run here is its global run: from
//! the run database when one is given (its CRS, LRS or MINERvA run, else its start time), else
//! a charge file's own run and, for a light or MINERvA file, the run of the charge file it
//! overlaps in time (its own number only when it overlaps none).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::runs::{RunDatabase, System};
use crate::store::FileRecord;

/// A charge file and a light or MINERvA file whose data overlap in time.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Link {
    /// The charge file's DID.
    pub charge: String,
    /// The other file's DID.
    pub other: String,
    /// `light` or `minerva`.
    pub kind: String,
    /// Seconds of overlap (negative: within the tolerance but apart).
    pub overlap_s: f64,
}

/// The association of one run.
#[derive(Clone, Debug, Serialize, Default)]
pub struct RunAssociation {
    /// Run number.
    pub run: u64,
    /// DIDs of its charge files.
    pub charge: Vec<String>,
    /// DIDs of its light files.
    pub light: Vec<String>,
    /// DIDs of its MINERvA files.
    pub minerva: Vec<String>,
    /// Overlapping pairs.
    pub links: Vec<Link>,
    /// Files of the run that overlap no file of another detector (or have no times).
    pub unmatched: Vec<String>,
}

/// Pairs the files of each run: a light or MINERvA file goes with every charge file of the same
/// run whose [start, end] overlaps its own, widened by `tolerance_s` on each side.
pub fn associate(
    files: &[FileRecord],
    tolerance_s: f64,
    run_db: Option<&RunDatabase>,
) -> Vec<RunAssociation> {
    let overlap =
        |a: &FileRecord, b: &FileRecord| match (a.start_time, a.end_time, b.start_time, b.end_time)
        {
            (Some(a0), Some(a1), Some(b0), Some(b1)) => Some(a1.min(b1) - a0.max(b0)),
            _ => None,
        };
    let from_db = |f: &FileRecord| -> Option<u64> {
        let db = run_db?;
        let system = match f.kind.as_str() {
            "charge" => System::Crs,
            "light" => System::Lrs,
            "minerva" => System::Mx2,
            _ => return None,
        };
        f.run
            .and_then(|r| db.global_run_of(system, r, None))
            .or_else(|| f.start_time.and_then(|t| db.global_run_at(t)))
    };
    let charge_run = |c: &FileRecord| from_db(c).or(c.run);
    let mut runs: BTreeMap<u64, Vec<&FileRecord>> = BTreeMap::new();
    for file in files {
        let run = match file.kind.as_str() {
            "charge" => charge_run(file),
            _ => from_db(file)
                .or_else(|| {
                    files
                        .iter()
                        .filter(|c| c.kind == "charge")
                        .find(|c| overlap(c, file).is_some_and(|o| o >= -tolerance_s))
                        .and_then(charge_run)
                })
                .or(file.run),
        };
        if let Some(run) = run {
            runs.entry(run).or_default().push(file);
        }
    }
    runs.into_iter()
        .map(|(run, files)| {
            let mut a = RunAssociation { run, ..Default::default() };
            for f in &files {
                match f.kind.as_str() {
                    "charge" => a.charge.push(f.did.clone()),
                    "light" => a.light.push(f.did.clone()),
                    "minerva" => a.minerva.push(f.did.clone()),
                    _ => {}
                }
            }
            let charge: Vec<_> = files.iter().filter(|f| f.kind == "charge").collect();
            for other in files.iter().filter(|f| f.kind == "light" || f.kind == "minerva") {
                for c in &charge {
                    let (Some(cs), Some(ce), Some(os), Some(oe)) =
                        (c.start_time, c.end_time, other.start_time, other.end_time)
                    else {
                        continue;
                    };
                    let overlap = ce.min(oe) - cs.max(os);
                    if overlap >= -tolerance_s {
                        a.links.push(Link {
                            charge: c.did.clone(),
                            other: other.did.clone(),
                            kind: other.kind.clone(),
                            overlap_s: overlap,
                        });
                    }
                }
            }
            for f in &files {
                let linked = a.links.iter().any(|l| l.charge == f.did || l.other == f.did);
                if !linked && f.kind != "other" {
                    a.unmatched.push(f.did.clone());
                }
            }
            a
        })
        .collect()
}
