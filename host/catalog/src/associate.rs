//! Charge, light and MINERvA files of the same run and overlapping time, paired per run.

use std::collections::BTreeMap;

use serde::Serialize;

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
pub fn associate(files: &[FileRecord], tolerance_s: f64) -> Vec<RunAssociation> {
    let mut runs: BTreeMap<u64, Vec<&FileRecord>> = BTreeMap::new();
    for file in files {
        if let Some(run) = file.run {
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
