//! The reference runs of an output directory (`OUT/references.json`): which run's figures each
//! plugin's typed figures are drawn against and shape-checked with. Written by
//! `larmon reference` and the dashboard; the configuration's `[references]` overrides it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The file of the output directory's reference runs.
pub const REFERENCES_FILE: &str = "references.json";

/// Which run is the reference of which plugin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct References {
    /// The reference run of every plugin without its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Per plugin.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plugins: BTreeMap<String, String>,
}

impl References {
    /// The reference run of `plugin`.
    pub fn of(&self, plugin: &str) -> Option<&str> {
        self.plugins.get(plugin).or(self.run.as_ref()).map(String::as_str)
    }

    /// `OUT/references.json`, or none.
    pub fn read(out: &Path) -> Result<Self, String> {
        let path = out.join(REFERENCES_FILE);
        match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
            Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
        }
    }

    /// The configuration's references, then the file's where the configuration names none.
    pub fn with_fallback(&self, file: &References) -> References {
        let mut plugins = file.plugins.clone();
        plugins.extend(self.plugins.clone());
        References { run: self.run.clone().or_else(|| file.run.clone()), plugins }
    }

    /// Writes it to `OUT/references.json` (through a temporary file and a rename).
    pub fn write(&self, out: &Path) -> Result<(), String> {
        let path = out.join(REFERENCES_FILE);
        let temp = out.join(format!(".{REFERENCES_FILE}.tmp{}", std::process::id()));
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&temp, text)
            .and_then(|()| std::fs::rename(&temp, &path))
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}
