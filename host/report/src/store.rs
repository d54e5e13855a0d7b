//! The runs of an output directory (`OUT/<run>/report.json`), read on demand and cached by
//! modification time, so a dashboard over hundreds of runs parses each report once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::model::RunReport;

/// The folder of a run's reviewer versions: `OUT/<run>/versions/<name>/`.
pub const VERSIONS: &str = "versions";

/// Whether `name` can name a run or a version: one path component, not hidden.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\\', '\0']) && !name.starts_with('.')
}

/// The reports under one output directory.
pub struct RunStore {
    root: PathBuf,
    cache: Mutex<HashMap<PathBuf, (SystemTime, Arc<RunReport>)>>,
}

impl RunStore {
    /// A store over `root` (nothing is read yet).
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_path_buf(), cache: Mutex::new(HashMap::new()) }
    }

    /// The output directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every run with a readable report, oldest data first (then by name). Reports that do not
    /// parse are returned as errors beside them, never dropped silently.
    pub fn runs(&self) -> (Vec<Arc<RunReport>>, Vec<String>) {
        let mut runs = Vec::new();
        let mut errors = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return (runs, vec![format!("{}: cannot read the directory", self.root.display())]);
        };
        let mut dirs: Vec<PathBuf> =
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
        dirs.sort();
        for dir in dirs {
            let path = dir.join("report.json");
            if !path.exists() {
                continue;
            }
            match self.load(&path) {
                Ok(report) => runs.push(report),
                Err(e) => errors.push(e),
            }
        }
        runs.sort_by(|a, b| (a.start_unix_s, &a.run).cmp(&(b.start_unix_s, &b.run)));
        (runs, errors)
    }

    /// One run by name.
    pub fn run(&self, name: &str) -> Option<Arc<RunReport>> {
        if !is_plain_name(name) {
            return None;
        }
        self.load(&self.root.join(name).join("report.json")).ok()
    }

    /// The reviewer versions of a run (`OUT/<run>/versions/<name>/report.json`, written by
    /// `larmon run --as NAME`), by name; unreadable ones are left out.
    pub fn versions(&self, run: &str) -> Vec<Arc<RunReport>> {
        if !is_plain_name(run) {
            return Vec::new();
        }
        let Ok(entries) = std::fs::read_dir(self.root.join(run).join(VERSIONS)) else {
            return Vec::new();
        };
        let mut names: Vec<String> =
            entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
        names.sort();
        names.iter().filter_map(|name| self.version(run, name)).collect()
    }

    /// One reviewer version of a run.
    pub fn version(&self, run: &str, name: &str) -> Option<Arc<RunReport>> {
        if !is_plain_name(run) || !is_plain_name(name) {
            return None;
        }
        self.load(&self.root.join(run).join(VERSIONS).join(name).join("report.json")).ok()
    }

    fn load(&self, path: &Path) -> Result<Arc<RunReport>, String> {
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some((time, report)) = self.cache.lock().expect("cache").get(path) {
            if *time == modified {
                return Ok(report.clone());
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let report: RunReport =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let report = Arc::new(report);
        self.cache.lock().expect("cache").insert(path.to_path_buf(), (modified, report.clone()));
        Ok(report)
    }
}
