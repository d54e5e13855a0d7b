//! DQ outputs as data: a run's report and figures packed into one `dqm-<run>.tar.gz` with a
//! MetaCat declaration whose parents are the run's data files, so the data quality of a run is
//! catalogued, replicated and registered like the data it judges.
//!
//! The pack is byte-for-byte reproducible (entries sorted, times set to the report's, owners
//! and modes fixed, gzip without a time stamp): packing an unchanged run again gives the same
//! file and checksum, so its sidecar stays "unchanged" and a replica stays valid.

use std::io::Write;
use std::path::{Path, PathBuf};

use larmon_catalog::metadata::{
    CHARGE_NAMESPACE, COMBINED_NAMESPACE, DEFAULT_NAME_PATTERN, Declaration, LIGHT_NAMESPACE,
    Parent, SUBRUNS_PER_RUN, run_subrun,
};
use larmon_catalog::{Adler32, CatalogError};
use larmon_ingest::read::is_flow_file;
use larmon_report::model::RunReport;
use larmon_report::store::is_plain_name;
use regex::Regex;
use serde_json::{Map, Value, json};

use crate::{MetadataError, is_light_file};

/// The namespace of DQ packs: the combined charge-and-light detector, as they judge both.
pub const DQM_NAMESPACE: &str = COMBINED_NAMESPACE;

/// The data tier of DQ packs.
pub const DQM_TIER: &str = "dqm";

/// Folders of a run left out of its pack: reviewers' versions (`larmon run --as`) are not the
/// official report; `watch/` and `shards/` are processing state (the watcher's per-file
/// checkpoints and plugin snapshots, a sharded run's partial states), not DQ outputs — they
/// are made again from the data, and they were most of a pack's bytes.
const LEFT_OUT: &[&str] = &["versions", "watch", "shards"];

/// A packed run: the file and its declaration.
#[derive(Debug)]
pub struct DqPack {
    /// `INTO/dqm-<run>.tar.gz`.
    pub path: PathBuf,
    /// Its MetaCat declaration (parents: the run's data files).
    pub declaration: Declaration,
}

fn invalid(path: &Path, reason: impl Into<String>) -> MetadataError {
    CatalogError::Invalid { path: path.to_path_buf(), reason: reason.into() }.into()
}

/// Every regular file under `dir` (relative paths, sorted), except [`LEFT_OUT`] at the top and
/// temporaries being written (`*.tmp*`). Symbolic links are refused: a pack holds what larmon
/// wrote, nothing it points to.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, MetadataError> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let here = dir.join(&relative);
        let entries = std::fs::read_dir(&here).map_err(|e| CatalogError::io(&here, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| CatalogError::io(&here, e))?;
            let name = entry.file_name();
            let path = relative.join(&name);
            let kind = entry.file_type().map_err(|e| CatalogError::io(&entry.path(), e))?;
            if relative.as_os_str().is_empty() && LEFT_OUT.iter().any(|l| name == *l) {
                continue;
            }
            if name.to_string_lossy().contains(".tmp") {
                continue;
            }
            if kind.is_symlink() {
                return Err(invalid(&entry.path(), "a symbolic link in a run folder: not packed"));
            } else if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The DID a data file of a report is declared under: light (MPD or flow light) and
/// ndlar_flow files have their own namespaces, judged from the file when it is here, else from
/// its name (`.data`: light).
fn parent_did(file: &Path) -> String {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let namespace = if file.exists() {
        if is_light_file(file) {
            LIGHT_NAMESPACE
        } else if is_flow_file(file) {
            COMBINED_NAMESPACE
        } else {
            CHARGE_NAMESPACE
        }
    } else if name.ends_with(".data") {
        LIGHT_NAMESPACE
    } else {
        CHARGE_NAMESPACE
    };
    format!("{namespace}:{name}")
}

/// Writes the pack of `run_dir` (report `report`) to `path`: a temporary name, fsync, rename.
fn write_pack(run_dir: &Path, report: &RunReport, path: &Path) -> Result<(), MetadataError> {
    let files = files_under(run_dir)?;
    let mut temp = path.as_os_str().to_owned();
    temp.push(format!(".tmp{}", std::process::id()));
    let temp = PathBuf::from(temp);
    let io = |e| CatalogError::io(path, e);
    let file = std::fs::File::create(&temp).map_err(io)?;
    let gzip = flate2::GzBuilder::new().mtime(0).write(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gzip);
    let mtime = report.created_unix_s.max(0.0) as u64;
    for relative in &files {
        let source = run_dir.join(relative);
        let mut data = std::fs::File::open(&source).map_err(|e| CatalogError::io(&source, e))?;
        let size = data.metadata().map_err(|e| CatalogError::io(&source, e))?.len();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        let inside = Path::new(&report.run).join(relative);
        tar.append_data(&mut header, &inside, &mut data).map_err(io)?;
    }
    let gzip = tar.into_inner().map_err(io)?;
    let mut file = gzip.finish().map_err(io)?;
    file.flush().map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temp, path).map_err(io)?;
    Ok(())
}

/// The file name of revision `revision` of run `run`'s pack: `dqm-<run>.tar.gz` for the first,
/// `dqm-<run>.r<N>.tar.gz` for a later one (a run whose report changed after its pack was
/// declared — a late file, a sign-off — gets a new file: a declared file is never rewritten).
pub fn pack_name(run: &str, revision: u32) -> String {
    if revision <= 1 {
        format!("dqm-{run}.tar.gz")
    } else {
        format!("dqm-{run}.r{revision}.tar.gz")
    }
}

/// Packs run `run` of larmon output folder `out` into `into/dqm-<run>.tar.gz` and declares it:
/// namespace `neardet-2x2-lar`, tier `dqm`, format `tar.gz`, the runs of its data files, the
/// data's time span, the run's quality flag and detector-description hash, and the data files
/// as parents.
pub fn pack_run(
    out: &Path,
    run: &str,
    into: &Path,
    data_stream: &str,
) -> Result<DqPack, MetadataError> {
    pack_run_revision(out, run, into, data_stream, 1)
}

/// [`pack_run`] as revision `revision` ([`pack_name`]); revisions after the first carry
/// `dune.dq_revision`.
pub fn pack_run_revision(
    out: &Path,
    run: &str,
    into: &Path,
    data_stream: &str,
    revision: u32,
) -> Result<DqPack, MetadataError> {
    let run_dir = out.join(run);
    let report_path = run_dir.join("report.json");
    let text = std::fs::read_to_string(&report_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            invalid(&run_dir, "no report.json: not a run folder of larmon")
        } else {
            CatalogError::io(&report_path, e).into()
        }
    })?;
    let report: RunReport = serde_json::from_str(&text)
        .map_err(|e| invalid(&report_path, format!("not a run report: {e}")))?;
    if !is_plain_name(&report.run) {
        return Err(invalid(&report_path, format!("run name {:?} cannot name a file", report.run)));
    }
    std::fs::create_dir_all(into).map_err(|e| CatalogError::io(into, e))?;
    let name = pack_name(&report.run, revision);
    let path = into.join(&name);
    write_pack(&run_dir, &report, &path)?;
    let (adler32, size) = Adler32::of_file(&path).map_err(|e| CatalogError::io(&path, e))?;

    let pattern = Regex::new(DEFAULT_NAME_PATTERN).expect("valid default pattern");
    let mut runs: Vec<(u64, u64)> = report
        .files
        .iter()
        .filter_map(|f| run_subrun(&pattern, &f.file_name()?.to_string_lossy()))
        .collect();
    runs.sort();
    runs.dedup();
    let mut metadata = Map::new();
    let mut put = |key: &str, value: Value| {
        metadata.insert(key.to_string(), value);
    };
    put("core.run_type", DQM_NAMESPACE.into());
    if !runs.is_empty() {
        let mut numbers: Vec<u64> = runs.iter().map(|r| r.0).collect();
        numbers.dedup();
        put("core.runs", json!(numbers));
        let subruns: Vec<u64> = runs.iter().map(|(r, s)| r * SUBRUNS_PER_RUN + s).collect();
        put("core.runs_subruns", json!(subruns));
    }
    put("core.data_tier", DQM_TIER.into());
    put("core.file_format", "tar.gz".into());
    put("core.file_type", "detector".into());
    put("core.data_stream", data_stream.into());
    if let (Some(first), Some(last)) = (report.start_unix_s, report.end_unix_s) {
        put("core.start_time", json!(first as f64));
        put("core.end_time", json!(last as f64));
    }
    let events = report.host_number("triggered_events").unwrap_or(0.0);
    put("core.event_count", json!(events as u64));
    let flag = report.quality.flag.map_or("error", |f| f.as_str());
    put("core.file_content_status", "good".into());
    put("core.application.family", "larmon".into());
    put("core.application.name", "larmon".into());
    put("core.application.version", env!("CARGO_PKG_VERSION").into());
    put("retention.status", "active".into());
    put("retention.class", "physics".into());
    put("dune.dq_run", report.run.clone().into());
    put("dune.dq_flag", flag.into());
    put("dune.dq_files", json!(report.files.len()));
    if revision > 1 {
        put("dune.dq_revision", json!(revision));
    }
    if !report.provenance.detector_sha256.is_empty() {
        put("dune.detector_sha256", report.provenance.detector_sha256.clone().into());
    }
    put("dune.report_larmon_version", report.larmon_version.clone().into());
    let declaration = Declaration {
        namespace: DQM_NAMESPACE.into(),
        name,
        size,
        checksums: [("adler32".to_string(), adler32.to_string())].into(),
        metadata,
        parents: report.files.iter().map(|f| Parent { did: parent_did(f) }).collect(),
    };
    declaration.validate().map_err(|reason| invalid(&path, reason))?;
    Ok(DqPack { path, declaration })
}
