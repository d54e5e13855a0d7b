//! One name per run, whoever processes it: `larmon run`, `larmon watch` and shards all call a
//! run `run-NNNNNNN` after its charge DAQ run (or, with the 2x2 run database, its global run),
//! so reprocessing a run writes over its report instead of adding a second run to the overview.
//! Files without a run number keep their file name.

use std::path::Path;

use larmon_catalog::runs::{RunDatabase, System, run_label, run_of_name};

use crate::error::{PipelineError, Result};
use crate::output::safe_name;

/// Refuses a reviewer version name (`larmon run --as NAME`) that is not 1–64 letters, digits,
/// `.`, `_` or `-`, or that starts with a dot: it names a folder under the run's.
pub fn check_version_name(name: &str) -> Result<()> {
    let plain = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.len() > 64 || !plain || name.starts_with('.') {
        return Err(PipelineError::Version(format!(
            "{name:?} cannot name a version: use 1-64 letters, digits, '.', '_' or '-', not \
             starting with '.'"
        )));
    }
    Ok(())
}

/// The run a file name says, as larmon names it: a charge file's run (its global run with a
/// run database); a light file's only through the run database (the light DAQ numbers its runs
/// on its own).
pub fn run_name_of(path: &Path, run_db: Option<&RunDatabase>) -> Option<String> {
    let name = path.file_name()?.to_string_lossy();
    let (system, run, subrun) = run_of_name(&name)?;
    match (system, run_db) {
        (_, Some(db)) => db.global_run_of(system, run, Some(subrun)).map(run_label),
        (System::Crs, None) => Some(run_label(run)),
        _ => None,
    }
}

/// The name of a run made of `files` when none is given: the run of its first file that names
/// one, else the first file's name without extension.
pub fn default_run_name(files: &[impl AsRef<Path>], run_db: Option<&RunDatabase>) -> String {
    files.iter().find_map(|f| run_name_of(f.as_ref(), run_db)).unwrap_or_else(|| {
        files
            .first()
            .and_then(|f| f.as_ref().file_stem())
            .map_or("run".into(), |s| safe_name(&s.to_string_lossy()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use larmon_catalog::runs::GlobalSubrun;

    #[test]
    fn run_and_watch_name_a_run_alike() {
        let files = ["/daq/binary-0060154-2025_11_20_07_55_40_CST.h5"];
        assert_eq!(default_run_name(&files, None), "run-0060154");
        assert_eq!(
            default_run_name(&["/x/binary-2023_07_07_16_33_PDT.h5"], None),
            "binary-2023_07_07_16_33_PDT"
        );
        // A light file's own number is the light DAQ's, not a run of the detector.
        assert_eq!(run_name_of(Path::new("mpd_run_x_rctl_105_p0.data"), None), None);
        let db = RunDatabase {
            path: "db.csv".into(),
            subruns: vec![GlobalSubrun {
                global_subrun: 500_150_000_000,
                global_run: 50015,
                start_unix: 0.0,
                end_unix: 10.0,
                crs: Some((50015, 1)),
                lrs: Some((105, 0)),
                mx2: None,
            }],
        };
        assert_eq!(
            run_name_of(Path::new("mpd_run_x_rctl_105_p0.data"), Some(&db)).as_deref(),
            Some("run-0050015")
        );
    }
}
