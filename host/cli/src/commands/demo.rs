//! `larmon demo`: the whole chain in one command — `larmon simulate` writes three short runs of
//! cosmic muons in the raw DAQ format, with the light readout of their first seconds in the
//! light DAQ's format (with different electron lifetimes and faults, so the
//! trends page has something to show), every bundled plugin processes them, and the dashboard
//! serves the result.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use larmon_calibrate::DetectorConfig;
use larmon_simulate::light::{LightConfig, simulate_light};
use larmon_simulate::{SimulationConfig, simulate};

/// Seconds of each demo run that get light (≈125 kB per muon: the whole run would be ~75 MB).
const DEMO_LIGHT_SECONDS: f64 = 3.0;

/// Simulate three runs, process them and open the dashboard.
///
/// Writes the raw files and their truth to OUT/daq/ (`larmon simulate`: cosmic muons, noisy,
/// hot and dead pixels, triggers, PPS; the light of the muons of the first 3 s in the light
/// DAQ's MPD format), runs calibration and every bundled plugin over each run into
/// OUT/reports/, prints the URL and serves the dashboard until Ctrl-C. Run 3 has a short
/// electron lifetime, extra hot pixels and light faults: its checks go amber/red.
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
    /// Seconds of data per run.
    #[arg(long, default_value_t = 10)]
    duration_s: u32,
    /// Stop after processing (do not serve).
    #[arg(long)]
    no_serve: bool,
}

/// The demo runs: (run number, electron lifetime µs, hot channels).
const DEMO_RUNS: [(u32, f64, usize); 3] = [(1, 2200.0, 5), (2, 1900.0, 5), (3, 900.0, 40)];

pub fn run(args: Args) -> Result<()> {
    let daq = args.out.join("daq");
    let reports = args.out.join("reports");
    let detector = DetectorConfig::default();
    for (run, lifetime, hot) in DEMO_RUNS {
        let config = SimulationConfig {
            run,
            seed: u64::from(run),
            duration_s: args.duration_s,
            unix_start: SimulationConfig::default().unix_start + u64::from(run) * 3600,
            electron_lifetime_us: lifetime,
            hot_channels: hot,
            ..SimulationConfig::default()
        };
        let mut simulated = simulate(&config, &detector).context("simulating the demo run")?;
        let run_dir = daq.join(format!("run{run:04}"));
        let mut files = simulated
            .write(&run_dir, 1, false, |_, _| {})
            .with_context(|| format!("writing {}", run_dir.display()))?;
        let map = larmon_pipeline::input::light::default_channel_map(&detector);
        // Light faults (dead, noisy, saturating inputs, missing boards) in run 3 only.
        let faulty =
            LightConfig { window_s: Some((0.0, DEMO_LIGHT_SECONDS)), ..LightConfig::default() };
        let light_config = if run == 3 {
            faulty
        } else {
            LightConfig {
                dead_channels: 0,
                noisy_channels: 0,
                saturating_channels: 0,
                missing_board_fraction: 0.0,
                ..faulty
            }
        };
        let mut light = simulate_light(&simulated, &detector, &map, &light_config)
            .context("simulating the demo run's light")?;
        files
            .push(light.write(&run_dir).with_context(|| format!("writing {}", run_dir.display()))?);
        println!(
            "simulated run {run}: {} muons ({} with light), τ = {lifetime} µs, {hot} hot channels -> {}",
            simulated.truth.tracks.len(),
            light.truth.events.len(),
            run_dir.display()
        );
        let name = format!("run-{run:07}");
        super::run::run(super::run::Args::simple(files, reports.clone(), &name))?;
    }
    if args.no_serve {
        println!("reports in {}", reports.display());
        return Ok(());
    }
    super::serve::run(super::serve::Args::new(reports, args.bind))
}
