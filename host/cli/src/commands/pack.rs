//! `larmon pack`: a run's DQ report and figures as one declared file (crate `larmon-metadata`,
//! module `dq_pack`), to catalogue, replicate and register like the data.

use std::path::PathBuf;

use anyhow::Result;
use larmon_catalog::metadata::write_sidecar;
use larmon_metadata::dq_pack::pack_run;

use super::meta::{print_declarations, sidecar_said};

/// Pack runs' DQ outputs (report.json and every figure) into `dqm-<run>.tar.gz`, declared with
/// the run's data files as parents.
///
/// The pack is reproducible: an unchanged run packs to the same bytes and adler32. Its
/// declaration: namespace `neardet-2x2-lar`, tier `dqm`, format `tar.gz`, the runs of the data
/// files, the data's time span and triggered events, dune.dq_flag and dune.detector_sha256 of
/// the report, and `parents` with the DID of each data file (charge, light or flow
/// namespace). Reviewers' versions (`OUT/<run>/versions/`) are left out.
///
/// Then catalogue and replicate it as data: `larmon catalog add` takes its verified sidecar,
/// `larmon transfer` copies it, `larmon rucio` registers it.
///
/// Examples:
///   larmon pack dqm run-0050015 --into /data/dq-packs --sidecar
///   larmon pack dqm run-0050015 run-0050016            # prints the declarations
///   larmon catalog --db dm.sqlite add /data/dq-packs/dqm-run-0050015.tar.gz
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// larmon's output folder (`larmon run`/`watch --out`).
    out: PathBuf,
    /// Runs to pack (folder names under OUT).
    #[arg(required = true)]
    runs: Vec<String>,
    /// Where the packs are written.
    #[arg(long, default_value = "dq-packs")]
    into: PathBuf,
    /// Write declad's `<pack>.json` beside each pack instead of printing the declaration.
    #[arg(long)]
    sidecar: bool,
    /// Replace a sidecar that declares something else (refused otherwise).
    #[arg(long, requires = "sidecar")]
    replace_sidecar: bool,
    /// core.data_stream of the packs.
    #[arg(long, default_value = "physics")]
    data_stream: String,
}

pub fn run(args: Args) -> Result<()> {
    let mut declarations = Vec::new();
    for run in &args.runs {
        let pack = pack_run(&args.out, run, &args.into, &args.data_stream)?;
        if args.sidecar {
            let (sidecar, outcome) =
                write_sidecar(&pack.path, &pack.declaration, args.replace_sidecar)?;
            println!("{} {}{}", pack.path.display(), sidecar.display(), sidecar_said(outcome));
        } else {
            declarations.push(pack.declaration);
        }
    }
    if !args.sidecar {
        print_declarations(&declarations)?;
    }
    Ok(())
}
