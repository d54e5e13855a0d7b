//! `larmon serve OUT`: the read-only dashboard over the run reports in OUT.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use larmon_report::ChecksConfig;

/// Serve the dashboard: runs overview, run pages, trends, plugins, JSON API, /metrics.
///
/// Read-only; binds to 127.0.0.1 unless told otherwise (put it behind your site's
/// authenticating proxy to share it). Pages need no script and no external resource.
///
/// Examples:
///   larmon serve reports                           http://127.0.0.1:8080
///   larmon serve reports --bind 0.0.0.0:8080 --config larmon.toml   (trend bands from [checks])
///   larmon serve reports --catalog dm.sqlite       (+ per-run files pages and downloads)
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Output directory of `larmon run` (one sub-directory per run).
    out: PathBuf,
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Configuration whose [checks] table gives the trends' threshold bands.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data-management catalog (`larmon catalog`): adds each run's files page with metadata,
    /// checksums, replicas and downloads.
    #[arg(long)]
    catalog: Option<PathBuf>,
}

impl Args {
    /// Serve `out` at `bind` without a checks configuration.
    pub fn new(out: PathBuf, bind: SocketAddr) -> Self {
        Self { out, bind, config: None, catalog: None }
    }
}

pub fn run(args: Args) -> Result<()> {
    if !args.out.is_dir() {
        bail!("{}: not a directory (give the --out directory of `larmon run`)", args.out.display());
    }
    let checks = read_checks(args.config.as_ref())?;
    let runtime = tokio::runtime::Runtime::new().context("starting the web server runtime")?;
    runtime.block_on(larmon_serve::serve(&args.out, checks, args.catalog, args.bind, |addr| {
        println!("larmon dashboard: http://{addr}/  (Ctrl-C to stop)");
    }))?;
    Ok(())
}

/// The [checks] table of a configuration file, if any.
pub fn read_checks(path: Option<&PathBuf>) -> Result<ChecksConfig> {
    let Some(path) = path else { return Ok(ChecksConfig::default()) };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    match table.remove("checks") {
        Some(toml::Value::Table(checks)) => {
            Ok(ChecksConfig::from_table(checks).with_context(|| format!("{}", path.display()))?)
        }
        Some(_) => bail!("{}: [checks] must be a table", path.display()),
        None => Ok(ChecksConfig::default()),
    }
}
