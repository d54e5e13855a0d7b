//! The reference runs of an output directory (`OUT/references.json`): which run's figures each
//! plugin's typed figures are drawn against and shape-checked with, for runs of any kind and
//! per run kind (beam, cosmic, … as `[[run_kinds]]` or `--run-kind` names them). Written by
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
    /// Per run kind (`[references.kinds.beam]`): the references of runs of that kind, before
    /// the ones above. Their own `kinds` must be empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kinds: BTreeMap<String, References>,
}

impl References {
    /// The reference run of `plugin` (in a run of some kind: `self.for_kind(kind).of(plugin)`).
    pub fn of(&self, plugin: &str) -> Option<&str> {
        self.plugins.get(plugin).or(self.run.as_ref()).map(String::as_str)
    }

    /// The references of a run of kind `kind`: the kind's reference of a plugin, else the
    /// kind's reference of every plugin, else the ones for any kind (the plugin's, then every
    /// plugin's).
    pub fn for_kind(&self, kind: Option<&str>) -> References {
        let any_kind = References {
            run: self.run.clone(),
            plugins: self.plugins.clone(),
            kinds: BTreeMap::new(),
        };
        let Some(of_kind) = kind.and_then(|k| self.kinds.get(k)) else { return any_kind };
        match &of_kind.run {
            // The kind's reference of every plugin comes before any plugin's for any kind.
            Some(_) => References { kinds: BTreeMap::new(), ..of_kind.clone() },
            None => {
                let mut plugins = any_kind.plugins;
                plugins.extend(of_kind.plugins.clone());
                References { plugins, ..any_kind }
            }
        }
    }

    /// The references for runs of `kind` (`None`: of any kind), created empty when missing.
    pub fn for_kind_mut(&mut self, kind: Option<&str>) -> &mut References {
        match kind {
            None => self,
            Some(kind) => self.kinds.entry(kind.to_string()).or_default(),
        }
    }

    /// A reference set nested twice (`kinds` inside a kind) is refused: it would never be read.
    pub fn check(&self) -> Result<(), String> {
        match self.kinds.iter().find(|(_, r)| !r.kinds.is_empty()) {
            Some((kind, _)) => Err(format!("references of kind {kind:?} cannot have kinds")),
            None => Ok(()),
        }
    }

    /// `OUT/references.json`, or none.
    pub fn read(out: &Path) -> Result<Self, String> {
        let path = out.join(REFERENCES_FILE);
        match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| e.to_string())
                .and_then(|r: Self| r.check().map(|()| r))
                .map_err(|e| format!("{}: {e}", path.display())),
        }
    }

    /// The configuration's references, then the file's where the configuration names none.
    pub fn with_fallback(&self, file: &References) -> References {
        let mut plugins = file.plugins.clone();
        plugins.extend(self.plugins.clone());
        let mut kinds = file.kinds.clone();
        for (kind, mine) in &self.kinds {
            let merged = mine.with_fallback(file.kinds.get(kind).unwrap_or(&References::default()));
            kinds.insert(kind.clone(), merged);
        }
        References { run: self.run.clone().or_else(|| file.run.clone()), plugins, kinds }
    }

    /// Drops empty kinds (after a `--clear`).
    pub fn prune(&mut self) {
        self.kinds.retain(|_, r| r.run.is_some() || !r.plugins.is_empty());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(run: Option<&str>, plugins: &[(&str, &str)]) -> References {
        References {
            run: run.map(String::from),
            plugins: plugins.iter().map(|(p, r)| (p.to_string(), r.to_string())).collect(),
            kinds: BTreeMap::new(),
        }
    }

    /// A run of a kind takes its kind's references first (the plugin's, then every plugin's),
    /// then the ones for any kind; a run without a kind, or of a kind without references, the
    /// ones for any kind.
    #[test]
    fn a_run_kind_has_its_own_references_before_the_general_ones() {
        let mut references = refs(Some("run-1"), &[("dqdx", "run-2")]);
        references.kinds.insert("beam".into(), refs(Some("run-10"), &[("timing", "run-11")]));
        references.kinds.insert("cosmic".into(), refs(None, &[("timing", "run-20")]));
        assert_eq!(references.for_kind(Some("beam")).of("timing"), Some("run-11"));
        assert_eq!(references.for_kind(Some("beam")).of("dqdx"), Some("run-10"));
        assert_eq!(references.for_kind(Some("cosmic")).of("timing"), Some("run-20"));
        assert_eq!(references.for_kind(Some("cosmic")).of("dqdx"), Some("run-2"));
        assert_eq!(references.for_kind(Some("cosmic")).of("charge"), Some("run-1"));
        assert_eq!(references.for_kind(Some("pulser")).of("timing"), Some("run-1"));
        assert_eq!(references.for_kind(None).of("timing"), Some("run-1"));
        assert_eq!(references.for_kind(None).of("dqdx"), Some("run-2"));
    }

    /// The configuration's kinds override the file's per plugin; the file fills the gaps.
    #[test]
    fn configured_kinds_override_the_file_kind_by_kind() {
        let mut file = References::default();
        file.kinds.insert("beam".into(), refs(Some("run-10"), &[("dqdx", "run-12")]));
        file.kinds.insert("cosmic".into(), refs(Some("run-20"), &[]));
        let mut config = References::default();
        config.kinds.insert("beam".into(), refs(None, &[("dqdx", "run-30")]));
        let merged = config.with_fallback(&file);
        assert_eq!(merged.for_kind(Some("beam")).of("dqdx"), Some("run-30"));
        assert_eq!(merged.for_kind(Some("beam")).of("timing"), Some("run-10"));
        assert_eq!(merged.for_kind(Some("cosmic")).of("timing"), Some("run-20"));
    }

    /// Written and read back the same; kinds inside a kind are refused with the kind named.
    #[test]
    fn kinds_are_written_and_nested_kinds_refused() {
        let dir = std::env::temp_dir().join(format!("larmon-references-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut references = refs(Some("run-1"), &[]);
        references.for_kind_mut(Some("beam")).plugins.insert("dqdx".into(), "run-5".into());
        references.write(&dir).unwrap();
        assert_eq!(References::read(&dir).unwrap(), references);
        std::fs::write(
            dir.join(REFERENCES_FILE),
            r#"{"kinds": {"beam": {"kinds": {"x": {"run": "run-1"}}}}}"#,
        )
        .unwrap();
        let error = References::read(&dir).unwrap_err();
        assert!(error.contains("\"beam\" cannot have kinds"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
