//! `larmon signoff OUT RUN`: a human decision on a run (good, bad, suspect, or auto to hand it
//! back to its automatic flag) with who and why, appended to OUT/signoff.sqlite; without
//! --flag, the run's sign-off history.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use larmon_report::RunStore;
use larmon_runtime::printable;
use larmon_signoff::{Decision, Registry};

/// Sign a run off: record the human decision on it, or show its history.
///
/// The decision overrides the automatic quality flag in `larmon runs --good`, on the
/// dashboard's overview and on the run page. The history is append-only: a later decision
/// replaces an earlier one, nothing is edited or deleted; `--flag auto` hands the run back to
/// its automatic flag. The dashboard offers the same behind a token (`larmon serve
/// --signoff-token-file`).
///
/// Examples:
///   larmon signoff reports run-0012345 --flag good --by "A. Shifter" --comment "HV trip was after the spill"
///   larmon signoff reports run-0012345 --flag bad --by rc --comment "module 3 off"
///   larmon signoff reports run-0012345            (the run's history)
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Output directory of `larmon run` / `watch` (the registry is DIR/signoff.sqlite).
    out: PathBuf,
    /// The run, as named in DIR (`larmon runs DIR` lists them).
    run: String,
    /// The decision: good, bad, suspect (needs an expert; not good) or auto (the automatic
    /// flag applies again).
    #[arg(long, value_name = "DECISION", requires_all = ["by", "comment"])]
    flag: Option<String>,
    /// Who decides (name or account).
    #[arg(long)]
    by: Option<String>,
    /// Why.
    #[arg(long)]
    comment: Option<String>,
    /// Print the history as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    if !args.out.is_dir() {
        bail!("{}: not a directory", args.out.display());
    }
    let Some(report) = RunStore::new(&args.out).run(&args.run) else {
        bail!(
            "{}: no run {:?} with a report here (`larmon runs {}` lists them)",
            args.out.display(),
            printable(&args.run),
            args.out.display()
        );
    };
    let registry = Registry::open(&args.out)?;
    if let Some(flag) = &args.flag {
        let decision: Decision = flag.parse()?;
        let automatic = report.quality.flag.map(|f| f.as_str());
        let entry = registry
            .record(
                &args.run,
                decision,
                args.by.as_deref().unwrap_or_default(),
                args.comment.as_deref().unwrap_or_default(),
                automatic,
            )
            .with_context(|| format!("signing off {}", printable(&args.run)))?;
        println!(
            "{}: {} by {} (automatic flag {}) -> {}",
            printable(&entry.run),
            entry.decision.as_str(),
            printable(&entry.by),
            automatic.unwrap_or("-"),
            args.out.join(larmon_signoff::REGISTRY_FILE).display()
        );
        return Ok(());
    }
    let history = registry.history(&args.run)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&history)?);
        return Ok(());
    }
    println!(
        "{}: automatic flag {}",
        printable(&args.run),
        report.quality.flag.map_or("-", |f| f.as_str())
    );
    if history.is_empty() {
        println!("no sign-off yet");
    }
    for s in &history {
        println!(
            "{}  {:<8} by {} (automatic {}): {}",
            utc(s.unix_s),
            s.decision.as_str(),
            printable(&s.by),
            s.automatic_flag.as_deref().unwrap_or("-"),
            printable(&s.comment)
        );
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a Unix time.
fn utc(unix_s: f64) -> String {
    chrono::DateTime::from_timestamp(unix_s as i64, 0)
        .map_or_else(|| format!("unix {unix_s}"), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}
