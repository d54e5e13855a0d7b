//! `larmon serve OUT`: the read-only dashboard over the run reports in OUT.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

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
    // larmon's one configuration file; the dashboard uses its [checks] for the trend bands.
    let checks = larmon_pipeline::LarmonConfig::load(args.config.as_deref())?.checks;
    let runtime = tokio::runtime::Runtime::new().context("starting the web server runtime")?;
    runtime.block_on(larmon_serve::serve(&args.out, checks, args.catalog, args.bind, |addr| {
        println!("larmon dashboard: http://{addr}/  (Ctrl-C to stop)");
    }))?;
    Ok(())
}
