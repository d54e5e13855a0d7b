//! `larmon light`: what is in light-readout files (MPD binary or ndlar_flow HDF5) and the light
//! health flags; `--bench` measures the read + reduce throughput.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use larmon_ingest::light::LightFile;
use larmon_ingest::light::scan::{HealthRules, LightScan};

/// Scan light-readout files: events, boards, baselines, dead / noisy / clipping inputs.
///
/// Reads MPD run files (`mpd_run_*.data`, all 8 ADC64 boards; blocks walked by their lengths, a
/// block still being written ends the file quietly) or ndlar_flow light files (`light/events`,
/// `light/wvfm`), reduces every waveform (baseline and RMS over the first --baseline-samples
/// samples, peak, integral, clipping; 14-bit ADC units) and flags inputs: dead (flat in every
/// waveform), noisy (mean RMS > --noisy-factor × the median input), clipping (reaches the top
/// rail 32764); events with a board missing are listed. --bench repeats the scan and prints the
/// throughput (run a release build; page cache warm after the first pass).
///
/// Examples:
///   larmon light mpd_run_42_p0.data
///   larmon light run42-light-flow.h5 --json
///   larmon light mpd_run_42_p0.data --bench 5
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// MPD (.data) or flow (.h5) light files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Leading samples of a waveform used for the baseline (2x2: 80 of 96 before the trigger).
    #[arg(long, default_value_t = 80)]
    baseline_samples: usize,
    /// An input is noisy above this many times the median RMS.
    #[arg(long, default_value_t = 5.0)]
    noisy_factor: f64,
    /// Channel → detector map: JSON list of {adc, channel, tpc, det, det_type}, or an
    /// ndlar_flow light_module_desc-*.yaml; default: the detector's (2x2: 5.0.0).
    #[arg(long)]
    channel_map: Option<PathBuf>,
    /// Built-in detector whose light map is the default: 2x2 (validated map,
    /// light_module_desc 5.0.0), sim-module (the fixtures' nominal pattern).
    #[arg(long, value_name = "NAME")]
    detector: Option<String>,
    /// Print everything as JSON (with per-input baselines).
    #[arg(long)]
    json: bool,
    /// Measure: repeat the scan for at least this many seconds and print GB/s.
    #[arg(long, value_name = "SECONDS")]
    bench: Option<f64>,
}

fn scan_file(path: &std::path::Path, baseline_samples: usize) -> Result<LightScan> {
    let mut file = LightFile::open(path)?;
    let mut scan = LightScan::new(baseline_samples);
    file.for_each_event(|event| scan.add_event(event))?;
    if let LightFile::Mpd(reader) = &file {
        if reader.incomplete_tail() {
            eprintln!(
                "note: {}: the last block is incomplete (file still being written?); stopped at byte {}",
                path.display(),
                reader.offset()
            );
        }
    }
    Ok(scan)
}

pub fn run(args: Args) -> Result<()> {
    let detector =
        larmon_pipeline::LarmonConfig::load_for(None, args.detector.as_deref())?.detector;
    let map =
        larmon_pipeline::input::light::load_channel_map(args.channel_map.as_deref(), &detector)?;
    let rules = HealthRules { noisy_factor: args.noisy_factor };
    if let Some(seconds) = args.bench {
        for path in &args.files {
            let bytes = std::fs::metadata(path)?.len() as f64;
            let started = Instant::now();
            let mut rates = Vec::new();
            while rates.len() < 3 || started.elapsed() < Duration::from_secs_f64(seconds) {
                let t = Instant::now();
                let scan = scan_file(path, args.baseline_samples)?;
                std::hint::black_box(scan.waveforms);
                rates.push(bytes / t.elapsed().as_secs_f64().max(1e-9));
            }
            rates.sort_by(f64::total_cmp);
            println!(
                "{}: read + reduce {:.2} GB/s best, {:.2} GB/s median over {} passes ({:.1} MB, one core)",
                path.display(),
                rates[rates.len() - 1] / 1e9,
                rates[rates.len() / 2] / 1e9,
                rates.len(),
                bytes / 1e6
            );
        }
        return Ok(());
    }
    let mut all = Vec::new();
    for path in &args.files {
        let scan = scan_file(path, args.baseline_samples)?;
        let flagged = scan.flagged(Some(&map), &rules);
        if args.json {
            let inputs: Vec<serde_json::Value> = map
                .channels()
                .filter_map(|c| {
                    let stats = scan.input(c.adc, c.channel)?;
                    Some(serde_json::json!({
                        "adc": c.adc, "channel": c.channel, "tpc": c.tpc, "det": c.det,
                        "det_type": c.det_type,
                        "baseline_adc": stats.baseline_sum / stats.totals.waveforms as f64,
                        "rms_adc": stats.totals.mean_rms(),
                        "waveforms": stats.totals.waveforms,
                        "clipped_waveforms": stats.totals.clipped_waveforms,
                    }))
                })
                .collect();
            all.push(serde_json::json!({
                "file": path, "events": scan.events, "waveforms": scan.waveforms,
                "unix_ms": scan.unix_ms, "missing_boards": scan.missing_boards,
                "flagged": flagged, "inputs": inputs,
            }));
            continue;
        }
        println!("{}", path.display());
        println!("  events          {} ({} waveforms)", scan.events, scan.waveforms);
        if let Some((first, last)) = scan.unix_ms {
            println!("  time span       {first} .. {last} Unix ms");
        }
        println!(
            "  missing boards  {} (event, adc): {:?}",
            scan.missing_boards.len(),
            scan.missing_boards
        );
        for f in &flagged {
            println!(
                "  {:<9} adc {} channel {:>2}  rms {:.1} ADC  clipped in {} waveforms",
                format!("{:?}", f.kind).to_lowercase(),
                f.adc,
                f.channel,
                f.rms,
                f.clipped_waveforms
            );
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(())
}
