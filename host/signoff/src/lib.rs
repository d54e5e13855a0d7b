//! The sign-off registry: a shifter's or run coordinator's decision on a run — `good`, `bad` or
//! `suspect`, or `auto` to hand the run back to its automatic flag — with who took it, when and
//! why. It lives in `OUT/signoff.sqlite`, beside the reports it judges, and is append-only:
//! a decision is changed by a newer one, never edited or deleted (SQLite triggers refuse
//! `UPDATE` and `DELETE`), so the history of every run stays whole.
//!
//! The latest decision of a run, unless it is `auto`, is the run's human decision: the good-run
//! list, the overview and the run page use it instead of the automatic flag.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// The registry's file in an output directory.
pub const REGISTRY_FILE: &str = "signoff.sqlite";

/// Longest name and comment accepted, in characters.
const MAX_NAME: usize = 100;
const MAX_COMMENT: usize = 4000;

/// A human decision on a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Good for physics, whatever the automatic flag says.
    Good,
    /// Not usable.
    Bad,
    /// Needs an expert's look before use; not in the good-run list.
    Suspect,
    /// Withdraws the human decision: the automatic flag applies again.
    Auto,
}

impl Decision {
    /// The decision's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Bad => "bad",
            Self::Suspect => "suspect",
            Self::Auto => "auto",
        }
    }
}

impl FromStr for Decision {
    type Err = SignOffError;

    fn from_str(text: &str) -> Result<Self, SignOffError> {
        match text {
            "good" => Ok(Self::Good),
            "bad" => Ok(Self::Bad),
            "suspect" => Ok(Self::Suspect),
            "auto" => Ok(Self::Auto),
            other => Err(SignOffError::Invalid(format!(
                "{other:?} is no decision: good, bad, suspect or auto (back to the automatic flag)"
            ))),
        }
    }
}

/// One entry of a run's history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SignOff {
    /// Its place in the registry (increasing).
    pub id: i64,
    /// The run.
    pub run: String,
    /// What was decided.
    pub decision: Decision,
    /// Who decided.
    pub by: String,
    /// Why.
    pub comment: String,
    /// When, Unix s.
    pub unix_s: f64,
    /// The run's automatic flag at that moment (`ok`, `warning`, `error`), if it had a report.
    pub automatic_flag: Option<String>,
}

/// Why the registry could not be read or written, or a decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignOffError {
    /// The database failed.
    #[error("{path}: {source}")]
    Database {
        /// The registry file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The decision is not acceptable (empty name or comment, unknown decision).
    #[error("{0}")]
    Invalid(String),
}

/// The registry of one output directory.
pub struct Registry {
    path: PathBuf,
    connection: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS signoff (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('good', 'bad', 'suspect', 'auto')),
    by_name TEXT NOT NULL,
    comment TEXT NOT NULL,
    unix_s REAL NOT NULL,
    automatic_flag TEXT
);
CREATE INDEX IF NOT EXISTS signoff_run ON signoff (run, id);
CREATE TRIGGER IF NOT EXISTS signoff_no_update BEFORE UPDATE ON signoff
    BEGIN SELECT RAISE(ABORT, 'the sign-off history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS signoff_no_delete BEFORE DELETE ON signoff
    BEGIN SELECT RAISE(ABORT, 'the sign-off history is append-only'); END;
";

impl Registry {
    /// Opens (creating it if needed) the registry of output directory `out`.
    pub fn open(out: &Path) -> Result<Self, SignOffError> {
        let path = out.join(REGISTRY_FILE);
        let failed = |source| SignOffError::Database { path: path.clone(), source };
        let connection = Connection::open(&path).map_err(failed)?;
        connection.busy_timeout(std::time::Duration::from_secs(5)).map_err(failed)?;
        connection.execute_batch(SCHEMA).map_err(failed)?;
        Ok(Self { path, connection })
    }

    /// Opens the registry of `out` only if it exists (readers never create it).
    pub fn open_existing(out: &Path) -> Result<Option<Self>, SignOffError> {
        if out.join(REGISTRY_FILE).is_file() { Self::open(out).map(Some) } else { Ok(None) }
    }

    fn failed(&self, source: rusqlite::Error) -> SignOffError {
        SignOffError::Database { path: self.path.clone(), source }
    }

    /// Appends a decision on `run` taken now by `by` for `comment`; `automatic_flag` is the
    /// run's flag as the report has it. Names and comments must say something; control
    /// characters are refused (they could forge lines in a terminal or a log).
    pub fn record(
        &self,
        run: &str,
        decision: Decision,
        by: &str,
        comment: &str,
        automatic_flag: Option<&str>,
    ) -> Result<SignOff, SignOffError> {
        let (by, comment) = (by.trim(), comment.trim());
        for (what, text, limit) in [("--by", by, MAX_NAME), ("--comment", comment, MAX_COMMENT)] {
            if text.is_empty() {
                return Err(SignOffError::Invalid(format!(
                    "{what} is empty: a sign-off says who decided and why"
                )));
            }
            if text.chars().count() > limit {
                return Err(SignOffError::Invalid(format!("{what} is over {limit} characters")));
            }
            if text.chars().any(|c| c.is_control() && c != '\n') {
                return Err(SignOffError::Invalid(format!("{what} holds control characters")));
            }
        }
        if run.is_empty() || run.chars().any(char::is_control) {
            return Err(SignOffError::Invalid(format!("{run:?} is no run name")));
        }
        let unix_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.connection
            .execute(
                "INSERT INTO signoff (run, decision, by_name, comment, unix_s, automatic_flag) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![run, decision.as_str(), by, comment, unix_s, automatic_flag],
            )
            .map_err(|e| self.failed(e))?;
        Ok(SignOff {
            id: self.connection.last_insert_rowid(),
            run: run.into(),
            decision,
            by: by.into(),
            comment: comment.into(),
            unix_s,
            automatic_flag: automatic_flag.map(Into::into),
        })
    }

    /// Every decision on `run`, oldest first.
    pub fn history(&self, run: &str) -> Result<Vec<SignOff>, SignOffError> {
        self.select("WHERE run = ?1 ORDER BY id", Some(run))
    }

    /// The run's human decision: its latest entry unless that is `auto`.
    pub fn current(&self, run: &str) -> Result<Option<SignOff>, SignOffError> {
        let latest = self
            .connection
            .query_row("SELECT max(id) FROM signoff WHERE run = ?1", params![run], |row| {
                row.get::<_, Option<i64>>(0)
            })
            .optional()
            .map_err(|e| self.failed(e))?
            .flatten();
        let Some(id) = latest else { return Ok(None) };
        let found = self.select("WHERE id = ?1", Some(&id.to_string()))?;
        Ok(found.into_iter().next().filter(|s| s.decision != Decision::Auto))
    }

    /// The human decision of every run that has one, by run.
    pub fn all_current(&self) -> Result<BTreeMap<String, SignOff>, SignOffError> {
        let latest = self
            .select("WHERE id IN (SELECT max(id) FROM signoff GROUP BY run) ORDER BY id", None)?;
        Ok(latest
            .into_iter()
            .filter(|s| s.decision != Decision::Auto)
            .map(|s| (s.run.clone(), s))
            .collect())
    }

    fn select(&self, filter: &str, value: Option<&str>) -> Result<Vec<SignOff>, SignOffError> {
        let sql = format!(
            "SELECT id, run, decision, by_name, comment, unix_s, automatic_flag FROM signoff {filter}"
        );
        let mut statement = self.connection.prepare(&sql).map_err(|e| self.failed(e))?;
        let read = |row: &rusqlite::Row| -> rusqlite::Result<SignOff> {
            let decision: String = row.get(2)?;
            Ok(SignOff {
                id: row.get(0)?,
                run: row.get(1)?,
                // The CHECK constraint keeps the column to the four names.
                decision: decision.parse().unwrap_or(Decision::Suspect),
                by: row.get(3)?,
                comment: row.get(4)?,
                unix_s: row.get(5)?,
                automatic_flag: row.get(6)?,
            })
        };
        let rows = match value {
            Some(value) => statement.query_map(params![value], read),
            None => statement.query_map([], read),
        }
        .map_err(|e| self.failed(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.failed(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("larmon-signoff-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_latest_decision_rules_and_auto_hands_the_run_back() {
        let out = scratch("latest");
        let registry = Registry::open(&out).unwrap();
        assert_eq!(registry.current("run-0000001").unwrap(), None);
        registry
            .record("run-0000001", Decision::Bad, "ana", "HV trip at 03:12", Some("ok"))
            .unwrap();
        registry
            .record("run-0000001", Decision::Good, "ben", "trip after the beam spill", Some("ok"))
            .unwrap();
        registry.record("run-0000002", Decision::Suspect, "ana", "odd tile 7", None).unwrap();
        let current = registry.current("run-0000001").unwrap().unwrap();
        assert_eq!((current.decision, current.by.as_str()), (Decision::Good, "ben"));
        let history = registry.history("run-0000001").unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].comment, "HV trip at 03:12");
        assert_eq!(history[0].automatic_flag.as_deref(), Some("ok"));
        assert!(history[0].id < history[1].id && history[0].unix_s <= history[1].unix_s);

        registry.record("run-0000001", Decision::Auto, "ben", "back to the checks", None).unwrap();
        assert_eq!(registry.current("run-0000001").unwrap(), None);
        let all = registry.all_current().unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["run-0000002"]);
        // A second opening (another process) sees the same history.
        assert_eq!(Registry::open(&out).unwrap().history("run-0000001").unwrap().len(), 3);
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn history_cannot_be_edited_or_deleted_and_empty_reasons_are_refused() {
        let out = scratch("append-only");
        let registry = Registry::open(&out).unwrap();
        registry.record("r", Decision::Bad, "ana", "noise", Some("error")).unwrap();
        let raw = Connection::open(out.join(REGISTRY_FILE)).unwrap();
        let update = raw.execute("UPDATE signoff SET decision = 'good'", []);
        assert!(update.unwrap_err().to_string().contains("append-only"));
        assert!(raw.execute("DELETE FROM signoff", []).is_err());
        assert_eq!(registry.history("r").unwrap()[0].decision, Decision::Bad);

        for (by, comment) in [("", "why"), ("ana", "  "), ("ana\u{1b}[2J", "why")] {
            let refused = registry.record("r", Decision::Good, by, comment, None);
            assert!(matches!(refused, Err(SignOffError::Invalid(_))), "{by:?} {comment:?}");
        }
        assert!("great".parse::<Decision>().is_err());
        assert_eq!(registry.history("r").unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&out);
    }
}
