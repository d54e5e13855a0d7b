//! MetaCat file declarations (data-management.md §1.2, §1.4): the record of a file — namespace,
//! name, size, adler32 and dotted metadata keys — with its validation, run/subrun from a file
//! name, and declad sidecars written and read back against the bytes. Reading the metadata *from
//! the data* (times, events, tier) is `larmon-metadata`'s: the catalog links no HDF5.
//!
//! Run/subrun encoding (one, documented): `core.runs_subruns = run * 100000 + subrun`, the DUNE
//! convention; a name without a subrun is subrun 1 (as the CRS DAQ's own sidecars assume).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::checksum::Adler32;
use crate::error::CatalogError;

/// Namespace and `core.run_type` of 2x2 charge files.
pub const CHARGE_NAMESPACE: &str = "neardet-2x2-lar-charge";
/// Namespace of 2x2 light files.
pub const LIGHT_NAMESPACE: &str = "neardet-2x2-lar-light";
/// Namespace of files of the whole LAr detector (charge and light together: ndlar_flow
/// outputs, as the 2x2 reprocessing declares them).
pub const COMBINED_NAMESPACE: &str = "neardet-2x2-lar";
/// Namespace of MINERvA files of the 2x2 runs.
pub const MINERVA_NAMESPACE: &str = "neardet-2x2-minerva";
/// Subruns per run in `core.runs_subruns`.
pub const SUBRUNS_PER_RUN: u64 = 100_000;

/// The default file-name pattern: the 2x2 DAQ's `binary-0050015-…` / `packet-0050015-…` and
/// `run0000123_sub0004`: a run number of 7 digits, as the 2x2 writes it, with an optional
/// subrun (the date after a 2x2 run number is not a subrun). A date (`binary-2023_07_07_…`) or
/// a run period (`run2-cosmics`) is not a run number.
pub const DEFAULT_NAME_PATTERN: &str =
    r"(?:binary|packet|run)[-_]?(?P<run>\d{7})(?:[-_]sub(?:run)?[-_]?(?P<subrun>\d+))?(?:\D|$)";

/// A MetaCat file declaration (what `metacat file declare -f` and declad sidecars hold).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Declaration {
    /// Namespace (= Rucio scope).
    pub namespace: String,
    /// File name, unique in the namespace.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// `{"adler32": "8 lowercase hex digits"}`.
    pub checksums: BTreeMap<String, String>,
    /// Dotted metadata keys.
    pub metadata: Map<String, Value>,
    /// The files it was made from (MetaCat provenance), e.g. a DQ pack's raw files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<Parent>,
}

/// A parent file, as MetaCat's declare takes it: `{"did": "namespace:name"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    /// `namespace:name`.
    pub did: String,
}

impl Declaration {
    /// `namespace:name`.
    pub fn did(&self) -> String {
        format!("{}:{}", self.namespace, self.name)
    }
    /// The adler32 checksum.
    pub fn adler32(&self) -> Option<Adler32> {
        self.checksums.get("adler32").and_then(|t| Adler32::parse(t))
    }
    /// A metadata value as f64.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.metadata.get(key).and_then(Value::as_f64)
    }
    /// The first run number.
    pub fn run(&self) -> Option<u64> {
        self.metadata.get("core.runs").and_then(|r| r.get(0)).and_then(Value::as_u64)
    }

    /// Checks what MetaCat would refuse: dotted keys, a size, an 8-digit lowercase adler32.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(key) = self.metadata.keys().find(|k| !k.contains('.')) {
            return Err(format!("metadata key {key:?} has no dot (MetaCat needs category.name)"));
        }
        match self.checksums.get("adler32") {
            Some(a)
                if a.len() == 8 && a.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
            {
                Ok(())
            }
            Some(a) => Err(format!("adler32 {a:?} is not 8 lowercase hex digits")),
            None => Err("no adler32 checksum".into()),
        }
    }
}

/// Run and subrun from a file name.
pub fn run_subrun(pattern: &Regex, name: &str) -> Option<(u64, u64)> {
    let captures = pattern.captures(name)?;
    let run = captures.name("run")?.as_str().parse().ok()?;
    let subrun = captures.name("subrun").and_then(|s| s.as_str().parse().ok()).unwrap_or(1);
    Some((run, subrun))
}

/// The 2x2 light DAQ's file names: `mpd_run_<name>_rctl_<run>_p<part>.data`.
pub const LIGHT_NAME_PATTERN: &str = r"rctl_(?P<run>\d+)_p(?P<subrun>\d+)";

/// A data file's declad sidecar: `<file>.json` beside it.
pub fn sidecar_path(data: &Path) -> PathBuf {
    let mut sidecar = data.as_os_str().to_owned();
    sidecar.push(".json");
    PathBuf::from(sidecar)
}

/// What [`write_sidecar`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SidecarWrite {
    /// There was none: written.
    Written,
    /// One with the same declaration was there: left as it is.
    Unchanged,
    /// One with another declaration was there and `replace` was given: replaced.
    Replaced,
}

/// The top-level fields and metadata keys in which two declarations differ.
fn differences(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let fields = |v: &serde_json::Value| v.as_object().cloned().unwrap_or_default();
    let (old_fields, new_fields) = (fields(old), fields(new));
    let mut keys: Vec<String> = old_fields.keys().chain(new_fields.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    let mut differ = Vec::new();
    for key in keys {
        let (a, b) = (old_fields.get(&key), new_fields.get(&key));
        if key == "metadata" {
            let (a, b) = (
                a.and_then(|v| v.as_object()).unwrap_or(&empty),
                b.and_then(|v| v.as_object()).unwrap_or(&empty),
            );
            let mut inner: Vec<&String> = a.keys().chain(b.keys()).collect();
            inner.sort();
            inner.dedup();
            differ.extend(inner.into_iter().filter(|k| a.get(*k) != b.get(*k)).cloned());
        } else if a != b {
            differ.push(key);
        }
    }
    differ
}

/// Writes `<file>.json` (declad's sidecar) atomically: a temporary name, fsync, rename. A
/// sidecar already there (the DAQ's, or an earlier run of larmon) is never overwritten
/// silently: the same declaration leaves it alone, another one is refused with the keys that
/// differ unless `replace` is given.
pub fn write_sidecar(
    path: &Path,
    declaration: &Declaration,
    replace: bool,
) -> Result<(PathBuf, SidecarWrite), CatalogError> {
    let sidecar = sidecar_path(path);
    let new = serde_json::to_value(declaration).expect("declaration serialises");
    let mut outcome = SidecarWrite::Written;
    match std::fs::read(&sidecar) {
        Ok(bytes) => {
            let old = serde_json::from_slice::<serde_json::Value>(&bytes)
                .unwrap_or(serde_json::Value::Null);
            if old == new {
                return Ok((sidecar, SidecarWrite::Unchanged));
            }
            if !replace {
                let differ = differences(&old, &new);
                let shown = differ.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
                let more = differ.len().saturating_sub(8);
                let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                let what = if old.is_null() {
                    "is not a JSON declaration".to_string()
                } else {
                    format!("declares something else ({shown}{more} differ)")
                };
                return Err(CatalogError::Invalid {
                    path: sidecar,
                    reason: format!(
                        "a sidecar is already there and {what}; it is left as it is \
                         (--replace-sidecar replaces it)"
                    ),
                });
            }
            outcome = SidecarWrite::Replaced;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CatalogError::io(&sidecar, e)),
    }
    let mut temp = sidecar.as_os_str().to_owned();
    temp.push(format!(".tmp{}", std::process::id()));
    let temp = PathBuf::from(temp);
    let text = serde_json::to_string_pretty(declaration).expect("declaration serialises");
    let io = |e| CatalogError::io(&sidecar, e);
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&temp).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&temp, &sidecar).map_err(io)?;
    Ok((sidecar, outcome))
}

/// Reads a sidecar and checks it against the bytes it describes (size and a recomputed
/// adler32: declad trusts the sidecar; larmon does not).
pub fn read_verified_sidecar(data: &Path, sidecar: &Path) -> Result<Declaration, CatalogError> {
    let text = std::fs::read_to_string(sidecar).map_err(|e| CatalogError::io(sidecar, e))?;
    let declaration: Declaration = serde_json::from_str(&text)
        .map_err(|e| CatalogError::Invalid { path: sidecar.into(), reason: e.to_string() })?;
    declaration
        .validate()
        .map_err(|reason| CatalogError::Invalid { path: sidecar.into(), reason })?;
    let (adler32, size) = Adler32::of_file(data).map_err(|e| CatalogError::io(data, e))?;
    if size != declaration.size || Some(adler32) != declaration.adler32() {
        return Err(CatalogError::Invalid {
            path: sidecar.into(),
            reason: format!(
                "describes {} bytes, adler32 {}; the file has {size} bytes, adler32 {adler32}",
                declaration.size,
                declaration.checksums.get("adler32").map_or("-", String::as_str)
            ),
        });
    }
    Ok(declaration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn run_and_subrun_come_from_2x2_names() {
        let p = Regex::new(DEFAULT_NAME_PATTERN).unwrap();
        assert_eq!(run_subrun(&p, "binary-0050015-2024_07_08_13_37_49_CDT.h5"), Some((50015, 1)));
        assert_eq!(run_subrun(&p, "packet-0050015-2024_07_08_13_37_49_CDT.h5"), Some((50015, 1)));
        assert_eq!(run_subrun(&p, "run0000042_sub0003.h5"), Some((42, 3)));
        assert_eq!(run_subrun(&p, "run0000042_subrun12.h5"), Some((42, 12)));
        assert_eq!(run_subrun(&p, "cosmics.h5"), None);
        assert_eq!(run_subrun(&p, "binary-2023_07_07_16_33_PDT.h5"), None, "a date");
        assert_eq!(run_subrun(&p, "run2-cosmics-flow-sample.hdf5"), None, "a run period");
        assert_eq!(run_subrun(&p, "binary-00601540.h5"), None, "8 digits");
    }

    #[test]
    fn a_sidecar_already_there_is_kept_refused_or_replaced_never_silently_overwritten() {
        let dir = std::env::temp_dir().join(format!("larmon-sidecar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("binary-0000007-x.h5");
        std::fs::write(&data, b"data").unwrap();
        let mut declaration = Declaration {
            namespace: CHARGE_NAMESPACE.into(),
            name: "binary-0000007-x.h5".into(),
            size: 4,
            checksums: [("adler32".to_string(), "03d8019b".to_string())].into(),
            metadata: [("core.runs".to_string(), json!([7]))].into_iter().collect(),
            parents: Vec::new(),
        };
        let (sidecar, outcome) = write_sidecar(&data, &declaration, false).unwrap();
        assert_eq!(
            (sidecar.file_name().unwrap(), outcome),
            ("binary-0000007-x.h5.json".as_ref(), SidecarWrite::Written)
        );
        assert_eq!(write_sidecar(&data, &declaration, false).unwrap().1, SidecarWrite::Unchanged);
        let written = std::fs::read(&sidecar).unwrap();
        declaration.metadata.insert("core.runs".into(), json!([8]));
        declaration.metadata.insert("dune.extra".into(), json!(1));
        let refused = write_sidecar(&data, &declaration, false).unwrap_err().to_string();
        assert!(refused.contains("core.runs, dune.extra differ"), "{refused}");
        assert!(refused.contains("--replace-sidecar"), "{refused}");
        assert_eq!(std::fs::read(&sidecar).unwrap(), written, "the sidecar is untouched");
        std::fs::write(&sidecar, b"not json").unwrap();
        let refused = write_sidecar(&data, &declaration, false).unwrap_err().to_string();
        assert!(refused.contains("is not a JSON declaration"), "{refused}");
        assert_eq!(write_sidecar(&data, &declaration, true).unwrap().1, SidecarWrite::Replaced);
        let now: Declaration = serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
        assert_eq!(now.metadata["core.runs"], json!([8]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn validation_refuses_what_metacat_refuses() {
        let mut d = Declaration {
            namespace: "ns".into(),
            name: "f".into(),
            size: 1,
            checksums: [("adler32".to_string(), "024d0127".to_string())].into(),
            metadata: [("core.runs".to_string(), json!([1]))].into_iter().collect(),
            parents: Vec::new(),
        };
        assert!(d.validate().is_ok());
        d.checksums.insert("adler32".into(), "024D0127".into());
        assert!(d.validate().unwrap_err().contains("lowercase"));
        d.checksums.insert("adler32".into(), "24d0127".into());
        assert!(d.validate().is_err());
        d.checksums.insert("adler32".into(), "024d0127".into());
        d.metadata.insert("runs".into(), json!([1]));
        assert!(d.validate().unwrap_err().contains("no dot"));
    }
}
