//! `larmon serve OUT`: the read-only dashboard over the run reports in OUT.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

/// Serve the dashboard: runs overview, run pages, trends, plugins, JSON API, /metrics.
///
/// Read-only but for sign-offs, which need --signoff-token-file; binds to 127.0.0.1 unless told otherwise (put it behind your site's
/// authenticating proxy to share it). Pages need no script and no external resource.
///
/// Examples:
///   larmon serve reports                           http://127.0.0.1:8080
///   larmon serve reports --bind 0.0.0.0:8080 --config larmon.toml   (trend bands from [checks])
///   larmon serve reports --catalog dm.sqlite       (+ per-run files pages and downloads)
///   larmon serve reports --signoff-token-file ~/.larmon-token   (+ sign-off form on run pages)
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
    /// A file holding the token (at least 16 characters) that sign-offs from the run pages must
    /// give; without it the dashboard takes no sign-offs (`larmon signoff` still does).
    #[arg(long, value_name = "FILE")]
    signoff_token_file: Option<PathBuf>,
}

impl Args {
    /// Serve `out` at `bind` without a checks configuration.
    pub fn new(out: PathBuf, bind: SocketAddr) -> Self {
        Self { out, bind, config: None, catalog: None, signoff_token_file: None }
    }
}

pub fn run(args: Args) -> Result<()> {
    if !args.out.is_dir() {
        bail!("{}: not a directory (give the --out directory of `larmon run`)", args.out.display());
    }
    // larmon's one configuration file; the dashboard uses its [checks] for the trend bands.
    let checks = larmon_pipeline::LarmonConfig::load(args.config.as_deref())?.checks;
    let signoff_token = match &args.signoff_token_file {
        None => None,
        Some(file) => {
            let token = std::fs::read_to_string(file)
                .with_context(|| format!("reading the sign-off token {}", file.display()))?;
            let token = token.trim().to_string();
            if token.chars().count() < 16 {
                bail!("{}: the sign-off token is shorter than 16 characters", file.display());
            }
            Some(token)
        }
    };
    let dashboard = larmon_serve::Dashboard { checks, catalog: args.catalog, signoff_token };
    let runtime = tokio::runtime::Runtime::new().context("starting the web server runtime")?;
    runtime.block_on(larmon_serve::serve(&args.out, dashboard, args.bind, |addr| {
        println!("larmon dashboard: http://{addr}/  (Ctrl-C to stop)");
    }))?;
    Ok(())
}
