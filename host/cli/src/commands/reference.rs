//! `larmon reference OUT`: the reference runs that typed figures are drawn against and
//! shape-checked with (OUT/references.json); `--set RUN` names one, for every plugin or one,
//! for runs of any kind or of one kind.

use std::path::PathBuf;

use anyhow::{Result, bail};
use larmon_report::RunStore;
use larmon_report::references::References;
use larmon_report::run_kind::{KIND_RULE, valid_kind};
use larmon_runtime::printable;

/// Show or set the reference runs of an output directory.
///
/// A plugin's typed figures (histograms reported as data) are drawn with the reference run's
/// histogram over them, scaled to the same area, with the Kolmogorov–Smirnov probability and
/// χ²/ndf noted; `[shape_checks."plugin/figure"]` in the configuration turns a statistic into a
/// check with warning and error limits. References apply to reports written afterwards. The
/// configuration's `[references]` (run = "RUN", [references.plugins] NAME = "RUN") overrides
/// this file. The dashboard sets it too (`larmon serve --signoff-token-file`).
///
/// Runs of different kinds (beam, cosmic, …) look different; `--kind` gives a kind its own
/// references, used before the ones for any kind. A run's kind is what `larmon run|watch
/// --run-kind` names, else what the configuration's `[[run_kinds]]` rules tell from its
/// metrics (report.json's `run_kind`; docs/dashboard.md has an example).
///
/// Examples:
///   larmon reference reports                          (show)
///   larmon reference reports --set run-0012345        (every plugin)
///   larmon reference reports --set run-0012001 --plugin dqdx
///   larmon reference reports --set run-0050018 --kind beam
///   larmon reference reports --clear --plugin dqdx
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Output directory of `larmon run` / `watch`.
    out: PathBuf,
    /// Make this run (it must have a report in OUT) the reference.
    #[arg(long, value_name = "RUN", conflicts_with = "clear")]
    set: Option<String>,
    /// Remove the reference (of --plugin, else the one for every plugin).
    #[arg(long)]
    clear: bool,
    /// Only for this plugin.
    #[arg(long, value_name = "NAME")]
    plugin: Option<String>,
    /// Only for runs of this kind (beam, cosmic, …).
    #[arg(long, value_name = "KIND")]
    kind: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    if !args.out.is_dir() {
        bail!("{}: not a directory", args.out.display());
    }
    if let Some(kind) = args.kind.as_deref().filter(|k| !valid_kind(k)) {
        bail!("--kind {:?}: {KIND_RULE}", printable(kind));
    }
    let mut references = References::read(&args.out).map_err(anyhow::Error::msg)?;
    let of_kind = references.for_kind_mut(args.kind.as_deref());
    let changed = if let Some(run) = &args.set {
        if RunStore::new(&args.out).run(run).is_none() {
            bail!(
                "{}: no run {:?} with a report here (`larmon runs {}` lists them)",
                args.out.display(),
                printable(run),
                args.out.display()
            );
        }
        match &args.plugin {
            Some(plugin) => of_kind.plugins.insert(plugin.clone(), run.clone()),
            None => of_kind.run.replace(run.clone()),
        };
        true
    } else if args.clear {
        match &args.plugin {
            Some(plugin) => of_kind.plugins.remove(plugin),
            None => of_kind.run.take(),
        };
        true
    } else {
        false
    };
    references.prune();
    if changed {
        references.write(&args.out).map_err(anyhow::Error::msg)?;
    }
    print_references("", &references);
    for (kind, of_kind) in &references.kinds {
        print_references(&format!("{} runs, ", printable(kind)), of_kind);
    }
    Ok(())
}

/// One line for every plugin, then one per plugin with its own reference.
fn print_references(prefix: &str, references: &References) {
    println!("{prefix}every plugin: {}", references.run.as_deref().map_or("-".into(), printable));
    for (plugin, run) in &references.plugins {
        println!("{prefix}{}: {}", printable(plugin), printable(run));
    }
}
