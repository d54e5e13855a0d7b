//! `larmon meta` and `larmon checksum`: MetaCat declarations read from the data, declad sidecars,
//! adler32 (crates `larmon-metadata` and `larmon-catalog`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use larmon_catalog::metadata::{DEFAULT_NAME_PATTERN, SidecarWrite, write_sidecar};
use larmon_catalog::{Adler32, Declaration};
use larmon_metadata::{MetadataOptions, extract, extract_light, is_light_file};
use larmon_report::{RunStore, Status};
use larmon_signoff::{Decision, Registry};
use serde_json::json;

/// Print the MetaCat declaration of charge and light files, read from the data itself.
///
/// Namespace and core.run_type `neardet-2x2-lar-charge`; size and adler32 (8 lowercase hex
/// digits) of the bytes; core.runs and core.runs_subruns (= run·100000 + subrun, the DUNE
/// convention; subrun 1 when the name has none); core.start_time and
/// core.end_time (first and last PACMAN Unix time) and core.event_count (triggered events) from
/// the packets; core.data_tier `raw` or `decoded-raw`; the detector configuration used.
/// Light files (MPD `.data`, ndlar_flow light HDF5): namespace `neardet-2x2-lar-light`, run and
/// part from the MPD run start block (else `rctl_<run>_p<part>` in the name), times from the
/// first and last event's Unix ms, event count, events with a board missing.
/// ndlar_flow files: namespace `neardet-2x2-lar`, tier `hit-reconstructed`, their events.
///
/// Run numbers are never invented: --run, else the file name (the 2x2's 7-digit
/// `binary-0050015-…`; a date such as `binary-2023_07_07_16_33_PDT` is no run), else the
/// DAQ's sidecar `<file>.json`, else the run database (--run-db: the global run at the file's
/// start). A file with none is declared without core.runs, and said so on stderr. With
/// --run-db, dune.global_run holds the global run of the file's CRS or LRS run.
///
/// Raw and packet files also carry what calibrates them: dune.detector and
/// dune.detector_sha256 (the run report's provenance hash: settings and the bytes of every
/// layout, pedestal and configuration file), the pedestal and LArPix configuration files with
/// their SHA-256, and the drift conditions (field, temperature, drift velocity).
///
/// --dq-reports OUT reflects data quality: the run report of OUT that lists the file gives
/// dune.dq_run and dune.dq_flag (ok, warning, error), a shifter's sign-off dune.dq_signoff;
/// core.file_content_status is the sign-off (good, bad, suspect), else `bad` for an error flag
/// and `good` otherwise.
///
/// A file still growing is waited for (unchanged for --stable-s) and refused if it changes
/// while being read. --sidecar writes declad's `<file>.json` atomically (temporary + rename);
/// a sidecar already there with another declaration (the DAQ's own) is refused with the keys
/// that differ, unless --replace-sidecar.
///
/// Examples:
///   larmon meta binary-0050015-2024_07_08_13_37_49_CDT.h5
///   larmon meta /data/daq/*.h5 --sidecar --data-stream cosmics --config 2x2.toml
///   larmon meta binary-2023_07_07_16_33_PDT.h5 --run 50015
///   larmon meta mpd_run_x_rctl_105_p0.data --run-db mx2x2runs_v0.1.sqlite
///   larmon meta /data/daq/binary-0050015-*.h5 --dq-reports /data/dqm --sidecar
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Raw, packet, ndlar_flow or light files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Write `<file>.json` beside each file (declad's sidecar) instead of printing.
    #[arg(long)]
    sidecar: bool,
    /// Replace a sidecar that declares something else (refused otherwise).
    #[arg(long, requires = "sidecar")]
    replace_sidecar: bool,
    /// larmon's output folder (`larmon run`/`watch --out`): the quality flag and sign-off of
    /// the run whose report lists each file go into its declaration.
    #[arg(long, value_name = "OUT")]
    dq_reports: Option<PathBuf>,
    #[command(flatten)]
    metadata: MetadataArgs,
}

/// How metadata is read from files (shared by `meta` and `catalog add`).
#[derive(clap::Args)]
pub struct MetadataArgs {
    /// core.data_stream.
    #[arg(long, default_value = "physics")]
    data_stream: String,
    /// File-name pattern with `run` and optional `subrun` groups.
    #[arg(long, default_value = DEFAULT_NAME_PATTERN)]
    name_pattern: String,
    /// Detector configuration (event building; recorded in dune.config_file + sha256).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Built-in detector: 2x2 (the default), single-module, sim-module (the simulation
    /// fixtures' module); replaces `detector` of the configuration. `larmon detector show`
    /// prints what it holds.
    #[arg(long, value_name = "NAME")]
    detector: Option<String>,
    /// Seconds a file must be unchanged before it counts as complete.
    #[arg(long, default_value_t = 2.0)]
    stable_s: f64,
    /// The files' run (RUN or RUN.SUBRUN), when their names do not say it.
    #[arg(long, value_name = "RUN[.SUBRUN]", value_parser = parse_run)]
    run: Option<(u64, u64)>,
    /// The 2x2 run database (SQLite with table All_global_subruns, or CSV with its columns;
    /// docs/data-management.md): CRS and LRS runs -> global runs.
    #[arg(long, value_name = "FILE")]
    run_db: Option<PathBuf>,
}

impl MetadataArgs {
    /// core.data_stream of the files (and of DQ packs).
    pub fn data_stream(&self) -> &str {
        &self.data_stream
    }
}

/// `RUN` or `RUN.SUBRUN` (subrun 1 when not given).
fn parse_run(text: &str) -> Result<(u64, u64), String> {
    let (run, subrun) = text.split_once('.').unwrap_or((text, "1"));
    match (run.parse(), subrun.parse()) {
        (Ok(run), Ok(subrun)) => Ok((run, subrun)),
        _ => Err(format!("{text:?}: give RUN or RUN.SUBRUN (numbers)")),
    }
}

/// Says on stderr that a declaration has no run (MetaCat accepts it; a shifter should know).
pub fn warn_if_no_run(file: &std::path::Path, declaration: &larmon_catalog::Declaration) {
    if !declaration.metadata.contains_key("core.runs") {
        eprintln!(
            "larmon: {}: no run number (not in its name, no DAQ sidecar, no run database entry): \
             declared without core.runs; give --run or --run-db",
            file.display()
        );
    }
}

impl MetadataArgs {
    /// The detector configuration file given (`--config`).
    pub fn config(&self) -> Option<&Path> {
        self.config.as_deref()
    }

    /// The extraction options these flags give.
    pub fn options(&self) -> Result<MetadataOptions> {
        let detector = larmon_pipeline::LarmonConfig::load_for(
            self.config.as_deref(),
            self.detector.as_deref(),
        )?
        .detector;
        Ok(MetadataOptions {
            name_pattern: regex::Regex::new(&self.name_pattern)
                .with_context(|| format!("--name-pattern {:?}", self.name_pattern))?,
            data_stream: self.data_stream.clone(),
            detector,
            config_file: self.config.clone(),
            stable_for: super::seconds(self.stable_s),
            run: self.run,
            run_db: self
                .run_db
                .as_deref()
                .map(larmon_catalog::runs::RunDatabase::open)
                .transpose()?,
        })
    }
}

/// The data-quality verdict on one file: the run whose report lists it, the report's flag
/// and a shifter's decision.
struct Verdict {
    run: String,
    flag: Status,
    signoff: Option<Decision>,
}

/// The reports of a larmon output folder and its sign-off registry.
struct DqReports {
    store: RunStore,
    registry: Option<Registry>,
}

impl DqReports {
    fn open(out: &Path) -> Result<Self> {
        if !out.is_dir() {
            bail!("--dq-reports {}: no such folder", out.display());
        }
        let registry = Registry::open_existing(out)
            .with_context(|| format!("the sign-offs of {}", out.display()))?;
        Ok(Self { store: RunStore::new(out), registry })
    }

    /// The verdict on `file`: the report listing a file of its name (the report may name it
    /// under another folder, e.g. the DAQ node's). None when no report lists it; an error when
    /// several runs do.
    fn verdict(&self, file: &Path) -> Result<Option<Verdict>> {
        let name = file.file_name();
        let (runs, _unreadable) = self.store.runs();
        let listing: Vec<_> =
            runs.iter().filter(|r| r.files.iter().any(|f| f.file_name() == name)).collect();
        let report = match listing.as_slice() {
            [] => return Ok(None),
            [report] => report,
            several => bail!(
                "{}: listed by the reports of several runs ({}): give the file to one run",
                file.display(),
                several.iter().map(|r| r.run.as_str()).collect::<Vec<_>>().join(", ")
            ),
        };
        let signoff = match &self.registry {
            Some(registry) => registry.current(&report.run)?.map(|s| s.decision),
            None => None,
        };
        let flag = report.quality.flag.unwrap_or(Status::Error);
        Ok(Some(Verdict { run: report.run.clone(), flag, signoff }))
    }
}

/// Puts a verdict into a declaration (`core.file_content_status`, `dune.dq_*`).
fn reflect(declaration: &mut Declaration, verdict: &Verdict) {
    let status = match verdict.signoff {
        Some(decision @ (Decision::Good | Decision::Bad | Decision::Suspect)) => decision.as_str(),
        Some(Decision::Auto) | None if verdict.flag == Status::Error => "bad",
        Some(Decision::Auto) | None => "good",
    };
    let metadata = &mut declaration.metadata;
    metadata.insert("core.file_content_status".into(), status.into());
    metadata.insert("dune.dq_run".into(), verdict.run.clone().into());
    metadata.insert("dune.dq_flag".into(), verdict.flag.as_str().into());
    if let Some(decision) = verdict.signoff.filter(|d| *d != Decision::Auto) {
        metadata.insert("dune.dq_signoff".into(), json!(decision.as_str()));
    }
}

pub fn run(args: Args) -> Result<()> {
    let options = args.metadata.options()?;
    let dq = args.dq_reports.as_deref().map(DqReports::open).transpose()?;
    let mut declarations = Vec::new();
    for file in &args.files {
        let mut declaration = if is_light_file(file) {
            extract_light(file, &options)?
        } else {
            extract(file, &options)?
        };
        warn_if_no_run(file, &declaration);
        if let Some(dq) = &dq {
            match dq.verdict(file)? {
                Some(verdict) => reflect(&mut declaration, &verdict),
                None => eprintln!(
                    "larmon: {}: no run report in {} lists it: core.file_content_status stays \
                     \"good\" and no dune.dq_flag is declared",
                    file.display(),
                    dq.store.root().display()
                ),
            }
        }
        if args.sidecar {
            let (sidecar, outcome) = write_sidecar(file, &declaration, args.replace_sidecar)?;
            println!("{}{}", sidecar.display(), sidecar_said(outcome));
        } else {
            declarations.push(declaration);
        }
    }
    if !args.sidecar {
        print_declarations(&declarations)?;
    }
    Ok(())
}

/// What a line naming a sidecar adds about it: nothing when it was written now.
pub fn sidecar_said(outcome: SidecarWrite) -> &'static str {
    match outcome {
        SidecarWrite::Written => "",
        SidecarWrite::Unchanged => " (unchanged)",
        SidecarWrite::Replaced => " (replaced)",
    }
}

/// Prints declarations as JSON: one object for one file, else an array.
pub fn print_declarations(declarations: &[Declaration]) -> Result<()> {
    let text = match declarations {
        [one] => serde_json::to_string_pretty(one)?,
        all => serde_json::to_string_pretty(all)?,
    };
    println!("{text}");
    Ok(())
}

/// Print the adler32 of files as `xrdadler32` does (`<8 hex digits> <path>`).
///
/// Streams each file (memory flat in its size); the value is zlib's adler32 (seed 1) with its
/// leading zeros, as Rucio and MetaCat require.
///
/// Example:
///   larmon checksum run.h5
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ChecksumArgs {
    /// Files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

pub fn checksum(args: ChecksumArgs) -> Result<()> {
    for file in &args.files {
        let (adler, _) =
            Adler32::of_file(file).with_context(|| format!("reading {}", file.display()))?;
        println!("{adler} {}", file.display());
    }
    Ok(())
}
