//! Metadata read from the data itself (data-management.md §1.2, §1.4): the MetaCat declaration
//! of a charge file (raw or packet: size and adler32 of the bytes, run and subrun from the file
//! name, start/end times and triggered events from the packets, data tier from the file kind,
//! the detector configuration used) or of a light file (MPD or flow: run and part from the MPD
//! run-start block, times and events from the events). A file is read only once it stopped
//! growing, and refused if it changed while read.
//!
//! The declaration itself, its sidecars and the catalog are `larmon-catalog`'s.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use larmon_calibrate::{Calibrator, DetectorConfig};
use larmon_catalog::metadata::{
    CHARGE_NAMESPACE, COMBINED_NAMESPACE, DEFAULT_NAME_PATTERN, Declaration, LIGHT_NAME_PATTERN,
    LIGHT_NAMESPACE, SUBRUNS_PER_RUN, run_subrun,
};
use larmon_catalog::runs::{RunDatabase, System, run_of_sidecar};
use larmon_catalog::{Adler32, CatalogError};
use larmon_ingest::read::{
    FileKind as LarpixKind, FlowFileReader, LarpixReader, ReadOptions, is_flow_file,
};
use regex::Regex;
use serde_json::{Map, Value, json};

pub mod dq_pack;

pub use larmon_ingest::light::is_light_file;

/// Why a file could not be declared.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The file could not be read, is not complete, or its declaration is not valid.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Reading the data failed.
    #[error(transparent)]
    Ingest(#[from] larmon_ingest::IngestError),
    /// The detector configuration is invalid.
    #[error(transparent)]
    Calibration(#[from] larmon_calibrate::CalibrationError),
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
    /// The run and subrun, given by the operator (`--run`): overrides every other source.
    pub run: Option<(u64, u64)>,
    /// The 2x2 run database: a file's DAQ run mapped to its global run (`dune.global_run`),
    /// and a run for a file without one, from its time.
    pub run_db: Option<RunDatabase>,
}

impl Default for MetadataOptions {
    fn default() -> Self {
        Self {
            name_pattern: Regex::new(DEFAULT_NAME_PATTERN).expect("valid default pattern"),
            data_stream: "physics".into(),
            detector: DetectorConfig::default(),
            config_file: None,
            stable_for: Duration::from_secs(2),
            run: None,
            run_db: None,
        }
    }
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
            parents: Vec::new(),
        };
        declaration
            .validate()
            .map_err(|reason| CatalogError::Invalid { path: self.path.into(), reason })?;
        Ok(declaration)
    }
}

/// A file's run, never invented: the operator's, else the name's (`pattern`), else the DAQ
/// sidecar's, else the run database's global run at the file's start time. Also the global run
/// of the file's DAQ run, when a run database is given.
fn run_of_file(
    path: &Path,
    name: &str,
    pattern: &Regex,
    system: System,
    from_data: Option<(u64, u64)>,
    start_s: Option<f64>,
    options: &MetadataOptions,
) -> (Option<(u64, u64)>, Option<u64>) {
    let run = options
        .run
        .or(from_data)
        .or_else(|| run_subrun(pattern, name))
        .or_else(|| run_of_sidecar(path));
    let db = options.run_db.as_ref();
    let global = match run {
        Some((r, sr)) => db.and_then(|db| db.global_run_of(system, r, Some(sr))),
        None => db.zip(start_s).and_then(|(db, t)| db.global_run_at(t)),
    };
    (run.or_else(|| global.map(|g| (g, 1))), global)
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

/// Reads a charge file (raw, packet or ndlar_flow) and declares it. Waits until the file has
/// not changed for `stable_for`, and refuses if it changed while being read.
pub fn extract(path: &Path, options: &MetadataOptions) -> Result<Declaration, MetadataError> {
    if is_flow_file(path) {
        return extract_flow(path, options);
    }
    let complete = CompleteFile::wait_for(path, options)?;

    let mut reader = LarpixReader::open(path, &ReadOptions::default())?;
    let kind = reader.kind();
    let mut calibrator = Calibrator::new(options.detector.clone())?;
    let (mut first, mut last): (Option<u64>, Option<u64>) = (None, None);
    let mut rows = 0u64;
    while let Some(batch) = reader.next_batch()? {
        rows += batch.len() as u64;
        for (kind, seconds) in batch.packet_type.iter().zip(&batch.timestamp) {
            if *kind == larmon_decode::pacman::TIMESTAMP_ROW {
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
    let span = first.zip(last).map(|(f, l)| (f as f64, l as f64));
    let (run, global) = run_of_file(
        path,
        &complete.name,
        &options.name_pattern,
        System::Crs,
        None,
        span.map(|s| s.0),
        options,
    );
    let mut metadata =
        common_metadata(CHARGE_NAMESPACE, run, tier, "hdf5", options, span, events, "larpix");
    let mut put = |key: &str, value: Value| {
        metadata.insert(key.to_string(), value);
    };
    if let Some(global) = global {
        put("dune.global_run", json!(global));
    }
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
    calibration_metadata(&options.detector, &mut metadata)?;
    Ok(complete.declare(CHARGE_NAMESPACE, metadata)?)
}

/// What calibrates a charge file, for its declaration: the detector description (name and the
/// SHA-256 its run reports record as `provenance.detector_sha256`), the channel-constant files
/// (pedestals, LArPix configuration) with their SHA-256, and the drift conditions used (field,
/// LAr temperature, drift velocity).
fn calibration_metadata(
    detector: &DetectorConfig,
    metadata: &mut Map<String, Value>,
) -> Result<(), MetadataError> {
    let name = if detector.modules.is_empty() { detector.detector.as_str() } else { "[[modules]]" };
    metadata.insert("dune.detector".into(), name.into());
    metadata.insert("dune.detector_sha256".into(), detector.description_sha256()?.into());
    let files = [
        ("pedestal", &detector.charge.pedestal_file),
        ("larpix_config", &detector.charge.config_file),
    ];
    for (what, file) in files {
        if let Some(file) = file {
            let sha256 = larmon_calibrate::config::file_sha256(file)?;
            metadata.insert(format!("dune.{what}_file"), file.display().to_string().into());
            metadata.insert(format!("dune.{what}_sha256"), sha256.into());
        }
    }
    metadata.insert("dune.e_field_kv_cm".into(), json!(detector.e_field_kv_cm));
    metadata.insert("dune.lar_temperature_k".into(), json!(detector.temperature_k));
    metadata.insert("dune.drift_velocity_mm_us".into(), json!(detector.drift_velocity()));
    Ok(())
}

/// Declares an ndlar_flow output file (namespace `neardet-2x2-lar`, as the 2x2 reprocessing
/// declares flow outputs; tier `hit-reconstructed`): times from its events' Unix seconds, its
/// triggered events (those with an external-trigger t0), run and subrun from the file name only
/// (flow does not record the run).
pub fn extract_flow(path: &Path, options: &MetadataOptions) -> Result<Declaration, MetadataError> {
    let complete = CompleteFile::wait_for(path, options)?;
    let mut reader = FlowFileReader::open(path)?;
    let (events, hits, kind) = (reader.events() as u64, reader.hit_rows(), reader.hits_kind());
    let span = reader.unix_span().map(|(a, b)| (a as f64, b as f64));
    let mut triggered = 0u64;
    while let Some(block) = reader.next_events(4096)? {
        triggered +=
            block.iter().filter(|e| e.t0.is_some_and(|(_, t)| t == 1) || e.n_ext_trigs > 0).count()
                as u64;
    }
    complete.check_unchanged()?;
    let (run, global) = run_of_file(
        path,
        &complete.name,
        &options.name_pattern,
        System::Crs,
        None,
        span.map(|s| s.0),
        options,
    );
    let mut metadata = common_metadata(
        COMBINED_NAMESPACE,
        run,
        "hit-reconstructed",
        "hdf5",
        options,
        span,
        events,
        "ndlar_flow",
    );
    metadata.insert("dune.triggered_events".into(), json!(triggered));
    metadata.insert("dune.flow_hits".into(), json!(hits));
    metadata.insert("dune.flow_hits_product".into(), json!(kind.group()));
    if let Some(global) = global {
        metadata.insert("dune.global_run".into(), json!(global));
    }
    Ok(complete.declare(COMBINED_NAMESPACE, metadata)?)
}

/// Declares a light-readout file (MPD or flow) from its data: run and file index from the MPD
/// run start block (else the name: `rctl_<run>_p<part>`), start/end time from the first and last
/// event's Unix ms, event count, events with a board missing.
pub fn extract_light(path: &Path, options: &MetadataOptions) -> Result<Declaration, MetadataError> {
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
                }
                .into());
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
    let span_s = span.map(|(first, last)| (first as f64 / 1e3, last as f64 / 1e3));
    // The light DAQ numbers its runs itself: its run (data, else name) is an LRS run.
    let (run, global) = run_of_file(
        path,
        &complete.name,
        &light_pattern,
        System::Lrs,
        from_data,
        span_s.map(|s| s.0),
        options,
    );
    let mut metadata =
        common_metadata(LIGHT_NAMESPACE, run, tier, format, options, span_s, events, "lrs");
    if let Some(global) = global {
        metadata.insert("dune.global_run".into(), json!(global));
    }
    metadata.insert("dune.light_missing_board_events".into(), json!(missing));
    Ok(complete.declare(LIGHT_NAMESPACE, metadata)?)
}
