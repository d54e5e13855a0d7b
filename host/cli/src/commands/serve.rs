//! `larmon serve OUT`: the read-only dashboard over the run reports in OUT.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

/// Serve the dashboard: runs overview, run pages, trends, plugins, JSON API, /metrics.
///
/// Read-only but for sign-offs, which need --signoff-token-file; binds to 127.0.0.1 unless told
/// otherwise (put it behind your site's authenticating proxy to share it). Pages need no script
/// and no external resource.
///
/// Downloads of catalogued files (--catalog): open on 127.0.0.1; on any other address only with
/// --download-token-file (the files page then asks for the token; scripts send
/// `Authorization: Bearer TOKEN`), else off. A file whose source is gone (a cleaned DAQ buffer)
/// is sent from a local replica (`larmon transfer --to`) of the catalogued size and adler32.
///
/// Examples:
///   larmon serve reports                           http://127.0.0.1:8080
///   larmon serve reports --bind 0.0.0.0:8080 --config larmon.toml   (trend bands from [checks])
///   larmon serve reports --catalog dm.sqlite       (+ per-run files pages and downloads)
///   larmon serve reports --signoff-token-file ~/.larmon-token   (+ sign-off form on run pages)
///   larmon serve reports --bind 0.0.0.0:8080 --catalog dm.sqlite --download-token-file ~/.dl-token
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
    /// A file holding the token (at least 16 characters) that downloads of catalogued files
    /// must give; needed for downloads when --bind is not a loopback address.
    #[arg(long, value_name = "FILE", requires = "catalog")]
    download_token_file: Option<PathBuf>,
}

impl Args {
    /// Serve `out` at `bind` without a checks configuration.
    pub fn new(out: PathBuf, bind: SocketAddr) -> Self {
        Self {
            out,
            bind,
            config: None,
            catalog: None,
            signoff_token_file: None,
            download_token_file: None,
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    if !args.out.is_dir() {
        bail!("{}: not a directory (give the --out directory of `larmon run`)", args.out.display());
    }
    // larmon's one configuration file; the dashboard uses its [checks] for the trend bands.
    let checks = larmon_pipeline::LarmonConfig::load(args.config.as_deref())?.checks;
    let signoff_token = read_token(args.signoff_token_file.as_deref(), "sign-off")?;
    let download_token = read_token(args.download_token_file.as_deref(), "download")?;
    let downloads = larmon_serve::Downloads::for_address(&args.bind, download_token);
    if args.catalog.is_some() && downloads == larmon_serve::Downloads::Off {
        eprintln!(
            "larmon: {} is reachable beyond this machine: file downloads are off \
             (--download-token-file turns them on behind a token)",
            args.bind
        );
    }
    let dashboard =
        larmon_serve::Dashboard { checks, catalog: args.catalog, signoff_token, downloads };
    let runtime = tokio::runtime::Runtime::new().context("starting the web server runtime")?;
    runtime.block_on(larmon_serve::serve(&args.out, dashboard, args.bind, |addr| {
        println!("larmon dashboard: http://{addr}/  (Ctrl-C to stop)");
    }))?;
    Ok(())
}

/// A token from its file: trimmed, at least 16 characters.
fn read_token(file: Option<&std::path::Path>, what: &str) -> Result<Option<String>> {
    let Some(file) = file else { return Ok(None) };
    let token = std::fs::read_to_string(file)
        .with_context(|| format!("reading the {what} token {}", file.display()))?;
    let token = token.trim().to_string();
    if token.chars().count() < 16 {
        bail!("{}: the {what} token is shorter than 16 characters", file.display());
    }
    Ok(Some(token))
}
