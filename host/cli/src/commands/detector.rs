//! `larmon detector show|check`: what detector description is in force (modules, io_groups,
//! layout and pitch per module, placement) and how many of a file's channels it knows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Context, Result};
use larmon_calibrate::DetectorConfig;
use larmon_calibrate::detectors::{DETECTOR_NAMES, built_in_detector};
use larmon_calibrate::geometry::Geometry;
use larmon_ingest::read::{LarpixReader, ReadOptions, is_flow_file, read_flow_hits};
use larmon_pipeline::LarmonConfig;

/// The detector description larmon uses: show it, or check a file against it.
///
/// The built-in default is the DUNE ND-LAr 2x2: four modules on io_groups 1-8 with the
/// per-module layouts of ndlar_flow's layouts_v5 (module 3: 2.5.16, 3.87975 mm pitch).
/// Others: `single-module`, `sim-module` (the simulation fixtures). A configuration file may
/// name one (`detector = "NAME"`), list its own `[[modules]]` with layout YAML files, and place
/// them with ndlar_flow's detector YAML (`flow_detector_file = "2x2.yaml"`).
///
/// Examples:
///   larmon detector show
///   larmon detector show --detector sim-module --json
///   larmon detector check packet-0060154-2025_11_20_07_55_40_CST.h5
///   larmon detector check run2-flow.hdf5 --config larmon.toml
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Print the detector in force: modules, io_groups, layout, pitch, placement, pixels.
    Show {
        #[command(flatten)]
        chosen: Chosen,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Count a file's channels (raw, packet or ndlar_flow file) the detector knows.
    Check {
        /// The file.
        file: PathBuf,
        #[command(flatten)]
        chosen: Chosen,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct Chosen {
    /// Configuration file (TOML), as given to `larmon run`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Built-in detector: 2x2 (the default), single-module, sim-module.
    #[arg(long, value_name = "NAME")]
    detector: Option<String>,
}

impl Chosen {
    fn load(&self) -> Result<DetectorConfig> {
        Ok(LarmonConfig::load_for(self.config.as_deref(), self.detector.as_deref())?.detector)
    }
}

pub fn run(args: Args) -> Result<()> {
    match args.action {
        Action::Show { chosen, json } => show(&chosen.load()?, json),
        Action::Check { file, chosen, json } => check(&file, &chosen.load()?, json),
    }
}

/// Per-module facts of a geometry.
fn modules(config: &DetectorConfig, geometry: &Geometry) -> Result<Vec<serde_json::Value>> {
    let modules = config.modules_in_force()?;
    let layouts = config.layout_names()?;
    Ok(modules
        .iter()
        .zip(layouts)
        .map(|(m, layout)| {
            let tiles: Vec<_> = geometry.tiles.iter().filter(|t| t.module == m.id).collect();
            let tile_index = |t: &&larmon_calibrate::geometry::Tile| {
                geometry.tiles.iter().position(|x| std::ptr::eq(x, *t)).unwrap_or(0) as u16
            };
            let indices: BTreeSet<u16> = tiles.iter().map(tile_index).collect();
            let pixels = geometry.channels().iter().filter(|c| indices.contains(&c.tile_index));
            let io_groups: BTreeSet<u8> = pixels.clone().map(|c| c.io_group).collect();
            let tpcs: BTreeSet<u8> = tiles.iter().map(|t| t.tpc).collect();
            serde_json::json!({
                "module": m.id,
                "io_groups": io_groups,
                "tpcs": tpcs,
                "layout": layout,
                "pitch_mm": tiles.first().map(|t| t.pitch_mm),
                "tiles": tiles.len(),
                "pixels": pixels.count(),
                "offset_mm": m.offset_mm,
                "drift_length_mm": m.drift_length_mm,
            })
        })
        .collect())
}

fn show(config: &DetectorConfig, json: bool) -> Result<()> {
    let geometry = config.geometry()?;
    let modules = modules(config, &geometry)?;
    let custom = !config.modules.is_empty();
    let name = if custom { "(the configuration's [[modules]])" } else { &config.detector };
    let summary =
        if custom { String::new() } else { built_in_detector(&config.detector)?.summary.into() };
    let light = format!(
        "{} (--light-channel-map FILE replaces it)",
        larmon_pipeline::input::light::default_channel_map_name(config)
    );
    if json {
        let out = serde_json::json!({
            "detector": name,
            "summary": summary,
            "built_in": DETECTOR_NAMES,
            "modules": modules,
            "pixels": geometry.channels().len(),
            "drift_velocity_mm_per_us": config.drift_velocity(),
            "flow_detector_file": config.flow_detector_file,
            "light_channel_map": light,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("detector: {name}");
    if !summary.is_empty() {
        println!("  {summary}");
    }
    if let Some(file) = &config.flow_detector_file {
        println!("  placed by {}", file.display());
    }
    println!(
        "{:>6}  {:<9} {:<7} {:>9} {:>6} {:>8}  {:<28} layout",
        "module", "io_groups", "tpcs", "pitch mm", "tiles", "pixels", "offset mm (x, y, z drift)"
    );
    for m in &modules {
        let list = |key: &str| {
            m[key].as_array().map_or(String::new(), |a| {
                a.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")
            })
        };
        let offset = m["offset_mm"].as_array().map_or(String::new(), |a| {
            a.iter()
                .map(|v| format!("{:.1}", v.as_f64().unwrap_or(0.0)))
                .collect::<Vec<_>>()
                .join(", ")
        });
        println!(
            "{:>6}  {:<9} {:<7} {:>9} {:>6} {:>8}  {:<28} {}",
            m["module"].to_string(),
            list("io_groups"),
            list("tpcs"),
            m["pitch_mm"].to_string(),
            m["tiles"].to_string(),
            m["pixels"].to_string(),
            format!("[{offset}]"),
            m["layout"].as_str().unwrap_or("")
        );
    }
    println!("pixels: {}", geometry.channels().len());
    println!("drift velocity: {:.4} mm/µs", config.drift_velocity());
    println!("light channel map: {light}");
    println!("built-in detectors: {}", DETECTOR_NAMES.join(", "));
    Ok(())
}

/// Distinct channels of a file as (io_group, io_channel, chip, channel) → hits.
fn file_channels(file: &std::path::Path) -> Result<BTreeMap<(u8, u8, u8, u8), u64>> {
    let mut channels = BTreeMap::new();
    if is_flow_file(file) {
        for h in read_flow_hits(file)? {
            let key = (h.io_group as u8, h.io_channel as u8, h.chip_id as u8, h.channel_id as u8);
            *channels.entry(key).or_insert(0) += 1;
        }
        return Ok(channels);
    }
    let reader = LarpixReader::open(file, &ReadOptions::default())?;
    for batch in reader {
        let p = batch?;
        for i in 0..p.len() {
            if p.packet_type[i] == 0 && p.valid_parity[i] != 0 {
                let key = (p.io_group[i], p.io_channel[i], p.chip_id[i], p.channel_id[i]);
                *channels.entry(key).or_insert(0) += 1;
            }
        }
    }
    Ok(channels)
}

fn check(file: &std::path::Path, config: &DetectorConfig, json: bool) -> Result<()> {
    let geometry = config.geometry()?;
    let channels = file_channels(file)
        .with_context(|| format!("reading the channels of {}", file.display()))?;
    let (mut known, mut other_uart, mut unknown) = (0usize, 0usize, Vec::new());
    let (mut hits_known, mut hits_unknown) = (0u64, 0u64);
    for (&(g, c, chip, ch), &hits) in &channels {
        match geometry.identify(g, c, chip, ch) {
            Some(identity) => {
                known += 1;
                hits_known += hits;
                if identity.io_channel != c {
                    other_uart += 1;
                }
            }
            None => {
                unknown.push(format!("{g}-{c}-{chip}-{ch}"));
                hits_unknown += hits;
            }
        }
    }
    let detector = if config.modules.is_empty() { config.detector.as_str() } else { "[[modules]]" };
    if json {
        let out = serde_json::json!({
            "file": file,
            "detector": detector,
            "channels": channels.len(),
            "known": known,
            "read_on_another_uart_of_their_tile": other_uart,
            "unknown": unknown.len(),
            "unknown_examples": unknown.iter().take(20).collect::<Vec<_>>(),
            "hits_on_known_channels": hits_known,
            "hits_on_unknown_channels": hits_unknown,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{} against detector {detector}:", file.display());
    println!(
        "  {} channels with data: {known} known ({other_uart} read on another UART of their \
         tile than the layout lists), {} unknown",
        channels.len(),
        unknown.len()
    );
    println!("  hits: {hits_known} on known channels, {hits_unknown} on unknown ones");
    if !unknown.is_empty() {
        let shown: Vec<_> = unknown.iter().take(10).cloned().collect();
        println!("  unknown (io_group-io_channel-chip-channel): {}", shown.join(" "));
        if known == 0 {
            println!("  no channel is known: is this the right detector? (--detector, --config)");
        }
    }
    Ok(())
}
