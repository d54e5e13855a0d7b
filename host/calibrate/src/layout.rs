//! Pixel layouts of one module, read from the files the 2x2 uses and from larmon's own compact
//! form of them.
//!
//! - [`PixelLayout::from_yaml`] reads the larpix **multi-tile** layout YAML as ndlar_flow and
//!   larnd-sim ship it (`multi_tile_layout-2.3.16.yaml`, `2.4.16`, `2.5.16`, every file of
//!   ndlar_flow's `layouts_v5/`): `pixel_pitch`, `chip_channel_to_position`
//!   (`chip·1000 + channel → [col, row]`), `tile_chip_to_io` (`tile → chip → io_group·1000 +
//!   io_channel`), `tile_positions` (`[drift, y, x]` mm), `tile_orientations`
//!   (`[drift_dir, y_flip, x_flip]`), `tile_indeces` (`[anode, tile]`, or `[module, anode, tile]`
//!   in 2.3.16) and optional `tpc_centers`. A single-tile larpix-geometry layout (`chips` and
//!   `pixels` lists) is refused with a message that says so.
//! - [`PixelLayout::from_compact`] / [`PixelLayout::to_compact`]: larmon's compact form of the
//!   same facts, used for the built-in detectors (`data/detectors/`): a TOML file with the tiles
//!   (position, orientation, which chips each UART reads, as chip ranges) that names a shared
//!   single-tile pixel map (`*.pixels`: per chip, the column and row of its 64 channels).
//!   Converting a real layout to the compact form and back gives the same [`PixelLayout`]
//!   (tested on every layout of `../shared/real` when it exists).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::error::CalibrationError;

/// One pixel layout: a module's tiles and the pixel map of its tile type.
#[derive(Clone, Debug, PartialEq)]
pub struct PixelLayout {
    /// `multitile_layout_version` of the source (e.g. `2.5.16`), or empty.
    pub version: String,
    /// Pixel pitch, mm.
    pub pitch_mm: f64,
    /// `chip_id·1000 + channel_id` → `[column, row]` of the pixel on its tile.
    pub pixels: BTreeMap<u32, [i64; 2]>,
    /// Every tile.
    pub tiles: Vec<TileLayout>,
    /// Offsets of the anodes (TPCs) in the layout's frame, mm (`x, y, z`); usually zero.
    pub tpc_centers: BTreeMap<u16, [f64; 3]>,
}

/// One tile of a layout.
#[derive(Clone, Debug, PartialEq)]
pub struct TileLayout {
    /// Tile number within the module (1–16 in the 2x2).
    pub tile: u16,
    /// Anode (TPC) of the module the tile sits on (1 or 2).
    pub anode: u16,
    /// Tile centre, mm: `[drift, y, x]` as in the layout files.
    pub position_mm: [f64; 3],
    /// `[drift_dir, y_flip, x_flip]`.
    pub orientation: [f64; 3],
    /// `(chip_id, io_group, io_channel)` of every chip, as the layout lists it.
    pub chips: Vec<(u8, u8, u8)>,
}

/// The multi-tile YAML, as written by larpix-geometry.
#[derive(Deserialize)]
struct MultiTileYaml {
    #[serde(default)]
    multitile_layout_version: Option<serde_norway::Value>,
    pixel_pitch: f64,
    chip_channel_to_position: BTreeMap<u32, [i64; 2]>,
    tile_chip_to_io: BTreeMap<u16, BTreeMap<u16, u32>>,
    tile_positions: BTreeMap<u16, [f64; 3]>,
    tile_orientations: BTreeMap<u16, [f64; 3]>,
    tile_indeces: BTreeMap<u16, Vec<u16>>,
    #[serde(default)]
    tpc_centers: BTreeMap<u16, [f64; 3]>,
}

/// The compact TOML form (see the module documentation).
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CompactLayout {
    source: String,
    version: String,
    pitch_mm: f64,
    pixel_map: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    tpc_centers_mm: BTreeMap<String, [f64; 3]>,
    tiles: Vec<CompactTile>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CompactTile {
    tile: u16,
    anode: u16,
    position_mm: [f64; 3],
    orientation: [f64; 3],
    io_group: u8,
    /// `"io_channel:first-last,chip …"`, e.g. `"1:11-34 2:35-59,61"`.
    uarts: String,
}

fn layout_error(what: impl Into<String>) -> CalibrationError {
    CalibrationError::Layout(what.into())
}

impl PixelLayout {
    /// Reads a larpix multi-tile layout YAML.
    pub fn from_yaml(text: &str) -> Result<Self, CalibrationError> {
        let value: serde_norway::Value =
            serde_norway::from_str(text).map_err(|e| layout_error(e.to_string()))?;
        let has = |key: &str| value.get(key).is_some();
        if !has("chip_channel_to_position") && has("chips") && has("pixels") {
            return Err(layout_error(
                "this is a single-tile larpix-geometry layout (`chips`/`pixels` lists, e.g. \
                 layout-2.4.0.yaml); larmon needs the multi-tile layout of a whole module \
                 (`multi_tile_layout-*.yaml`, with `tile_chip_to_io` and \
                 `chip_channel_to_position`)",
            ));
        }
        let file: MultiTileYaml =
            serde_norway::from_value(value).map_err(|e| layout_error(e.to_string()))?;
        let version = match &file.multitile_layout_version {
            Some(serde_norway::Value::String(s)) => s.clone(),
            Some(other) => serde_norway::to_string(other).unwrap_or_default().trim().to_owned(),
            None => String::new(),
        };
        let mut tiles = Vec::new();
        for (&tile, chips) in &file.tile_chip_to_io {
            let missing = |what: &str| layout_error(format!("tile {tile} has no {what}"));
            let position =
                *file.tile_positions.get(&tile).ok_or_else(|| missing("tile_positions"))?;
            let orientation =
                *file.tile_orientations.get(&tile).ok_or_else(|| missing("tile_orientations"))?;
            let indices = file.tile_indeces.get(&tile).ok_or_else(|| missing("tile_indeces"))?;
            // 2.4.x/2.5.x: [anode, tile]; 2.3.16: [module, anode, tile].
            let anode = match indices.as_slice() {
                [anode, _] => *anode,
                [_, anode, _] => *anode,
                _ => return Err(missing("[anode, tile] in tile_indeces")),
            };
            let mut list = Vec::with_capacity(chips.len());
            for (&chip, &io) in chips {
                let (io_group, io_channel) = (io / 1000, io % 1000);
                if chip > 255 || io_group > 255 || io_channel == 0 || io_channel > 255 {
                    return Err(layout_error(format!(
                        "tile {tile}: chip {chip} at io {io} is not a chip on an io_group·1000 + \
                         io_channel"
                    )));
                }
                list.push((chip as u8, io_group as u8, io_channel as u8));
            }
            tiles.push(TileLayout { tile, anode, position_mm: position, orientation, chips: list });
        }
        let layout = Self {
            version,
            pitch_mm: file.pixel_pitch,
            pixels: file.chip_channel_to_position,
            tiles,
            tpc_centers: file.tpc_centers,
        };
        layout.check()?;
        Ok(layout)
    }

    /// Checks what the geometry relies on: a positive pitch, chip/channel ids in range.
    fn check(&self) -> Result<(), CalibrationError> {
        if !(self.pitch_mm.is_finite() && self.pitch_mm > 0.0) {
            return Err(layout_error(format!("pixel_pitch {}", self.pitch_mm)));
        }
        if let Some(key) = self.pixels.keys().find(|&&k| k / 1000 > 255 || k % 1000 > 63) {
            return Err(layout_error(format!(
                "chip_channel_to_position key {key} is not chip·1000 + channel (channel 0–63)"
            )));
        }
        if self.tiles.is_empty() {
            return Err(layout_error("no tiles (tile_chip_to_io is empty)"));
        }
        Ok(())
    }

    /// Reads the compact form; `pixel_map` resolves the named single-tile pixel map to its text.
    pub fn from_compact(
        text: &str,
        pixel_map: impl Fn(&str) -> Option<&'static str>,
    ) -> Result<Self, CalibrationError> {
        let compact: CompactLayout =
            toml::from_str(text).map_err(|e| layout_error(e.to_string()))?;
        let map_text = pixel_map(&compact.pixel_map)
            .ok_or_else(|| layout_error(format!("no pixel map {:?}", compact.pixel_map)))?;
        let pixels = parse_pixel_map(map_text)?;
        let mut tiles = Vec::new();
        for t in compact.tiles {
            let mut chips = Vec::new();
            for uart in t.uarts.split_whitespace() {
                let bad = || layout_error(format!("tile {}: uarts entry {uart:?}", t.tile));
                let (io_channel, ranges) = uart.split_once(':').ok_or_else(bad)?;
                let io_channel: u8 = io_channel.parse().map_err(|_| bad())?;
                for range in ranges.split(',') {
                    let (first, last) = range.split_once('-').unwrap_or((range, range));
                    let (first, last): (u8, u8) =
                        (first.parse().map_err(|_| bad())?, last.parse().map_err(|_| bad())?);
                    for chip in first..=last {
                        chips.push((chip, t.io_group, io_channel));
                    }
                }
            }
            chips.sort_unstable();
            tiles.push(TileLayout {
                tile: t.tile,
                anode: t.anode,
                position_mm: t.position_mm,
                orientation: t.orientation,
                chips,
            });
        }
        let tpc_centers = compact
            .tpc_centers_mm
            .into_iter()
            .map(|(k, v)| Ok((k.parse().map_err(|_| layout_error(format!("tpc {k:?}")))?, v)))
            .collect::<Result<_, CalibrationError>>()?;
        let layout = Self {
            version: compact.version,
            pitch_mm: compact.pitch_mm,
            pixels,
            tiles,
            tpc_centers,
        };
        layout.check()?;
        Ok(layout)
    }

    /// Writes the compact form: the TOML naming `pixel_map`, and the pixel map's text.
    pub fn to_compact(&self, source: &str, pixel_map: &str) -> (String, String) {
        let tiles = self
            .tiles
            .iter()
            .map(|t| {
                let io_group = t.chips.first().map_or(0, |c| c.1);
                let mut by_uart: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
                for &(chip, _, io_channel) in &t.chips {
                    by_uart.entry(io_channel).or_default().push(chip);
                }
                let uarts = by_uart
                    .iter()
                    .map(|(io_channel, chips)| format!("{io_channel}:{}", chip_ranges(chips)))
                    .collect::<Vec<_>>()
                    .join(" ");
                CompactTile {
                    tile: t.tile,
                    anode: t.anode,
                    position_mm: t.position_mm,
                    orientation: t.orientation,
                    io_group,
                    uarts,
                }
            })
            .collect();
        let compact = CompactLayout {
            source: source.to_owned(),
            version: self.version.clone(),
            pitch_mm: self.pitch_mm,
            pixel_map: pixel_map.to_owned(),
            tpc_centers_mm: self
                .tpc_centers
                .iter()
                .filter(|(_, c)| c.iter().any(|v| *v != 0.0))
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            tiles,
        };
        let toml = toml::to_string(&compact).expect("a compact layout serialises");
        let mut map = String::from(
            "# larmon single-tile pixel map: `chip: col,row` for channels 0-63 ('-' = not \
             connected)\n",
        );
        let mut chips: BTreeMap<u32, Vec<Option<[i64; 2]>>> = BTreeMap::new();
        for (&key, &pos) in &self.pixels {
            chips.entry(key / 1000).or_insert_with(|| vec![None; 64])[(key % 1000) as usize] =
                Some(pos);
        }
        for (chip, channels) in chips {
            let _ = write!(map, "{chip}:");
            for c in channels {
                match c {
                    Some([col, row]) => {
                        let _ = write!(map, " {col},{row}");
                    }
                    None => map.push_str(" -"),
                }
            }
            map.push('\n');
        }
        (toml, map)
    }

    /// True when every tile's anode positions agree with zero `tpc_centers` (the compact form
    /// drops all-zero centres, so two layouts compare equal after [`Self::normalised`]).
    pub fn normalised(mut self) -> Self {
        self.tpc_centers.retain(|_, c| c.iter().any(|v| *v != 0.0));
        for t in &mut self.tiles {
            t.chips.sort_unstable();
        }
        self
    }
}

/// `11,12,13,15` → `11-13,15`.
fn chip_ranges(chips: &[u8]) -> String {
    let mut sorted = chips.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    out.join(",")
}

/// Reads a `*.pixels` single-tile pixel map.
fn parse_pixel_map(text: &str) -> Result<BTreeMap<u32, [i64; 2]>, CalibrationError> {
    let mut pixels = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || layout_error(format!("pixel map line {}: {line:?}", number + 1));
        let (chip, rest) = line.split_once(':').ok_or_else(bad)?;
        let chip: u32 = chip.trim().parse().map_err(|_| bad())?;
        for (channel, entry) in rest.split_whitespace().enumerate() {
            if entry == "-" {
                continue;
            }
            let (col, row) = entry.split_once(',').ok_or_else(bad)?;
            let pos = [col.parse().map_err(|_| bad())?, row.parse().map_err(|_| bad())?];
            pixels.insert(chip * 1000 + channel as u32, pos);
        }
    }
    Ok(pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOMINAL: &str = include_str!("../data/layout-2x2-nominal.yaml");

    #[test]
    fn a_layout_survives_the_compact_form_unchanged() {
        let layout = PixelLayout::from_yaml(NOMINAL).unwrap();
        assert_eq!((layout.tiles.len(), layout.pixels.len()), (16, 4900));
        let (toml, map) = layout.to_compact("test", "test-map");
        let leaked: &'static str = Box::leak(map.into_boxed_str());
        let back = PixelLayout::from_compact(&toml, |name| (name == "test-map").then_some(leaked))
            .unwrap();
        assert_eq!(back, layout.normalised());
        assert!(toml.len() < 8_000, "{} bytes", toml.len());
    }

    #[test]
    fn a_single_tile_layout_is_refused_with_a_reason() {
        let err = PixelLayout::from_yaml("x: 0\ny: 0\nchips: []\npixels: []\n").unwrap_err();
        assert!(err.to_string().contains("single-tile"), "{err}");
    }

    #[test]
    fn chip_ranges_are_compact() {
        assert_eq!(chip_ranges(&[15, 11, 12, 13, 20]), "11-13,15,20");
    }
}
