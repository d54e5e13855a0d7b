//! `larmon runs OUT`: the runs of an output directory with their quality and sign-off;
//! `--good` prints the good-run list as JSON.

use std::path::PathBuf;

use anyhow::{Result, bail};
use larmon_report::{RunStore, Status};
use larmon_runtime::printable;
use larmon_signoff::{Decision, Registry};

/// List runs with their quality flags and sign-offs; `--good` prints the good-run list (JSON).
///
/// A run signed off by a person (`larmon signoff`, or the dashboard) is good when the decision
/// is `good` and not good when it is `bad` or `suspect`, whatever its automatic flag. Without a
/// sign-off, a run is good when its automatic flag (the worst of its checks, `error` if a plugin
/// failed) is `ok`, or also `warning` with --accept-warnings.
///
/// Examples:
///   larmon runs reports
///   larmon runs reports --good > good-runs.json
///   larmon runs reports --good --kind beam    (runs of one kind: `--run-kind`, [[run_kinds]])
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Output directory of `larmon run`.
    out: PathBuf,
    /// Print only good runs, as a JSON list.
    #[arg(long)]
    good: bool,
    /// Count runs flagged `warning` as good (runs without a sign-off).
    #[arg(long)]
    accept_warnings: bool,
    /// Only runs of this kind (report.json's `run_kind`).
    #[arg(long, value_name = "KIND")]
    kind: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    if !args.out.is_dir() {
        bail!("{}: not a directory", args.out.display());
    }
    let store = RunStore::new(&args.out);
    let (mut runs, errors) = store.runs();
    if let Some(kind) = &args.kind {
        runs.retain(|r| r.run_kind.as_ref() == Some(kind));
    }
    for e in &errors {
        eprintln!("warning: {} (this run is left out)", printable(e));
    }
    let signoffs = match Registry::open_existing(&args.out)? {
        Some(registry) => registry.all_current()?,
        None => Default::default(),
    };
    let limit = if args.accept_warnings { Status::Warning } else { Status::Ok };
    if args.good {
        let good: Vec<serde_json::Value> = runs
            .iter()
            .filter(|r| match signoffs.get(&r.run) {
                Some(s) => s.decision == Decision::Good,
                None => r.quality.flag.is_some_and(|f| f <= limit),
            })
            .map(|r| {
                let signoff = signoffs.get(&r.run);
                serde_json::json!({
                    "run": r.run,
                    "run_kind": r.run_kind,
                    "start_unix_s": r.start_unix_s,
                    "end_unix_s": r.end_unix_s,
                    "flag": r.quality.flag,
                    "good_by": if signoff.is_some() { "sign-off" } else { "automatic flag" },
                    "signoff": signoff,
                    "files": r.files,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&good)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<8} {:>12} {:>10} {:>8}  {:<20} failed plugins",
        "run", "kind", "start", "duration", "quality", "sign-off"
    );
    for r in &runs {
        let failed: Vec<_> = r
            .plugins
            .iter()
            .filter(|p| p.status != larmon_report::Status::Ok)
            .map(|p| printable(&p.name))
            .collect();
        let signoff = signoffs
            .get(&r.run)
            .map_or("-".into(), |s| format!("{} ({})", s.decision.as_str(), printable(&s.by)));
        println!(
            "{:<24} {:<8} {:>12} {:>10} {:>8}  {:<20} {}",
            printable(&r.run),
            r.run_kind.as_deref().map_or("-".into(), printable),
            r.start_unix_s.map_or("-".into(), |s| s.to_string()),
            r.duration_s().map_or("-".into(), |d| format!("{d} s")),
            r.quality.flag.map_or("-", Status::as_str),
            signoff,
            failed.join(", ")
        );
    }
    Ok(())
}
