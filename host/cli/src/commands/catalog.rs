//! `larmon catalog`: the SQLite file catalog — add, list, show, query, associate.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use larmon_catalog::associate::associate;
use larmon_catalog::metadata::{read_verified_sidecar, sidecar_path};
use larmon_catalog::runs::RunDatabase;
use larmon_catalog::{Added, Catalog, Declaration, FileRecord};
use larmon_metadata::{MetadataOptions, extract, extract_light, is_light_file};

/// The file catalog: files with their metadata and checksums, replicas, transfers.
///
/// An embedded SQLite database (WAL: the dashboard reads while transfers write). Charge and
/// light files are declared from their data (`larmon meta`); a file with a DAQ sidecar
/// `<file>.json` (e.g. MINERvA) from that, after its size and adler32 are checked against the
/// bytes. Adding a
/// file twice changes nothing; the same name with other bytes is refused.
///
/// Examples:
///   larmon catalog --db dm.sqlite add /data/daq/*.h5 /data/lrs/*.data
///   larmon catalog --db dm.sqlite list --run 50015
///   larmon catalog --db dm.sqlite show binary-0050015-2024_07_08_13_37_49_CDT.h5
///   larmon catalog --db dm.sqlite query core.data_tier=raw 'core.start_time>=1720000000'
///   larmon catalog --db dm.sqlite associate --run 50015
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The catalog database.
    #[arg(long, default_value = "larmon-catalog.sqlite", global = true)]
    db: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Add files: a verified `<file>.json` sidecar if there is one, else read from the data.
    Add {
        /// Files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        metadata: super::meta::MetadataArgs,
    },
    /// List files (JSON lines with --json).
    List {
        /// Only this run.
        #[arg(long)]
        run: Option<u64>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Everything about one file (DID, name or path): declaration, replicas.
    Show {
        /// DID, name or path.
        file: String,
    },
    /// Files matching every KEY OP VALUE condition (OP: = != < <= > >=).
    Query {
        /// Conditions, e.g. core.data_tier=raw 'core.runs=50015' 'size>1000000'.
        #[arg(required = true)]
        conditions: Vec<String>,
    },
    /// Charge, light and MINERvA files of each run that overlap in time (JSON).
    Associate {
        /// Only this run.
        #[arg(long)]
        run: Option<u64>,
        /// Seconds of slack on each side of a file's time span.
        #[arg(long, default_value_t = 1.0)]
        tolerance_s: f64,
        /// The 2x2 run database (SQLite All_global_subruns, or CSV with its columns): CRS,
        /// LRS and MINERvA runs -> global runs. Without it, light and MINERvA files join the
        /// charge run they overlap in time.
        #[arg(long, value_name = "FILE")]
        run_db: Option<PathBuf>,
    },
}

/// A file's declaration: its DAQ sidecar `<file>.json`, verified against the bytes, when
/// there is one; else read from the data.
pub fn declaration_of(file: &Path, options: &MetadataOptions) -> Result<Declaration> {
    let sidecar = sidecar_path(file);
    Ok(if sidecar.exists() {
        read_verified_sidecar(file, &sidecar)?
    } else if is_light_file(file) {
        extract_light(file, options)?
    } else {
        extract(file, options)?
    })
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Add { files, metadata } => {
            let catalog = Catalog::open(&args.db)?;
            let options = metadata.options()?;
            let (mut new, mut present, mut failed) = (0, 0, 0);
            for file in &files {
                let outcome =
                    declaration_of(file, &options).and_then(|d| Ok((catalog.add(file, &d)?, d)));
                match outcome {
                    Ok((Added::New, d)) => {
                        new += 1;
                        println!("added {}", d.did());
                        super::meta::warn_if_no_run(file, &d);
                    }
                    Ok((Added::AlreadyPresent, d)) => {
                        present += 1;
                        println!("already catalogued {}", d.did());
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("larmon: {}", super::error_text(&e));
                    }
                }
            }
            println!(
                "{new} added, {present} already there, {failed} refused -> {}",
                args.db.display()
            );
            if failed > 0 {
                bail!("{failed} of {} files were not catalogued (reasons above)", files.len());
            }
        }
        Command::List { run, json } => {
            let catalog = Catalog::open(&args.db)?;
            for f in catalog.list(run)? {
                if json {
                    println!("{}", serde_json::to_string(&f)?);
                } else {
                    print_line(&f);
                }
            }
        }
        Command::Show { file } => {
            let catalog = Catalog::open(&args.db)?;
            let record = catalog
                .find(&file)?
                .with_context(|| format!("{file} is not in {}", args.db.display()))?;
            let replicas = catalog.replicas(record.id)?;
            let value = serde_json::json!({"file": record, "replicas": replicas});
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        Command::Query { conditions } => {
            let catalog = Catalog::open(&args.db)?;
            for f in catalog.query(&conditions)? {
                print_line(&f);
            }
        }
        Command::Associate { run, tolerance_s, run_db } => {
            let catalog = Catalog::open(&args.db)?;
            let run_db = run_db.as_deref().map(RunDatabase::open).transpose()?;
            let runs = associate(&catalog.list(None)?, tolerance_s, run_db.as_ref());
            let runs: Vec<_> =
                runs.into_iter().filter(|a| run.is_none_or(|r| a.run == r)).collect();
            println!("{}", serde_json::to_string_pretty(&runs)?);
        }
    }
    Ok(())
}

fn print_line(f: &FileRecord) {
    println!(
        "{:>8}  {:<8} {:>12} B  {}  {:>14} .. {:<14}  {}",
        f.run.map_or("-".into(), |r| r.to_string()),
        f.kind,
        f.size,
        f.adler32,
        f.start_time.map_or("-".into(), |t| format!("{t:.0}")),
        f.end_time.map_or("-".into(), |t| format!("{t:.0}")),
        f.did
    );
}
