//! `larmon light`: what is in light-readout files (MPD binary or ndlar_flow HDF5) and the light
//! health flags; `--bench` measures the read + reduce throughput.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
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
///   larmon light mpd_run_42_p0.data --export pulses.parquet
///
/// --export writes the reduced light product (one file in, one out): per event and input the
/// baseline, noise, clipped samples and pulses (time, amplitude, integral; threshold
/// --pulse-sigma × the noise, at least --pulse-min-adc) as Parquet, with its MetaCat
/// declaration `<out>.json` naming the raw file as parent, and prints the size against the raw
/// file (docs/data-model.md).
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
    /// Write the reduced light product of the (one) file to this Parquet file.
    #[arg(long, value_name = "OUT.parquet")]
    export: Option<PathBuf>,
    /// Pulse threshold in units of the waveform's baseline noise (with --export).
    #[arg(long, default_value_t = 5.0)]
    pulse_sigma: f32,
    /// Smallest pulse threshold, 14-bit ADC counts (with --export).
    #[arg(long, default_value_t = 10.0)]
    pulse_min_adc: f32,
    /// Overwrite the export file.
    #[arg(short, long)]
    force: bool,
}

/// `--export`: the reduced light product of one file, its declaration, and its size.
fn export_pulses(args: &Args, out: &std::path::Path) -> Result<()> {
    use larmon_ingest::light::pulses::{PulseBatchBuilder, PulseFinder, light_pulses_schema};
    let [input] = args.files.as_slice() else {
        anyhow::bail!("--export takes one light file ({} given)", args.files.len());
    };
    if out.extension().is_none_or(|e| e != "parquet") {
        anyhow::bail!("{}: --export writes Parquet: give a .parquet file", out.display());
    }
    if out.exists() && !args.force {
        anyhow::bail!("{}: already exists (use --force to overwrite)", out.display());
    }
    let started = Instant::now();
    let finder = PulseFinder {
        baseline_samples: args.baseline_samples,
        sigma: args.pulse_sigma,
        min_adc: args.pulse_min_adc,
    };
    let mut file = LightFile::open(input)?;
    let temp = out.with_extension("parquet.partial");
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&temp).with_context(|| format!("creating {}", temp.display()))?,
        light_pulses_schema(),
        Some(props),
    )?;
    let mut builder = PulseBatchBuilder::new(finder);
    let (mut events, mut waveforms) = (0u64, 0u64);
    let mut failure = None;
    file.for_each_event(|event| {
        events += 1;
        waveforms += event.waveforms.len() as u64;
        builder.add(event);
        if builder.rows() >= 1 << 16 && failure.is_none() {
            failure = writer.write(&builder.finish()).err();
        }
    })?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    writer.write(&builder.finish())?;
    writer.close()?;
    std::fs::rename(&temp, out)?;
    let raw = std::fs::metadata(input)?.len();
    let reduced = std::fs::metadata(out)?.len();
    // The declaration: the raw file's run and times, this file's bytes, the raw file as parent.
    let parent =
        larmon_metadata::extract_light(input, &larmon_metadata::MetadataOptions::default())?;
    let (adler32, size) = larmon_catalog::Adler32::of_file(out)?;
    let mut metadata = parent.metadata.clone();
    metadata.insert("core.data_tier".into(), "hit-reconstructed".into());
    metadata.insert("core.file_format".into(), "parquet".into());
    metadata.insert("core.application.name".into(), "larmon light --export".into());
    metadata.insert("dune.light_pulses".into(), builder.pulses_found().into());
    metadata.insert("dune.light_waveforms".into(), waveforms.into());
    let declaration = larmon_catalog::Declaration {
        namespace: parent.namespace.clone(),
        name: out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        size,
        checksums: [("adler32".to_string(), adler32.to_string())].into(),
        metadata,
        parents: Vec::new(),
    };
    declaration.validate().map_err(anyhow::Error::msg)?;
    let mut json = serde_json::to_value(&declaration)?;
    json["parents"] = serde_json::json!([{ "did": parent.did() }]);
    let sidecar = std::path::PathBuf::from(format!("{}.json", out.display()));
    std::fs::write(&sidecar, serde_json::to_string_pretty(&json)?)?;
    println!(
        "{}: {events} events, {waveforms} waveforms, {} pulses -> {} ({} bytes, {:.1} % of the \
         raw {} bytes: {:.0}x smaller) and {}, in {:.2} s",
        input.display(),
        builder.pulses_found(),
        out.display(),
        reduced,
        100.0 * reduced as f64 / raw.max(1) as f64,
        raw,
        raw as f64 / reduced.max(1) as f64,
        sidecar.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
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
    if let Some(out) = &args.export {
        return export_pulses(&args, out);
    }
    if let Some(seconds) = args.bench {
        for path in &args.files {
            let bytes = std::fs::metadata(path)?.len() as f64;
            let started = Instant::now();
            let mut rates = Vec::new();
            while rates.len() < 3 || started.elapsed() < super::seconds(seconds) {
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
