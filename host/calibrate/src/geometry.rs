//! Pixel geometry: the larpix multi-tile layout YAML (larpix-formats.md §3) turned into dense
//! lookup tables, so (io_group, io_channel, chip_id, channel_id) → pixel position is two array
//! reads per packet.
//!
//! Coordinates (mm): `x`, `y` in the anode (pixel) plane, `z` along the drift; a hit at drift
//! distance `d` sits at `z = anode_z + drift_dir · d`. The io_channel lookup is network-agnostic:
//! every io_channel of a tile's group of four (`(io_channel − 1) / 4`) maps to that tile, and a
//! chip not listed for the io_channel it was read on is still found on its tile (2x2 data need
//! this: chips are re-routed between the UARTs of a tile).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::CalibrationError;

/// One pixel tile of one module.
#[derive(Clone, Debug, PartialEq)]
pub struct Tile {
    /// Tile number (global over modules: `tile + 16·(module − 1)` in a 2x2-style config).
    pub id: u16,
    /// Module (1-based).
    pub module: u8,
    /// Anode / TPC id within the detector (global: `anode + 2·(module − 1)`).
    pub tpc: u8,
    /// Tile centre in the pixel plane (x, y), mm, module offset included.
    pub center_xy: [f64; 2],
    /// Anode plane position along the drift axis, mm, module offset included.
    pub anode_z: f64,
    /// +1 or −1: the direction in which z grows away from this anode.
    pub drift_dir: f64,
    /// Flips applied to the local pixel x, y.
    pub flip_xy: [f64; 2],
    /// Anode-to-cathode distance, mm: the cathode is at `anode_z + drift_dir · drift_length_mm`.
    pub drift_length_mm: f64,
}

/// A connected channel as the layout lists it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayoutChannel {
    /// IO group (module offset included).
    pub io_group: u8,
    /// UART channel the layout lists for the chip.
    pub io_channel: u8,
    /// Chip id.
    pub chip_id: u8,
    /// Channel id.
    pub channel_id: u8,
    /// Index into [`Geometry::tiles`].
    pub tile_index: u16,
}

/// Where a channel's pixel is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PixelPosition {
    /// Index into [`Geometry::tiles`].
    pub tile_index: u16,
    /// Pixel centre x, mm.
    pub x: f64,
    /// Pixel centre y, mm.
    pub y: f64,
}

/// The raw layout file, as the larpix multi-tile schema writes it.
#[derive(Deserialize)]
struct LayoutFile {
    pixel_pitch: f64,
    chip_channel_to_position: BTreeMap<u32, [i64; 2]>,
    tile_chip_to_io: BTreeMap<u16, BTreeMap<u16, u32>>,
    tile_positions: BTreeMap<u16, [f64; 3]>,
    tile_orientations: BTreeMap<u16, [f64; 3]>,
    tile_indeces: BTreeMap<u16, Vec<u16>>,
    #[serde(default)]
    tpc_centers: BTreeMap<u16, [f64; 3]>,
}

/// Placement of one layout file in the detector.
#[derive(Clone, Debug, PartialEq)]
pub struct ModulePlacement {
    /// Module number (1-based).
    pub module: u8,
    /// Added to the layout's io_groups (2x2: `2·(module − 1)`).
    pub io_group_offset: u8,
    /// Added to every position, mm (x, y, z with z along the drift).
    pub offset_mm: [f64; 3],
    /// Anode-to-cathode distance, mm.
    pub drift_length_mm: f64,
}

/// Dense lookup tables for every module of the detector.
#[derive(Clone, Debug)]
pub struct Geometry {
    /// Every tile.
    pub tiles: Vec<Tile>,
    /// Pixel pitch, mm.
    pub pixel_pitch: f64,
    /// (io_group, io_channel group of 4) → tile index + 1 (0 = none): 256 × 64 entries.
    tile_by_io: Vec<u16>,
    /// (io_group, chip_id) → tile index + 1, for chips found on a tile other than the one their
    /// io_channel points at (read on a neighbouring UART): 256 × 256 entries.
    tile_by_chip: Vec<u16>,
    /// (layout index, chip_id, channel_id) → local (x, y) before flips, mm; NaN = unconnected.
    local_xy: Vec<[f64; 2]>,
    /// Layout index of each tile.
    tile_layout: Vec<u16>,
    /// Every connected channel, in layout order.
    channels: Vec<LayoutChannel>,
}

const IO_GROUPS: usize = 256;
const CHANNEL_GROUPS: usize = 64;
const PIXELS_PER_LAYOUT: usize = 256 * 64;

impl Geometry {
    /// Builds the geometry from layout YAML texts, each placed as a module.
    pub fn from_layouts(layouts: &[(&str, ModulePlacement)]) -> Result<Self, CalibrationError> {
        let mut geometry = Geometry {
            tiles: Vec::new(),
            pixel_pitch: 0.0,
            tile_by_io: vec![0; IO_GROUPS * CHANNEL_GROUPS],
            tile_by_chip: vec![0; IO_GROUPS * 256],
            local_xy: Vec::new(),
            tile_layout: Vec::new(),
            channels: Vec::new(),
        };
        for (layout_index, (text, placement)) in layouts.iter().enumerate() {
            let file: LayoutFile = serde_norway::from_str(text).map_err(|e| {
                CalibrationError::Layout(format!("module {}: {e}", placement.module))
            })?;
            geometry.add_module(layout_index as u16, &file, placement)?;
        }
        Ok(geometry)
    }

    fn add_module(
        &mut self,
        layout_index: u16,
        file: &LayoutFile,
        placement: &ModulePlacement,
    ) -> Result<(), CalibrationError> {
        let bad =
            |what: String| CalibrationError::Layout(format!("module {}: {what}", placement.module));
        let pitch = file.pixel_pitch;
        if pitch.is_nan() || pitch <= 0.0 {
            return Err(bad(format!("pixel_pitch {pitch}")));
        }
        self.pixel_pitch = pitch;
        let cols = file.chip_channel_to_position.values().map(|p| p[0]);
        let rows = file.chip_channel_to_position.values().map(|p| p[1]);
        let (min_col, max_col) = (cols.clone().min().unwrap_or(0), cols.max().unwrap_or(0));
        let (min_row, max_row) = (rows.clone().min().unwrap_or(0), rows.max().unwrap_or(0));
        let x_size = (max_col - min_col) as f64 * pitch + pitch;
        let y_size = (max_row - min_row) as f64 * pitch + pitch;
        let mut local = vec![[f64::NAN; 2]; PIXELS_PER_LAYOUT];
        for (&key, &[col, row]) in &file.chip_channel_to_position {
            let (chip, channel) = ((key / 1000) as usize, (key % 1000) as usize);
            if chip > 255 || channel > 63 {
                return Err(bad(format!("chip_channel_to_position key {key}")));
            }
            local[chip * 64 + channel] = [
                col as f64 * pitch + pitch / 2.0 - x_size / 2.0,
                row as f64 * pitch + pitch / 2.0 - y_size / 2.0,
            ];
        }
        let mut connected: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
        for key in file.chip_channel_to_position.keys() {
            connected.entry((key / 1000) as u16).or_default().push((key % 1000) as u8);
        }
        self.local_xy.extend(local);

        let [ox, oy, oz] = placement.offset_mm;
        for (&tile, chips) in &file.tile_chip_to_io {
            let missing = |what: &str| bad(format!("tile {tile} has no {what}"));
            let position =
                file.tile_positions.get(&tile).ok_or_else(|| missing("tile_positions"))?;
            let orientation =
                file.tile_orientations.get(&tile).ok_or_else(|| missing("tile_orientations"))?;
            let indices = file.tile_indeces.get(&tile).ok_or_else(|| missing("tile_indeces"))?;
            let anode = *indices.first().ok_or_else(|| missing("anode index"))?;
            let tpc_center = file.tpc_centers.get(&anode).copied().unwrap_or([0.0; 3]);
            let index = self.tiles.len() as u16;
            let global_tile = tile + 16 * (u16::from(placement.module) - 1);
            self.tiles.push(Tile {
                id: global_tile,
                module: placement.module,
                tpc: (anode + 2 * (u16::from(placement.module) - 1)) as u8,
                center_xy: [position[2] + tpc_center[0] + ox, position[1] + tpc_center[1] + oy],
                anode_z: position[0] + tpc_center[2] + oz,
                drift_dir: orientation[0],
                flip_xy: [orientation[2], orientation[1]],
                drift_length_mm: placement.drift_length_mm,
            });
            self.tile_layout.push(layout_index);
            for (&chip, &io) in chips {
                let io_group = (io / 1000) as usize + placement.io_group_offset as usize;
                let io_channel = (io % 1000) as usize;
                if io_group >= IO_GROUPS || io_channel == 0 || io_channel > 256 || chip > 255 {
                    return Err(bad(format!("tile {tile}: chip {chip} at io {io}")));
                }
                self.tile_by_io[io_group * CHANNEL_GROUPS + (io_channel - 1) / 4] = index + 1;
                self.tile_by_chip[io_group * 256 + chip as usize] = index + 1;
                for &channel_id in connected.get(&chip).into_iter().flatten() {
                    self.channels.push(LayoutChannel {
                        io_group: io_group as u8,
                        io_channel: io_channel as u8,
                        chip_id: chip as u8,
                        channel_id,
                        tile_index: index,
                    });
                }
            }
        }
        Ok(())
    }

    /// Every connected channel the layouts list (one per pixel).
    pub fn channels(&self) -> &[LayoutChannel] {
        &self.channels
    }

    /// The tile a packet's channel belongs to, network-agnostically.
    #[inline]
    pub fn tile_index(&self, io_group: u8, io_channel: u8, chip_id: u8) -> Option<u16> {
        let by_chip = self.tile_by_chip[io_group as usize * 256 + chip_id as usize];
        if io_channel == 0 {
            return by_chip.checked_sub(1);
        }
        let group = (io_channel as usize - 1) / 4;
        let by_io = self.tile_by_io[io_group as usize * CHANNEL_GROUPS + group];
        // A chip listed on another tile of the io_group than the UART says: trust the chip
        // table only when the UART's own tile does not list it.
        match (by_io, by_chip) {
            (0, 0) => None,
            (0, c) => Some(c - 1),
            (t, _) => Some(t - 1),
        }
    }

    /// Pixel position of a channel, if the layout knows it.
    #[inline]
    pub fn pixel(
        &self,
        io_group: u8,
        io_channel: u8,
        chip_id: u8,
        channel_id: u8,
    ) -> Option<PixelPosition> {
        let tile_index = self.tile_index(io_group, io_channel, chip_id)?;
        let tile = &self.tiles[tile_index as usize];
        let layout = self.tile_layout[tile_index as usize] as usize;
        let [lx, ly] = *self
            .local_xy
            .get(layout * PIXELS_PER_LAYOUT + chip_id as usize * 64 + channel_id as usize)?;
        if lx.is_nan() {
            return None;
        }
        Some(PixelPosition {
            tile_index,
            x: lx * tile.flip_xy[0] + tile.center_xy[0],
            y: ly * tile.flip_xy[1] + tile.center_xy[1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nominal() -> Geometry {
        let text = include_str!("../data/layout-2x2-nominal.yaml");
        let placement = ModulePlacement {
            module: 1,
            io_group_offset: 0,
            offset_mm: [0.0; 3],
            drift_length_mm: 304.31,
        };
        Geometry::from_layouts(&[(text, placement)]).unwrap()
    }

    #[test]
    fn nominal_layout_has_16_tiles_on_two_anodes() {
        let g = nominal();
        assert_eq!(g.tiles.len(), 16);
        assert_eq!(g.pixel_pitch, 4.434);
        assert!(
            g.tiles
                .iter()
                .filter(|t| t.tpc == 1)
                .all(|t| t.anode_z == -304.31 && t.drift_dir == 1.0)
        );
        assert!(
            g.tiles
                .iter()
                .filter(|t| t.tpc == 2)
                .all(|t| t.anode_z == 304.31 && t.drift_dir == -1.0)
        );
        // 16 tiles × 100 chips × 49 connected channels, each with a position.
        assert_eq!(g.channels().len(), 78_400);
        for c in g.channels() {
            let p = g.pixel(c.io_group, c.io_channel, c.chip_id, c.channel_id).unwrap();
            assert_eq!(p.tile_index, c.tile_index);
        }
    }

    #[test]
    fn pixel_positions_follow_the_layout_formula() {
        let g = nominal();
        // chip 11, channel 0 is col 0, row 0 of tile 1: x = (0*p + p/2 - 70p/2) + (-155.19)
        let p = g.pixel(1, 1, 11, 0).unwrap();
        let half = 4.434 / 2.0 - 70.0 * 4.434 / 2.0;
        assert!((p.x - (half - 155.19)).abs() < 1e-9, "{p:?}");
        assert!((p.y - (half - 465.57)).abs() < 1e-9, "{p:?}");
        // network-agnostic: any UART of the tile's group of four finds it
        assert_eq!(g.pixel(1, 3, 11, 0), Some(p));
        // unconnected channel 6
        assert_eq!(g.pixel(1, 1, 11, 6), None);
        // tile 9 (anode 2) flips x
        let q = g.pixel(2, 1, 11, 0).unwrap();
        assert_eq!(g.tiles[q.tile_index as usize].id, 9);
        assert!((q.x - (-half - 155.19)).abs() < 1e-9, "{q:?}");
        // unknown io_group
        assert_eq!(g.pixel(7, 1, 11, 0), None);
    }

    #[test]
    fn second_module_gets_its_io_groups_tiles_tpcs_and_offset() {
        let text = include_str!("../data/layout-2x2-nominal.yaml");
        let m1 = ModulePlacement {
            module: 1,
            io_group_offset: 0,
            offset_mm: [0.0; 3],
            drift_length_mm: 304.31,
        };
        let m2 = ModulePlacement {
            module: 2,
            io_group_offset: 2,
            offset_mm: [335.0, 0.0, -335.0],
            drift_length_mm: 304.31,
        };
        let g = Geometry::from_layouts(&[(text, m1), (text, m2)]).unwrap();
        assert_eq!(g.tiles.len(), 32);
        let a = g.pixel(1, 1, 11, 0).unwrap();
        let b = g.pixel(3, 1, 11, 0).unwrap();
        let tile = &g.tiles[b.tile_index as usize];
        assert_eq!((tile.id, tile.module, tile.tpc), (17, 2, 3));
        assert!((b.x - (a.x + 335.0)).abs() < 1e-9 && (b.y - a.y).abs() < 1e-9);
        assert!((tile.anode_z - (-304.31 - 335.0)).abs() < 1e-9);
        let c = g.pixel(4, 1, 11, 0).unwrap();
        assert_eq!(g.tiles[c.tile_index as usize].tpc, 4);
        assert_eq!(g.pixel(5, 1, 11, 0), None);
    }
}
