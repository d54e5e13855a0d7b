//! MetaCat file declarations read from the data itself (data-management.md §1.2, §1.4):
//! size and adler32 of the bytes, run and subrun from the file name, start/end times and event
//! counts from the packets, data tier from the file kind, and the detector configuration used.
//!
//! Run/subrun encoding (one, documented): `core.runs_subruns = run * 100000 + subrun`, the DUNE
//! convention; a name without a subrun is subrun 1 (as the CRS DAQ's own sidecars assume).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use larmon_calibrate::{Calibrator, DetectorConfig};
use larmon_ingest::read::{FileKind as LarpixKind, LarpixReader, ReadOptions};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::checksum::Adler32;
use crate::error::CatalogError;

/// Namespace and `core.run_type` of 2x2 charge files.
pub const CHARGE_NAMESPACE: &str = "neardet-2x2-lar-charge";
/// Namespace of 2x2 light files.
pub const LIGHT_NAMESPACE: &str = "neardet-2x2-lar-light";
/// Namespace of MINERvA files of the 2x2 runs.
pub const MINERVA_NAMESPACE: &str = "neardet-2x2-minerva";
/// Subruns per run in `core.runs_subruns`.
pub const SUBRUNS_PER_RUN: u64 = 100_000;

/// The default file-name pattern: the 2x2 DAQ's `binary-0050015-…` / `packet-0050015-…` and
/// `run123_sub0004` (run, subrun; the date after a 2x2 run number is not a subrun).
pub const DEFAULT_NAME_PATTERN: &str =
    r"(?:binary|packet|run)[-_]?(?P<run>\d+)(?:[-_]sub(?:run)?[-_]?(?P<subrun>\d+))?";

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

/// How metadata is extracted.
#[derive(Clone, Debug)]
pub struct MetadataOptions {
    /// File-name pattern with a `run` and an optional `subrun` group.
    pub name_pattern: Regex,
    /// `core.data_stream`.
    pub data_stream: String,
    /// The detector configuration (event building uses it).
    pub detector: DetectorConfig,
    /// The configuration file it came from, recorded with its SHA-256.
    pub config_file: Option<PathBuf>,
    /// A file is complete once its size and mtime have not changed for this long.
    pub stable_for: Duration,
}

impl Default for MetadataOptions {
    fn default() -> Self {
        Self {
            name_pattern: Regex::new(DEFAULT_NAME_PATTERN).expect("valid default pattern"),
            data_stream: "physics".into(),
            detector: DetectorConfig::default(),
            config_file: None,
            stable_for: Duration::from_secs(2),
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

/// Size and modification time: what "stopped growing" is judged on.
fn fingerprint(path: &Path) -> Result<(u64, SystemTime), CatalogError> {
    let meta = std::fs::metadata(path).map_err(|e| CatalogError::io(path, e))?;
    Ok((meta.len(), meta.modified().map_err(|e| CatalogError::io(path, e))?))
}

/// A file that has stopped growing, with its checksum; checked again after it was read.
struct CompleteFile<'a> {
    path: &'a Path,
    name: String,
    before: (u64, SystemTime),
    adler32: Adler32,
    size: u64,
}

impl<'a> CompleteFile<'a> {
    /// Waits until `path` has not changed for `stable_for` (the DAQ may still be appending),
    /// then checksums it.
    fn wait_for(path: &'a Path, options: &MetadataOptions) -> Result<Self, CatalogError> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or_else(|| {
            CatalogError::Invalid { path: path.into(), reason: "no file name".into() }
        })?;
        loop {
            let (_, modified) = fingerprint(path)?;
            let age = SystemTime::now().duration_since(modified).unwrap_or_default();
            if age >= options.stable_for {
                break;
            }
            std::thread::sleep(options.stable_for - age);
        }
        let before = fingerprint(path)?;
        let (adler32, size) = Adler32::of_file(path).map_err(|e| CatalogError::io(path, e))?;
        Ok(Self { path, name, before, adler32, size })
    }

    /// Refuses a file that changed while it was read.
    fn check_unchanged(&self) -> Result<(), CatalogError> {
        if fingerprint(self.path)? != self.before {
            return Err(CatalogError::Invalid {
                path: self.path.into(),
                reason: "the file changed while it was read (still being written?)".into(),
            });
        }
        Ok(())
    }

    /// The declaration of this file with `metadata`, validated.
    fn declare(
        self,
        namespace: &str,
        metadata: Map<String, Value>,
    ) -> Result<Declaration, CatalogError> {
        let declaration = Declaration {
            namespace: namespace.into(),
            name: self.name,
            size: self.size,
            checksums: [("adler32".to_string(), self.adler32.to_string())].into(),
            metadata,
        };
        declaration
            .validate()
            .map_err(|reason| CatalogError::Invalid { path: self.path.into(), reason })?;
        Ok(declaration)
    }
}

/// The keys every declaration has: run type, runs/subruns, tier, format, stream, times, events,
/// application and retention.
#[allow(clippy::too_many_arguments)]
fn common_metadata(
    run_type: &str,
    run: Option<(u64, u64)>,
    tier: &str,
    format: &str,
    options: &MetadataOptions,
    span_s: Option<(f64, f64)>,
    events: u64,
    family: &str,
) -> Map<String, Value> {
    let mut metadata = Map::new();
    let mut put = |key: &str, value: Value| {
        metadata.insert(key.to_string(), value);
    };
    put("core.run_type", run_type.into());
    if let Some((run, subrun)) = run {
        put("core.runs", json!([run]));
        put("core.runs_subruns", json!([run * SUBRUNS_PER_RUN + subrun]));
    }
    put("core.data_tier", tier.into());
    put("core.file_format", format.into());
    put("core.file_type", "detector".into());
    put("core.data_stream", options.data_stream.clone().into());
    if let Some((first, last)) = span_s {
        put("core.start_time", json!(first));
        put("core.end_time", json!(last));
    }
    put("core.event_count", json!(events));
    put("core.file_content_status", "good".into());
    put("core.application.family", family.into());
    put("core.application.name", "larmon".into());
    put("core.application.version", env!("CARGO_PKG_VERSION").into());
    put("retention.status", "active".into());
    put("retention.class", "rawdata".into());
    metadata
}

/// Reads a charge file (raw or packet) and declares it. Waits until the file has not changed
/// for `stable_for`, and refuses if it changed while being read.
pub fn extract(path: &Path, options: &MetadataOptions) -> Result<Declaration, CatalogError> {
    let complete = CompleteFile::wait_for(path, options)?;

    let mut reader = LarpixReader::open(path, &ReadOptions::default())?;
    let kind = reader.kind();
    let mut calibrator = Calibrator::new(options.detector.clone())?;
    let (mut first, mut last): (Option<u64>, Option<u64>) = (None, None);
    let mut rows = 0u64;
    while let Some(batch) = reader.next_batch()? {
        rows += batch.len() as u64;
        for (kind, seconds) in batch.packet_type.iter().zip(&batch.timestamp) {
            if *kind == 4 {
                first = Some(first.map_or(*seconds, |f| f.min(*seconds)));
                last = Some(last.map_or(*seconds, |l| l.max(*seconds)));
            }
        }
        calibrator.push(&batch);
    }
    calibrator.finish();
    let events = calibrator.stats().triggered_events;
    complete.check_unchanged()?;

    let tier = match kind {
        LarpixKind::Raw => "raw",
        LarpixKind::Packets => "decoded-raw",
    };
    let run = run_subrun(&options.name_pattern, &complete.name);
    let span = first.zip(last).map(|(f, l)| (f as f64, l as f64));
    let mut metadata =
        common_metadata(CHARGE_NAMESPACE, run, tier, "hdf5", options, span, events, "larpix");
    let mut put = |key: &str, value: Value| {
        metadata.insert(key.to_string(), value);
    };
    put("dune.packet_rows", json!(rows));
    match &options.config_file {
        Some(config) => {
            use sha2::Digest;
            let bytes = std::fs::read(config).map_err(|e| CatalogError::io(config, e))?;
            put("dune.config_file", config.display().to_string().into());
            put("dune.config_sha256", format!("{:x}", sha2::Sha256::digest(&bytes)).into());
        }
        None => put("dune.config_file", "built-in 2x2 nominal".into()),
    }
    complete.declare(CHARGE_NAMESPACE, metadata)
}

pub use larmon_ingest::light::is_light_file;

/// The 2x2 light DAQ's file names: `mpd_run_<name>_rctl_<run>_p<part>.data`.
pub const LIGHT_NAME_PATTERN: &str = r"rctl_(?P<run>\d+)_p(?P<subrun>\d+)";

/// Declares a light-readout file (MPD or flow) from its data: run and file index from the MPD
/// run start block (else the name: `rctl_<run>_p<part>`), start/end time from the first and last
/// event's Unix ms, event count, events with a board missing.
pub fn extract_light(path: &Path, options: &MetadataOptions) -> Result<Declaration, CatalogError> {
    use larmon_ingest::light::LightFile;
    let complete = CompleteFile::wait_for(path, options)?;
    let mut file = LightFile::open(path)?;
    let (mut events, mut missing) = (0u64, 0u64);
    let mut span: Option<(u64, u64)> = None;
    file.for_each_event(|e| {
        events += 1;
        missing += u64::from(e.missing_boards() > 0);
        span = Some(
            span.map_or((e.unix_ms, e.unix_ms), |(a, b)| (a.min(e.unix_ms), b.max(e.unix_ms))),
        );
    })?;
    let (tier, format, from_data) = match &file {
        LightFile::Mpd(reader) => {
            if reader.incomplete_tail() {
                return Err(CatalogError::Invalid {
                    path: path.into(),
                    reason: "the last block is incomplete (still being written?)".into(),
                });
            }
            let start = reader.run_start();
            let run = start.and_then(|r| r.run).map(u64::from);
            let index = start.and_then(|r| r.index).map(u64::from);
            ("raw", "binary", run.map(|r| (r, index.unwrap_or(0) + 1)))
        }
        LightFile::Flow(_) => ("decoded-raw", "hdf5", None),
    };
    complete.check_unchanged()?;
    let light_pattern = Regex::new(LIGHT_NAME_PATTERN).expect("valid light pattern");
    let run = from_data
        .or_else(|| run_subrun(&light_pattern, &complete.name))
        .or_else(|| run_subrun(&options.name_pattern, &complete.name));
    let span_s = span.map(|(first, last)| (first as f64 / 1e3, last as f64 / 1e3));
    let mut metadata =
        common_metadata(LIGHT_NAMESPACE, run, tier, format, options, span_s, events, "lrs");
    metadata.insert("dune.light_missing_board_events".into(), json!(missing));
    complete.declare(LIGHT_NAMESPACE, metadata)
}

/// Writes `<file>.json` (declad's sidecar) atomically: a temporary name, fsync, rename.
pub fn write_sidecar(path: &Path, declaration: &Declaration) -> Result<PathBuf, CatalogError> {
    let mut sidecar = path.as_os_str().to_owned();
    sidecar.push(".json");
    let sidecar = PathBuf::from(sidecar);
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
    Ok(sidecar)
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

    #[test]
    fn run_and_subrun_come_from_2x2_names() {
        let p = Regex::new(DEFAULT_NAME_PATTERN).unwrap();
        assert_eq!(run_subrun(&p, "binary-0050015-2024_07_08_13_37_49_CDT.h5"), Some((50015, 1)));
        assert_eq!(run_subrun(&p, "packet-0050015-2024_07_08_13_37_49_CDT.h5"), Some((50015, 1)));
        assert_eq!(run_subrun(&p, "run42_sub0003.h5"), Some((42, 3)));
        assert_eq!(run_subrun(&p, "run42_subrun12.h5"), Some((42, 12)));
        assert_eq!(run_subrun(&p, "cosmics.h5"), None);
    }

    #[test]
    fn validation_refuses_what_metacat_refuses() {
        let mut d = Declaration {
            namespace: "ns".into(),
            name: "f".into(),
            size: 1,
            checksums: [("adler32".to_string(), "024d0127".to_string())].into(),
            metadata: [("core.runs".to_string(), json!([1]))].into_iter().collect(),
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
