//! `larmon simulate`: larmon's own generator of a 2x2-like run in the raw PACMAN format, with its
//! truth (crate `larmon-simulate`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use larmon_pipeline::input::light::load_channel_map;
use larmon_simulate::light::{LightConfig, simulate_light};
use larmon_simulate::{SimulationConfig, simulate};

/// Simulate a run of cosmic muons in the raw format the DAQ writes.
///
/// Writes DIR/binary-<run>-<UTC start>_UTC.h5 (raw PACMAN messages, as larpix-control writes
/// them: `msgs` + `msg_headers`) and DIR/binary-<run>-truth.json: every muon (t0, entry and exit
/// point), the dead, hot and noisy channels, parity and FIFO faults, and the row counts a packet
/// file of the run would hold. The detector is the calibration's (built-in 2x2-like layout or
/// --config), and the charge constants are its defaults, so `larmon run` needs no config.
///
/// The light readout of the same muons is written beside them as the 2x2 light DAQ's MPD file
/// (mpd_run_sim_rctl_<run>_p0.data, one light event per muon, all 8 boards) with its truth
/// (mpd_run_sim_rctl_<run>-light-truth.json: dead, noisy, saturating and clipping inputs,
/// events with a missing board, the photo-electrons of every input). About 125 kB per muon:
/// --light-seconds limits it to the muons of the first seconds, --no-light leaves it out.
///
/// With --realtime the files are written the way the DAQ writes them (SWMR, flushed) at one
/// second of data per wall-clock second (scaled by --speed): a live source for `larmon watch`.
///
/// Examples:
///   larmon simulate --out sim                         10 s, 60 muons/s, run 1
///   larmon simulate --out sim --run 7 --duration-s 40 --lifetime-us 1500
///   larmon simulate --out daq --files 3 --realtime    a live DAQ folder for `larmon watch daq`
///   larmon simulate --out sim --light-seconds 2       light for the muons of the first 2 s
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Run number.
    #[arg(long, default_value_t = 1)]
    run: u32,
    /// Seed of every random stream (same seed, same files).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds of data.
    #[arg(long, default_value_t = 10)]
    duration_s: u32,
    /// Triggered cosmic muons per second.
    #[arg(long, default_value_t = 60.0)]
    muon_rate_hz: f64,
    /// Electron lifetime, µs.
    #[arg(long, default_value_t = 2200.0)]
    lifetime_us: f64,
    /// Number of hot channels.
    #[arg(long, default_value_t = 5)]
    hot_channels: usize,
    /// Fraction of noisy channels.
    #[arg(long, default_value_t = 0.05)]
    noisy_fraction: f64,
    /// Number of dead channels.
    #[arg(long, default_value_t = 20)]
    dead_channels: usize,
    /// Unix time of the first PPS edge (default: 2023-03-15T02:40:00Z plus the run number × 1 h).
    #[arg(long)]
    unix_start: Option<u64>,
    /// Split the run into this many files of consecutive seconds.
    #[arg(long, default_value_t = 1)]
    files: usize,
    /// Write as a live DAQ: SWMR, flushed, one second of data per wall-clock second.
    #[arg(long)]
    realtime: bool,
    /// With --realtime: seconds of data per wall-clock second.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// With --realtime: after each second written, wait until this report.json (of a
    /// `larmon watch` following --out) counts every row written so far, and print the latency
    /// — how long an appended chunk takes to show up in the run's report.
    #[arg(long, value_name = "REPORT_JSON", requires = "realtime")]
    measure_latency: Option<PathBuf>,
    /// Detector configuration (TOML; the layout of its first module is used).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Built-in detector: 2x2 (the default), single-module, sim-module (the simulation
    /// fixtures' module); replaces `detector` of the configuration. `larmon detector show`
    /// prints what it holds.
    #[arg(long, value_name = "NAME")]
    detector: Option<String>,
    /// Write no light file.
    #[arg(long, conflicts_with = "light_seconds")]
    no_light: bool,
    /// Light events only for the muons of the first this many seconds (default: every muon).
    #[arg(long, value_name = "S")]
    light_seconds: Option<f64>,
    /// Light channel map the light file is written for (JSON records or an ndlar_flow
    /// light_module_desc YAML; default: the detector's, as `larmon run` reads it).
    #[arg(long, value_name = "FILE")]
    light_channel_map: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let detector =
        larmon_pipeline::LarmonConfig::load_for(args.config.as_deref(), args.detector.as_deref())?
            .detector;
    let defaults = SimulationConfig::default();
    let config = SimulationConfig {
        run: args.run,
        seed: args.seed,
        duration_s: args.duration_s,
        unix_start: args.unix_start.unwrap_or(defaults.unix_start + u64::from(args.run) * 3600),
        muon_rate_hz: args.muon_rate_hz,
        electron_lifetime_us: args.lifetime_us,
        hot_channels: args.hot_channels,
        noisy_fraction: args.noisy_fraction,
        dead_channels: args.dead_channels,
        ..defaults
    };
    check_memory(config.duration_s, config.muon_rate_hz, available_memory_bytes())?;
    let mut run = simulate(&config, &detector).context("simulating")?;
    if let Some(s) = args.light_seconds {
        anyhow::ensure!(s.is_finite() && s > 0.0, "--light-seconds must be > 0, not {s}");
    }
    let mut light = if args.no_light {
        None
    } else {
        let map = load_channel_map(args.light_channel_map.as_deref(), &detector)?;
        let light_config = LightConfig {
            window_s: args.light_seconds.map(|s| (0.0, s)),
            ..LightConfig::default()
        };
        Some(simulate_light(&run, &detector, &map, &light_config).context("simulating light")?)
    };
    let bar = crate::progress::bar(u64::from(config.duration_s), "s of data");
    bar.set_prefix("writing");
    let pace = Duration::from_secs_f64(1.0 / args.speed.max(1e-3));
    let writing = Instant::now();
    // Rows a packet file holds up to the end of each second: one per message plus its words.
    let mut rows_by_second = vec![0u64; config.duration_s as usize];
    for m in &run.messages {
        rows_by_second[m.second as usize] += 1 + (m.bytes.len() as u64 - 8) / 16;
    }
    let mut latencies = Vec::new();
    let mut rows_written = 0;
    // The light file is written in step with the charge (as the light DAQ runs beside it), on
    // its own thread: rendering waveforms must never hold up the charge writer's pace.
    let light_writer = match &light {
        Some(light) => Some(light.start_writing(&args.out).context("writing the light file")?),
        None => None,
    };
    let (paths, light_writer) = std::thread::scope(|scope| -> Result<_> {
        let (seconds_written, seconds_to_render) = std::sync::mpsc::channel::<f64>();
        let light_thread = match (light_writer, light.as_ref()) {
            (Some(mut writer), Some(light)) => Some(scope.spawn(move || {
                while let Ok(mut until) = seconds_to_render.recv() {
                    // Catch up in one go when the charge got ahead.
                    while let Ok(later) = seconds_to_render.try_recv() {
                        until = later;
                    }
                    writer.write_until(light, until)?;
                }
                Ok::<_, larmon_simulate::SimulationError>(writer)
            })),
            _ => None,
        };
        let paths = run.write(&args.out, args.files, args.realtime, |_, second| {
            bar.set_position(u64::from(second) + 1);
            // The light thread may have stopped on an error: it is reported after the charge.
            let _ = seconds_written.send(f64::from(second) + 1.0);
            rows_written += rows_by_second[second as usize];
            if let Some(report) = &args.measure_latency {
                let appended = Instant::now();
                if wait_for_rows(report, rows_written, Duration::from_secs(60)) {
                    latencies.push(appended.elapsed().as_secs_f64());
                } else {
                    latencies.push(f64::INFINITY);
                }
            }
            if args.realtime {
                let due = writing + pace * (second + 1);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        });
        drop(seconds_written);
        let light_writer = match light_thread {
            Some(thread) => Some(
                thread
                    .join()
                    .map_err(|_| anyhow::anyhow!("the light writer thread panicked"))?
                    .context("writing the light file")?,
            ),
            None => None,
        };
        let paths = paths.with_context(|| format!("writing into {}", args.out.display()))?;
        Ok((paths, light_writer))
    })?;
    bar.finish_and_clear();
    if let (Some(light), Some(writer)) = (&mut light, light_writer) {
        let path = writer.finish(light).context("writing the light file")?;
        let faults = &light.truth.faults;
        println!(
            "light: {} events, {} dead, {} noisy, {} saturating inputs, {} events with a missing board -> {}",
            light.truth.events.len(),
            faults.dead_channels.len(),
            faults.noisy_channels.len(),
            faults.saturating_channels.len(),
            faults.missing_board_events.len(),
            path.display()
        );
    }
    let counts = &run.truth.counts;
    println!(
        "run {}: {} s, {} muons, {} data packets ({} track, {} noise, {} hot), {} messages -> {} file{} in {} ({:.1} s)",
        config.run,
        config.duration_s,
        run.truth.tracks.len(),
        counts.data_packets_by_origin.values().sum::<u64>(),
        counts.data_packets_by_origin.get("track").unwrap_or(&0),
        counts.data_packets_by_origin.get("noise").unwrap_or(&0),
        counts.data_packets_by_origin.get("hot").unwrap_or(&0),
        counts.messages,
        paths.len(),
        if paths.len() == 1 { "" } else { "s" },
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    if !latencies.is_empty() {
        let mut sorted = latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let missed = sorted.iter().filter(|l| l.is_infinite()).count();
        println!(
            "latency append -> report: median {:.2} s, max {:.2} s over {} chunks ({} not seen within 60 s)",
            sorted[sorted.len() / 2],
            sorted.last().copied().unwrap_or(0.0),
            sorted.len(),
            missed
        );
        println!(
            "latencies_s = [{}]",
            latencies.iter().map(|l| format!("{l:.3}")).collect::<Vec<_>>().join(", ")
        );
        if missed > 0 {
            anyhow::bail!(
                "{missed} appended chunks never showed up in {}",
                args.measure_latency.unwrap().display()
            );
        }
    }
    Ok(())
}

/// Polls a report.json until its `host.rows` reaches `rows`; false after `timeout`.
fn wait_for_rows(report: &std::path::Path, rows: u64, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        let seen = std::fs::read(report)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|r| r["host"]["rows"].as_u64())
            .unwrap_or(0);
        if seen >= rows {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Peak memory of the generator per simulated muon: it holds the whole run (charge deposits,
/// hits, messages) until it writes. Measured on the 2x2: 650 MB for 100 s and 2.5 GB for 400 s
/// at 62.5 muons/s (`/usr/bin/time -f %M larmon simulate --no-light …`).
const BYTES_PER_MUON: f64 = 105e3;

/// Refuses a run the generator cannot hold in this machine's available memory, with what to
/// do instead (without it, the kernel kills the process without a word: a 5400 s run was
/// killed at 24 GB).
fn check_memory(duration_s: u32, muon_rate_hz: f64, available: Option<u64>) -> Result<()> {
    let needed = f64::from(duration_s) * muon_rate_hz * BYTES_PER_MUON;
    let Some(available) = available else { return Ok(()) };
    anyhow::ensure!(
        needed <= 0.8 * available as f64,
        "a {duration_s} s run at {muon_rate_hz} muons/s needs about {:.1} GB of memory (the \
         generator holds the whole run until it writes it); {:.1} GB are available. Simulate \
         several shorter runs (--run 1, --run 2, … with --duration-s {}) or fewer muons \
         (--muon-rate-hz)",
        needed / 1e9,
        available as f64 / 1e9,
        ((0.5 * available as f64 / (muon_rate_hz * BYTES_PER_MUON)) as u64).max(1)
    );
    Ok(())
}

/// `MemAvailable` of /proc/meminfo (Linux), bytes.
fn available_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run larger than the available memory is refused with the size and what to do; one
    /// that fits, or a machine that does not say, goes ahead.
    #[test]
    fn a_run_too_big_for_the_memory_is_refused_before_it_starts() {
        let gib = 1u64 << 30;
        let error = check_memory(5400, 62.5, Some(20 * gib)).unwrap_err().to_string();
        assert!(error.contains("needs about 35.4 GB"), "{error}");
        assert!(error.contains("21.5 GB are available"), "{error}");
        assert!(error.contains("--duration-s 1636"), "{error}");
        check_memory(200, 62.5, Some(20 * gib)).unwrap();
        check_memory(5400, 62.5, None).unwrap();
    }
}
