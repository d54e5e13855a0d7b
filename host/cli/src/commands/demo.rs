//! `larmon demo`: the whole chain on built-in data — a raw PACMAN file of simulated cosmic muons
//! (tests/data/small-raw.h5, 150 muons, 5 s, written by larpix-control) embedded in the binary —
//! processed by every bundled plugin and shown on the dashboard.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};

/// The embedded run: 36 730 rows, 150 triggered muons, hot and noisy pixels, bad-parity packets.
const DEMO_RAW: &[u8] = include_bytes!("../../../../tests/data/small-raw.h5");

/// Run the whole chain on built-in data and open the dashboard.
///
/// Writes the embedded raw file (simulated cosmic muons with known faults) to OUT/input/,
/// runs calibration and every bundled plugin over it into OUT/reports/, prints the URL and
/// serves the dashboard until Ctrl-C.
///
/// Examples:
///   larmon demo                                   http://127.0.0.1:8080
///   larmon demo --out /tmp/larmon-demo --bind 127.0.0.1:9000
///   larmon demo --no-serve                        process only
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Working directory.
    #[arg(long, default_value = "larmon-demo")]
    out: PathBuf,
    /// Address of the dashboard.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Stop after processing (do not serve).
    #[arg(long)]
    no_serve: bool,
}

pub fn run(args: Args) -> Result<()> {
    let input = args.out.join("input");
    std::fs::create_dir_all(&input).with_context(|| format!("creating {}", input.display()))?;
    let raw = input.join("demo-raw.h5");
    std::fs::write(&raw, DEMO_RAW).with_context(|| format!("writing {}", raw.display()))?;
    let reports = args.out.join("reports");
    super::run::run(super::run::Args::simple(vec![raw], reports.clone(), "demo-0001"))?;
    if args.no_serve {
        println!("reports in {}", reports.display());
        return Ok(());
    }
    super::serve::run(super::serve::Args::new(reports, args.bind))
}
