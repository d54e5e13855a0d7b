//! Writes larmon's compact form of a multi-tile pixel layout YAML (how the built-in detectors
//! in `host/calibrate/data/detectors/` were made from ndlar_flow's files):
//!
//! ```text
//! cargo run -p larmon-calibrate --example compact_layout -- LAYOUT.yaml OUT.toml PIXEL_MAP_NAME "SOURCE"
//! ```
//!
//! It writes `OUT.toml` and, next to it, `PIXEL_MAP_NAME.pixels`; if that pixel map already
//! exists it must be identical (two layouts of one tile type share it).

use std::path::PathBuf;

use anyhow::{Context, bail};
use larmon_calibrate::layout::PixelLayout;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, map_name, source] = args.as_slice() else {
        bail!("usage: compact_layout LAYOUT.yaml OUT.toml PIXEL_MAP_NAME SOURCE");
    };
    let text = std::fs::read_to_string(input).with_context(|| input.clone())?;
    let layout = PixelLayout::from_yaml(&text).with_context(|| input.clone())?;
    let (toml, map) = layout.to_compact(source, map_name);
    let output = PathBuf::from(output);
    let map_path = output.with_file_name(format!("{map_name}.pixels"));
    if let Ok(existing) = std::fs::read_to_string(&map_path) {
        if existing != map {
            bail!(
                "{} exists and differs: another tile type needs another name",
                map_path.display()
            );
        }
    }
    std::fs::write(&map_path, map).with_context(|| map_path.display().to_string())?;
    std::fs::write(&output, toml).with_context(|| output.display().to_string())?;
    println!("{} ({} tiles, pitch {} mm)", output.display(), layout.tiles.len(), layout.pitch_mm);
    Ok(())
}
