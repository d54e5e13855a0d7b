//! The file catalog: an embedded SQLite database (WAL, so readers — the dashboard — never block
//! the writer) of files with their declaration, replicas per site, and the transfer queue.
//!
//! Every state change is one transaction, so a process killed at any moment leaves the catalog
//! as it was before or after the change, never between.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::error::CatalogError;
use crate::metadata::{CHARGE_NAMESPACE, Declaration, LIGHT_NAMESPACE, MINERVA_NAMESPACE};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS files (
    id          INTEGER PRIMARY KEY,
    did         TEXT NOT NULL UNIQUE,
    namespace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    path        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    adler32     TEXT NOT NULL,
    run         INTEGER,
    start_time  REAL,
    end_time    REAL,
    declaration TEXT NOT NULL,
    added_unix  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_run ON files(run);
CREATE TABLE IF NOT EXISTS replicas (
    file_id       INTEGER NOT NULL REFERENCES files(id),
    site          TEXT NOT NULL,
    location      TEXT NOT NULL,
    adler32       TEXT NOT NULL,
    verified_unix REAL NOT NULL,
    PRIMARY KEY (file_id, site)
);
CREATE TABLE IF NOT EXISTS transfers (
    file_id           INTEGER NOT NULL REFERENCES files(id),
    site              TEXT NOT NULL,
    state             TEXT NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_unix REAL NOT NULL DEFAULT 0,
    last_error        TEXT,
    updated_unix      REAL NOT NULL,
    PRIMARY KEY (file_id, site)
);
";

/// Records (or re-verifies) a replica: file_id, site, location, adler32, time.
const RECORD_REPLICA: &str =
    "INSERT OR REPLACE INTO replicas (file_id, site, location, adler32, verified_unix)
     VALUES (?1, ?2, ?3, ?4, ?5)";

/// Which detector a file belongs to, from its namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataKind {
    /// LArPix charge readout.
    Charge,
    /// Light readout.
    Light,
    /// MINERvA.
    Minerva,
    /// Anything else.
    Other,
}

impl DataKind {
    /// The kind of a namespace.
    pub fn of_namespace(namespace: &str) -> Self {
        match namespace {
            CHARGE_NAMESPACE => Self::Charge,
            LIGHT_NAMESPACE => Self::Light,
            MINERVA_NAMESPACE => Self::Minerva,
            _ => Self::Other,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Self::Charge => "charge",
            Self::Light => "light",
            Self::Minerva => "minerva",
            Self::Other => "other",
        }
    }
}

/// A catalogued file.
#[derive(Clone, Debug, Serialize)]
pub struct FileRecord {
    /// Catalog id.
    pub id: i64,
    /// `namespace:name`.
    pub did: String,
    /// Where the file was catalogued from.
    pub path: PathBuf,
    /// Detector.
    pub kind: String,
    /// Bytes.
    pub size: u64,
    /// adler32, 8 lowercase hex digits.
    pub adler32: String,
    /// Run number.
    pub run: Option<u64>,
    /// Unix start time of the data.
    pub start_time: Option<f64>,
    /// Unix end time of the data.
    pub end_time: Option<f64>,
    /// The full MetaCat declaration.
    pub declaration: Declaration,
}

/// A verified copy of a file at a site.
#[derive(Clone, Debug, Serialize)]
pub struct Replica {
    /// Site name (a destination of `larmon transfer`, or a Rucio RSE).
    pub site: String,
    /// Path or URL of the copy.
    pub location: String,
    /// adler32 measured at the site.
    pub adler32: String,
    /// When it was verified.
    pub verified_unix: f64,
}

/// A transfer's state.
#[derive(Clone, Debug, Serialize)]
pub struct Transfer {
    /// File id.
    pub file_id: i64,
    /// Destination site.
    pub site: String,
    /// `queued`, `done` or `failed` (retried after `next_attempt_unix`).
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Earliest next attempt.
    pub next_attempt_unix: f64,
    /// The last failure.
    pub last_error: Option<String>,
}

/// What adding a file did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// A new entry.
    New,
    /// Already there with the same bytes: nothing changed.
    AlreadyPresent,
}

/// The catalog database.
pub struct Catalog {
    path: PathBuf,
    db: Connection,
}

/// Unix time now, seconds.
pub fn now_unix() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs_f64()
}

impl Catalog {
    /// Opens (creating) the catalog at `path`.
    pub fn open(path: &Path) -> Result<Self, CatalogError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| CatalogError::io(dir, e))?;
        }
        let db = Connection::open(path)
            .map_err(|source| CatalogError::Database { path: path.into(), source })?;
        let catalog = Self { path: path.into(), db };
        catalog.run(|db| {
            db.busy_timeout(Duration::from_secs(30))?;
            db.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
            db.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
            db.execute_batch(SCHEMA)
        })?;
        Ok(catalog)
    }

    /// Opens an existing catalog read-only (the dashboard).
    pub fn open_read_only(path: &Path) -> Result<Self, CatalogError> {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        let db = Connection::open_with_flags(path, flags)
            .map_err(|source| CatalogError::Database { path: path.into(), source })?;
        let _ = db.busy_timeout(Duration::from_secs(5));
        Ok(Self { path: path.into(), db })
    }

    fn run<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, CatalogError> {
        f(&self.db).map_err(|source| CatalogError::Database { path: self.path.clone(), source })
    }

    /// Adds a file. The same DID with the same size and adler32 is already there (nothing
    /// changes); with other bytes it is a conflict, never overwritten.
    pub fn add(&self, path: &Path, declaration: &Declaration) -> Result<Added, CatalogError> {
        let did = declaration.did();
        let adler32 = declaration.checksums.get("adler32").cloned().unwrap_or_default();
        if let Some(existing) = self.find(&did)? {
            if existing.size == declaration.size && existing.adler32 == adler32 {
                return Ok(Added::AlreadyPresent);
            }
            return Err(CatalogError::Conflict {
                did,
                existing: format!("{} bytes, adler32 {}", existing.size, existing.adler32),
                new: format!("{} bytes, adler32 {adler32}", declaration.size),
            });
        }
        let kind = DataKind::of_namespace(&declaration.namespace);
        let text = serde_json::to_string(declaration).expect("declaration serialises");
        self.run(|db| {
            db.execute(
                "INSERT INTO files (did, namespace, name, path, kind, size, adler32, run,
                                    start_time, end_time, declaration, added_unix)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    did,
                    declaration.namespace,
                    declaration.name,
                    path.to_string_lossy(),
                    kind.as_str(),
                    declaration.size as i64,
                    adler32,
                    declaration.run().map(|r| r as i64),
                    declaration.number("core.start_time"),
                    declaration.number("core.end_time"),
                    text,
                    now_unix(),
                ],
            )
        })?;
        Ok(Added::New)
    }

    fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<FileRecord> {
        let text: String = row.get(9)?;
        let declaration = serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(9, rusqlite::types::Type::Text, Box::new(e))
        })?;
        Ok(FileRecord {
            id: row.get(0)?,
            did: row.get(1)?,
            path: PathBuf::from(row.get::<_, String>(2)?),
            kind: row.get(3)?,
            size: row.get::<_, i64>(4)? as u64,
            adler32: row.get(5)?,
            run: row.get::<_, Option<i64>>(6)?.map(|r| r as u64),
            start_time: row.get(7)?,
            end_time: row.get(8)?,
            declaration,
        })
    }

    /// A `transfers` row (file_id, site, state, attempts, next_attempt_unix, last_error).
    fn transfer(r: &rusqlite::Row<'_>) -> rusqlite::Result<Transfer> {
        Ok(Transfer {
            file_id: r.get(0)?,
            site: r.get(1)?,
            state: r.get(2)?,
            attempts: r.get(3)?,
            next_attempt_unix: r.get(4)?,
            last_error: r.get(5)?,
        })
    }

    const COLUMNS: &'static str =
        "id, did, path, kind, size, adler32, run, start_time, end_time, declaration";

    /// A file by DID, name or path.
    pub fn find(&self, key: &str) -> Result<Option<FileRecord>, CatalogError> {
        let sql = format!(
            "SELECT {} FROM files WHERE did = ?1 OR path = ?1 OR name = ?1 ORDER BY id LIMIT 1",
            Self::COLUMNS
        );
        self.run(|db| db.query_row(&sql, [key], Self::record).optional())
    }

    /// Files, optionally of one run, in run and start-time order.
    pub fn list(&self, run: Option<u64>) -> Result<Vec<FileRecord>, CatalogError> {
        self.select("run = ?1 OR ?1 IS NULL", vec![run.map(|r| r as i64).into()])
    }

    /// Files whose declaration matches every `key op value` condition (`op` one of
    /// `= != < <= > >=`; keys are metadata keys like `core.data_tier`, or `size`, `name`,
    /// `namespace`; a number compares as a number).
    pub fn query(&self, conditions: &[String]) -> Result<Vec<FileRecord>, CatalogError> {
        let mut clauses = Vec::new();
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        for condition in conditions {
            let (key, op, value) = parse_condition(condition).ok_or_else(|| {
                CatalogError::NotFound(format!(
                    "cannot read condition {condition:?}: write KEY=VALUE, KEY>VALUE, ... (e.g. core.runs_subruns>=100001)"
                ))
            })?;
            let number_or_text = |v: &str| -> rusqlite::types::Value {
                match v.parse::<f64>() {
                    Ok(n) => n.into(),
                    Err(_) => v.to_string().into(),
                }
            };
            match key {
                "size" | "name" | "namespace" | "did" | "kind" | "run" => {
                    values.push(number_or_text(value));
                    clauses.push(format!("{key} {op} ?{}", values.len()));
                }
                _ => {
                    // json_each yields the elements of a list (core.runs) or the value itself,
                    // so a list matches when any element does.
                    values.push(format!("$.metadata.\"{key}\"").into());
                    let path = values.len();
                    values.push(number_or_text(value));
                    clauses.push(format!(
                        "EXISTS (SELECT 1 FROM json_each(declaration, ?{path}) WHERE value {op} ?{})",
                        values.len()
                    ));
                }
            }
        }
        let filter = if clauses.is_empty() { "1".to_string() } else { clauses.join(" AND ") };
        self.select(&filter, values)
    }

    fn select(
        &self,
        filter: &str,
        values: Vec<rusqlite::types::Value>,
    ) -> Result<Vec<FileRecord>, CatalogError> {
        let sql = format!(
            "SELECT {} FROM files WHERE {filter} ORDER BY run, start_time, name",
            Self::COLUMNS
        );
        self.run(|db| {
            let mut statement = db.prepare(&sql)?;
            let rows = statement.query_map(rusqlite::params_from_iter(values), Self::record)?;
            rows.collect()
        })
    }

    /// Replicas of a file.
    pub fn replicas(&self, file_id: i64) -> Result<Vec<Replica>, CatalogError> {
        self.run(|db| {
            let mut statement = db.prepare(
                "SELECT site, location, adler32, verified_unix FROM replicas WHERE file_id = ?1
                 ORDER BY site",
            )?;
            let rows = statement.query_map([file_id], |r| {
                Ok(Replica {
                    site: r.get(0)?,
                    location: r.get(1)?,
                    adler32: r.get(2)?,
                    verified_unix: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Queues every catalogued file without a replica at `site` (idempotent).
    pub fn enqueue_all(&self, site: &str) -> Result<usize, CatalogError> {
        self.run(|db| {
            db.execute(
                "INSERT OR IGNORE INTO transfers (file_id, site, state, updated_unix)
                 SELECT id, ?1, 'queued', ?2 FROM files
                 WHERE id NOT IN (SELECT file_id FROM replicas WHERE site = ?1)",
                params![site, now_unix()],
            )
        })
    }

    /// The next transfer to `site` that is due (queued, or failed with its backoff over),
    /// leaving out the files in `skip` (those a pass already tried: with a zero backoff a
    /// failed file is due again at once, and a pass must still end).
    pub fn next_transfer(
        &self,
        site: &str,
        skip: &std::collections::BTreeSet<i64>,
    ) -> Result<Option<(Transfer, FileRecord)>, CatalogError> {
        let skip = serde_json::to_string(skip).expect("a set of integers is JSON");
        let transfer = self.run(|db| {
            db.query_row(
                "SELECT file_id, site, state, attempts, next_attempt_unix, last_error FROM transfers
                 WHERE site = ?1 AND state != 'done' AND next_attempt_unix <= ?2
                   AND file_id NOT IN (SELECT value FROM json_each(?3))
                 ORDER BY next_attempt_unix, file_id LIMIT 1",
                params![site, now_unix(), skip],
                Self::transfer,
            )
            .optional()
        })?;
        let Some(transfer) = transfer else { return Ok(None) };
        let file = self
            .get(transfer.file_id)?
            .ok_or_else(|| CatalogError::NotFound(format!("file id {}", transfer.file_id)))?;
        Ok(Some((transfer, file)))
    }

    /// A file by its catalog id.
    pub fn get(&self, id: i64) -> Result<Option<FileRecord>, CatalogError> {
        let sql = format!("SELECT {} FROM files WHERE id = ?1", Self::COLUMNS);
        self.run(|db| db.query_row(&sql, [id], Self::record).optional())
    }

    /// Transfers to `site` by state.
    pub fn transfers(&self, site: &str) -> Result<Vec<Transfer>, CatalogError> {
        self.run(|db| {
            let mut statement = db.prepare(
                "SELECT file_id, site, state, attempts, next_attempt_unix, last_error FROM transfers
                 WHERE site = ?1 ORDER BY file_id",
            )?;
            let rows = statement.query_map([site], Self::transfer)?;
            rows.collect()
        })
    }

    /// Records a verified copy: the replica and the transfer's `done`, in one transaction.
    pub fn transfer_done(
        &mut self,
        file_id: i64,
        site: &str,
        location: &str,
        adler32: &str,
    ) -> Result<(), CatalogError> {
        let path = self.path.clone();
        let db_error = |source| CatalogError::Database { path: path.clone(), source };
        let tx = self.db.transaction().map_err(db_error)?;
        let now = now_unix();
        tx.execute(RECORD_REPLICA, params![file_id, site, location, adler32, now])
            .map_err(db_error)?;
        tx.execute(
            "INSERT INTO transfers (file_id, site, state, attempts, updated_unix)
             VALUES (?1, ?2, 'done', 1, ?3)
             ON CONFLICT (file_id, site) DO UPDATE SET state = 'done', last_error = NULL,
                 attempts = attempts + 1, updated_unix = ?3",
            params![file_id, site, now],
        )
        .map_err(db_error)?;
        tx.commit().map_err(db_error)
    }

    /// Records a failed attempt; the next one waits `backoff` (exponential in the caller).
    pub fn transfer_failed(
        &self,
        file_id: i64,
        site: &str,
        error: &str,
        backoff: Duration,
    ) -> Result<(), CatalogError> {
        let now = now_unix();
        self.run(|db| {
            db.execute(
                "UPDATE transfers SET state = 'failed', attempts = attempts + 1, last_error = ?3,
                     next_attempt_unix = ?4, updated_unix = ?5
                 WHERE file_id = ?1 AND site = ?2",
                params![file_id, site, error, now + backoff.as_secs_f64(), now],
            )
        })?;
        Ok(())
    }

    /// Records a replica registered elsewhere (e.g. a Rucio RSE) after verification.
    pub fn add_replica(
        &self,
        file_id: i64,
        site: &str,
        location: &str,
        adler32: &str,
    ) -> Result<(), CatalogError> {
        self.run(|db| {
            db.execute(RECORD_REPLICA, params![file_id, site, location, adler32, now_unix()])
        })?;
        Ok(())
    }
}

/// `key op value` with the longest operator first.
fn parse_condition(text: &str) -> Option<(&str, &'static str, &str)> {
    for op in ["<=", ">=", "!=", "=", "<", ">"] {
        if let Some((key, value)) = text.split_once(op) {
            let key = key.trim();
            let valid = !key.is_empty()
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
            return valid.then_some((key, op, value.trim()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn declaration(name: &str, run: u64, adler32: &str, start: f64) -> Declaration {
        Declaration {
            namespace: CHARGE_NAMESPACE.into(),
            name: name.into(),
            size: 100,
            checksums: [("adler32".to_string(), adler32.to_string())].into(),
            metadata: [
                ("core.runs".to_string(), json!([run])),
                ("core.data_tier".to_string(), json!("raw")),
                ("core.start_time".to_string(), json!(start)),
                ("core.end_time".to_string(), json!(start + 10.0)),
            ]
            .into_iter()
            .collect(),
            parents: Vec::new(),
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("larmon-catalog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("catalog.sqlite")
    }

    #[test]
    fn adding_is_idempotent_and_other_bytes_are_refused() {
        let catalog = Catalog::open(&scratch("add")).unwrap();
        let first = declaration("binary-0000042-a.h5", 42, "024d0127", 1.7e9);
        assert_eq!(catalog.add(Path::new("/daq/a.h5"), &first).unwrap(), Added::New);
        assert_eq!(catalog.add(Path::new("/daq/a.h5"), &first).unwrap(), Added::AlreadyPresent);
        let impostor = declaration("binary-0000042-a.h5", 42, "00000001", 1.7e9);
        let err = catalog.add(Path::new("/elsewhere/a.h5"), &impostor).unwrap_err();
        assert!(matches!(err, CatalogError::Conflict { .. }), "{err}");
        let record = catalog.find("binary-0000042-a.h5").unwrap().unwrap();
        assert_eq!(
            (record.adler32.as_str(), record.run, record.kind.as_str()),
            ("024d0127", Some(42), "charge")
        );
        assert_eq!(record.declaration, first);
    }

    #[test]
    fn list_and_query_select_by_run_and_metadata() {
        let catalog = Catalog::open(&scratch("query")).unwrap();
        for (k, run) in [(1, 42), (2, 42), (3, 43)] {
            let d = declaration(&format!("f{k}.h5"), run, "024d0127", 1.7e9 + k as f64);
            catalog.add(Path::new(&format!("/daq/f{k}.h5")), &d).unwrap();
        }
        assert_eq!(catalog.list(Some(42)).unwrap().len(), 2);
        assert_eq!(catalog.list(None).unwrap().len(), 3);
        let late = catalog.query(&["core.start_time>1700000001.5".into()]).unwrap();
        assert_eq!(
            late.iter().map(|r| r.did.as_str()).collect::<Vec<_>>(),
            [format!("{CHARGE_NAMESPACE}:f2.h5"), format!("{CHARGE_NAMESPACE}:f3.h5")]
        );
        assert!(catalog.query(&["not a condition".into()]).is_err());
    }

    #[test]
    fn a_transfer_is_queued_once_and_done_with_its_replica() {
        let mut catalog = Catalog::open(&scratch("transfer")).unwrap();
        catalog.add(Path::new("/daq/a.h5"), &declaration("a.h5", 1, "024d0127", 1.7e9)).unwrap();
        assert_eq!(catalog.enqueue_all("NERSC").unwrap(), 1);
        assert_eq!(catalog.enqueue_all("NERSC").unwrap(), 0, "queued once");
        let (transfer, file) =
            catalog.next_transfer("NERSC", &Default::default()).unwrap().unwrap();
        assert_eq!(
            (transfer.state.as_str(), file.did.as_str()),
            ("queued", format!("{CHARGE_NAMESPACE}:a.h5").as_str())
        );
        catalog.transfer_failed(file.id, "NERSC", "disk full", Duration::from_secs(3600)).unwrap();
        assert!(
            catalog.next_transfer("NERSC", &Default::default()).unwrap().is_none(),
            "backing off"
        );
        // With no backoff it is due again at once, unless the pass already tried it.
        catalog.transfer_failed(file.id, "NERSC", "disk full", Duration::ZERO).unwrap();
        assert!(catalog.next_transfer("NERSC", &Default::default()).unwrap().is_some());
        let tried = std::collections::BTreeSet::from([file.id]);
        assert!(catalog.next_transfer("NERSC", &tried).unwrap().is_none(), "tried this pass");
        catalog.transfer_done(file.id, "NERSC", "/nersc/a.h5", "024d0127").unwrap();
        let replicas = catalog.replicas(file.id).unwrap();
        assert_eq!(replicas.len(), 1);
        assert_eq!(replicas[0].location, "/nersc/a.h5");
        assert_eq!(catalog.transfers("NERSC").unwrap()[0].state, "done");
        assert_eq!(catalog.enqueue_all("NERSC").unwrap(), 0, "a replica there: nothing to queue");
    }
}
