//! `larmon meta` and `larmon checksum`: MetaCat declarations read from the data, declad sidecars,
//! adler32 (crates `larmon-metadata` and `larmon-catalog`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use larmon_catalog::Adler32;
use larmon_catalog::metadata::{DEFAULT_NAME_PATTERN, write_sidecar};
use larmon_metadata::{MetadataOptions, extract, extract_light, is_light_file};

/// Print the MetaCat declaration of charge and light files, read from the data itself.
///
/// Namespace and core.run_type `neardet-2x2-lar-charge`; size and adler32 (8 lowercase hex
/// digits) of the bytes; core.runs and core.runs_subruns (= run·100000 + subrun, the DUNE
/// convention; subrun 1 when the name has none) from the file name; core.start_time and
/// core.end_time (first and last PACMAN Unix time) and core.event_count (triggered events) from
/// the packets; core.data_tier `raw` or `decoded-raw`; the detector configuration used.
/// Light files (MPD `.data`, ndlar_flow light HDF5): namespace `neardet-2x2-lar-light`, run and
/// part from the MPD run start block (else `rctl_<run>_p<part>` in the name), times from the
/// first and last event's Unix ms, event count, events with a board missing.
///
/// A file still growing is waited for (unchanged for --stable-s) and refused if it changes
/// while being read. --sidecar writes declad's `<file>.json` atomically (temporary + rename).
///
/// Examples:
///   larmon meta binary-0050015-2024_07_08_13_37_49_CDT.h5
///   larmon meta /data/daq/*.h5 --sidecar --data-stream cosmics --config 2x2.toml
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Raw or packet files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Write `<file>.json` beside each file (declad's sidecar) instead of printing.
    #[arg(long)]
    sidecar: bool,
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
}

impl MetadataArgs {
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
            stable_for: Duration::from_secs_f64(self.stable_s.max(0.0)),
        })
    }
}

pub fn run(args: Args) -> Result<()> {
    let options = args.metadata.options()?;
    let mut declarations = Vec::new();
    for file in &args.files {
        let declaration = if is_light_file(file) {
            extract_light(file, &options)?
        } else {
            extract(file, &options)?
        };
        if args.sidecar {
            let sidecar = write_sidecar(file, &declaration)?;
            println!("{}", sidecar.display());
        } else {
            declarations.push(declaration);
        }
    }
    if !args.sidecar {
        let text = if declarations.len() == 1 {
            serde_json::to_string_pretty(&declarations[0])?
        } else {
            serde_json::to_string_pretty(&declarations)?
        };
        println!("{text}");
    }
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
