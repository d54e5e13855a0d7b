//! Run identity: where a file's run number comes from, and the 2x2 run database that maps the
//! independently numbered CRS (charge), LRS (light) and MINERvA runs onto global runs.
//!
//! A run number is never invented. It comes, in this order, from the operator (`--run`), the
//! file name (the 2x2 DAQs' `binary-0060154-…`, `packet-0060154-…`, `…rctl_<run>_p<part>…`),
//! the DAQ's own sidecar (`<file>.json`, `core.runs`), or the run database. A name that
//! carries a date (`binary-2023_07_07_16_33_PDT.h5`) or a run period (`run2-cosmics`) has none.
//!
//! The run database is the 2x2's own table `All_global_subruns` (the `mx2x2runs_*.sqlite`
//! files BlobCraft2x2 writes): one row per global subrun with `global_subrun`, `global_run`,
//! `start_time`, `end_time` (ISO 8601 or Unix seconds) and `crs_run`, `crs_subrun`, `lrs_run`,
//! `lrs_subrun`, `mx2_run`, `mx2_subrun` (empty while that system was not running). larmon reads
//! it from SQLite, or from a CSV file with the same column names (docs/data-management.md).

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Serialize;

use crate::error::CatalogError;
use crate::metadata::{DEFAULT_NAME_PATTERN, LIGHT_NAME_PATTERN, run_subrun};

/// Which DAQ numbered a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// The charge readout (CRS).
    Crs,
    /// The light readout (LRS).
    Lrs,
    /// MINERvA.
    Mx2,
}

/// Where a file's run number came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunSource {
    /// Given by the operator.
    Operator,
    /// The file name.
    FileName,
    /// The DAQ's sidecar `<file>.json`.
    Sidecar,
    /// The run database, by the file's DAQ run or its time.
    RunDatabase,
}

/// The name larmon gives a run's reports: `run-` and the number, 7 digits as the 2x2 writes it.
pub fn run_label(run: u64) -> String {
    format!("run-{run:07}")
}

/// The DAQ run (and subrun) a file name carries: the charge DAQ's pattern, then the light DAQ's.
pub fn run_of_name(name: &str) -> Option<(System, u64, u64)> {
    static PATTERNS: std::sync::OnceLock<(Regex, Regex)> = std::sync::OnceLock::new();
    let (charge, light) = PATTERNS.get_or_init(|| {
        (
            Regex::new(DEFAULT_NAME_PATTERN).expect("valid pattern"),
            Regex::new(LIGHT_NAME_PATTERN).expect("valid pattern"),
        )
    });
    if let Some((run, subrun)) = run_subrun(charge, name) {
        return Some((System::Crs, run, subrun));
    }
    run_subrun(light, name).map(|(run, subrun)| (System::Lrs, run, subrun))
}

/// The run and subrun a DAQ sidecar (`<file>.json`, MetaCat JSON) declares, if it exists and
/// says. `core.runs_subruns` is read with either encoding the 2x2 uses (10⁴ or 10⁵ per run).
pub fn run_of_sidecar(data: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(crate::metadata::sidecar_path(data)).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let metadata = json.get("metadata")?;
    let run = metadata.get("core.runs")?.as_array()?.first()?.as_u64()?;
    let subrun = metadata
        .get("core.runs_subruns")
        .and_then(|v| v.as_array()?.first()?.as_u64())
        .and_then(|rs| [10_000, 100_000].iter().find(|k| rs / *k == run).map(|k| rs % k))
        .unwrap_or(1);
    Some((run, subrun))
}

/// One global subrun of the run database.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GlobalSubrun {
    /// Global subrun id (`global_run · 10⁷ + i` in the 2x2's table).
    pub global_subrun: u64,
    /// Global (MORCS) run.
    pub global_run: u64,
    /// Start, Unix seconds.
    pub start_unix: f64,
    /// End, Unix seconds.
    pub end_unix: f64,
    /// CRS run and subrun, when charge was running.
    pub crs: Option<(u64, u64)>,
    /// LRS run and subrun, when light was running.
    pub lrs: Option<(u64, u64)>,
    /// MINERvA run and subrun, when MINERvA was running.
    pub mx2: Option<(u64, u64)>,
}

impl GlobalSubrun {
    fn of(&self, system: System) -> Option<(u64, u64)> {
        match system {
            System::Crs => self.crs,
            System::Lrs => self.lrs,
            System::Mx2 => self.mx2,
        }
    }
}

/// The run database: global subruns in time order.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunDatabase {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its rows, by start time.
    pub subruns: Vec<GlobalSubrun>,
}

/// The columns larmon reads, in this order.
const COLUMNS: [&str; 10] = [
    "global_subrun",
    "global_run",
    "start_time",
    "end_time",
    "crs_run",
    "crs_subrun",
    "lrs_run",
    "lrs_subrun",
    "mx2_run",
    "mx2_subrun",
];

impl RunDatabase {
    /// Reads the run database: SQLite (`All_global_subruns`) or CSV (same columns, a header
    /// line), decided by the file's first bytes.
    pub fn open(path: &Path) -> Result<Self, CatalogError> {
        let head = std::fs::read(path).map_err(|e| CatalogError::io(path, e))?;
        let mut rows = if head.starts_with(b"SQLite format 3\0") {
            read_sqlite(path)?
        } else {
            read_csv(path, &String::from_utf8_lossy(&head))?
        };
        rows.sort_by(|a, b| a.start_unix.total_cmp(&b.start_unix));
        Ok(Self { path: path.into(), subruns: rows })
    }

    /// The global run of a DAQ's run (and subrun, if known).
    pub fn global_run_of(&self, system: System, run: u64, subrun: Option<u64>) -> Option<u64> {
        self.subruns
            .iter()
            .find(|s| {
                s.of(system).is_some_and(|(r, sr)| r == run && subrun.is_none_or(|x| x == sr))
            })
            .or_else(|| self.subruns.iter().find(|s| s.of(system).is_some_and(|(r, _)| r == run)))
            .map(|s| s.global_run)
    }

    /// The global run going on at a Unix time.
    pub fn global_run_at(&self, unix: f64) -> Option<u64> {
        self.subruns
            .iter()
            .find(|s| s.start_unix <= unix && unix < s.end_unix)
            .map(|s| s.global_run)
    }
}

fn invalid(path: &Path, reason: String) -> CatalogError {
    CatalogError::Invalid { path: path.into(), reason }
}

/// A time column: Unix seconds, or ISO 8601 with a UTC offset (`2024-07-08T10:46:46-05:00`)
/// or without (taken as UTC).
fn parse_time(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Some(seconds);
    }
    let (date, time) = text.split_once(['T', ' '])?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (year, month, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    // Split the offset off the time of day.
    let (clock, offset_s) = match time.rfind(['+', '-']) {
        Some(at) if at >= 5 => {
            let (clock, offset) = time.split_at(at);
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let mut o = offset[1..].split(':').map(|p| p.parse::<i64>());
            let hours = o.next()?.ok()?;
            let minutes = o.next().transpose().ok()?.unwrap_or(0);
            (clock, sign * (hours * 3600 + minutes * 60))
        }
        _ => (time.trim_end_matches('Z'), 0),
    };
    let mut c = clock.split(':');
    let (h, m) = (c.next()?.parse::<i64>().ok()?, c.next()?.parse::<i64>().ok()?);
    let s = c.next().map_or(Ok(0.0), str::parse::<f64>).ok()?;
    // Days since 1970-01-01 (civil calendar, Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + m * 60 - offset_s) as f64 + s)
}

/// A row from its ten cells (as text; empty or `None`/`NULL` for a system not running).
fn row_of(
    path: &Path,
    line: usize,
    cells: &[Option<String>],
) -> Result<GlobalSubrun, CatalogError> {
    let bad = |what: &str, value: &Option<String>| {
        invalid(
            path,
            format!("row {line}: {what} {:?} is not a number", value.as_deref().unwrap_or("")),
        )
    };
    let number = |k: usize| -> Result<Option<u64>, CatalogError> {
        match cells[k].as_deref().map(str::trim) {
            None | Some("") | Some("None") | Some("NULL") | Some("null") => Ok(None),
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|v| *v >= 0.0 && v.fract() == 0.0)
                .map(|v| Some(v as u64))
                .ok_or_else(|| bad(COLUMNS[k], &cells[k])),
        }
    };
    let time = |k: usize| {
        cells[k].as_deref().and_then(parse_time).ok_or_else(|| {
            invalid(
                path,
                format!(
                    "row {line}: {} {:?} is not a time",
                    COLUMNS[k],
                    cells[k].as_deref().unwrap_or("")
                ),
            )
        })
    };
    let pair = |k: usize| -> Result<Option<(u64, u64)>, CatalogError> {
        Ok(number(k)?.map(|run| (run, number(k + 1).ok().flatten().unwrap_or(1))))
    };
    let global_subrun = number(0)?.ok_or_else(|| bad("global_subrun", &cells[0]))?;
    Ok(GlobalSubrun {
        global_subrun,
        global_run: number(1)?.unwrap_or(global_subrun / 10_000_000),
        start_unix: time(2)?,
        end_unix: time(3)?,
        crs: pair(4)?,
        lrs: pair(6)?,
        mx2: pair(8)?,
    })
}

fn read_sqlite(path: &Path) -> Result<Vec<GlobalSubrun>, CatalogError> {
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| invalid(path, format!("cannot open the run database: {e}")))?;
    let sql = format!("SELECT {} FROM All_global_subruns", COLUMNS.join(", "));
    let mut statement = db.prepare(&sql).map_err(|e| {
        invalid(
            path,
            format!(
                "not a 2x2 run database (table All_global_subruns with {}): {e}",
                COLUMNS.join(", ")
            ),
        )
    })?;
    let cells = statement
        .query_map([], |row| {
            (0..COLUMNS.len())
                .map(|k| {
                    Ok(match row.get_ref(k)? {
                        rusqlite::types::ValueRef::Null => None,
                        rusqlite::types::ValueRef::Integer(v) => Some(v.to_string()),
                        rusqlite::types::ValueRef::Real(v) => Some(v.to_string()),
                        rusqlite::types::ValueRef::Text(t) => {
                            Some(String::from_utf8_lossy(t).into_owned())
                        }
                        rusqlite::types::ValueRef::Blob(_) => Some("<blob>".into()),
                    })
                })
                .collect::<Result<Vec<_>, rusqlite::Error>>()
        })
        .map_err(|e| invalid(path, e.to_string()))?;
    let mut rows = Vec::new();
    for (k, row) in cells.enumerate() {
        let row = row.map_err(|e| invalid(path, format!("row {}: {e}", k + 1)))?;
        rows.push(row_of(path, k + 1, &row)?);
    }
    Ok(rows)
}

fn read_csv(path: &Path, text: &str) -> Result<Vec<GlobalSubrun>, CatalogError> {
    let mut lines =
        text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let (_, header) = lines.next().ok_or_else(|| invalid(path, "empty run database".into()))?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let index: Vec<Option<usize>> =
        COLUMNS.iter().map(|c| names.iter().position(|n| n == c)).collect();
    for (k, c) in COLUMNS.iter().enumerate().take(4) {
        if index[k].is_none() && *c != "global_run" {
            return Err(invalid(
                path,
                format!(
                    "not a run database: no column `{c}` in the header (needs {})",
                    COLUMNS.join(", ")
                ),
            ));
        }
    }
    lines
        .map(|(n, line)| {
            let fields: Vec<&str> = line.split(',').collect();
            let cells: Vec<Option<String>> = index
                .iter()
                .map(|i| i.and_then(|i| fields.get(i)).map(|s| s.trim().to_string()))
                .collect();
            row_of(path, n + 1, &cells)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_numbers_come_from_2x2_names_never_from_dates_or_periods() {
        assert_eq!(
            run_of_name("binary-0060154-2025_11_20_07_55_40_CST.h5"),
            Some((System::Crs, 60154, 1))
        );
        assert_eq!(
            run_of_name("packet-0050015-2024_07_08_13_37_49_CDT.h5"),
            Some((System::Crs, 50015, 1))
        );
        assert_eq!(run_of_name("mpd_run_hvramp_rctl_105_p0.data"), Some((System::Lrs, 105, 0)));
        assert_eq!(run_of_name("binary-2023_07_07_16_33_PDT.h5"), None);
        assert_eq!(run_of_name("run2-cosmics-flow-sample.hdf5"), None);
        assert_eq!(run_label(60154), "run-0060154");
    }

    #[test]
    fn times_are_read_as_the_2x2_table_writes_them() {
        assert_eq!(parse_time("1970-01-01T00:00:00"), Some(0.0));
        assert_eq!(parse_time("2024-07-08T10:46:46-05:00"), Some(1_720_453_606.0));
        assert_eq!(parse_time("2024-07-08 15:46:46"), Some(1_720_453_606.0));
        assert_eq!(parse_time("1720453606.5"), Some(1_720_453_606.5));
        assert_eq!(parse_time("yesterday"), None);
    }
}
