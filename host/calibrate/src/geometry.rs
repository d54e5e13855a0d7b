//! Pixel geometry: the pixel layouts of every module ([`crate::layout`]) turned into dense
//! lookup tables, so (io_group, io_channel, chip_id, channel_id) → pixel position is two array
//! reads per packet. Every module keeps its own pixel pitch (the 2x2's module 3 has a 2.5.16
//! layout with 3.87975 mm, the others 4.434 mm).
//!
//! Coordinates (mm): `x`, `y` in the anode (pixel) plane, `z` along the drift; a hit at drift
//! distance `d` sits at `z = anode_z + drift_dir · d`.
//!
//! **Channel identity** (one rule, [`Geometry::identify`]): a packet's tile is the tile whose
//! UARTs include its io_channel's group of four (`(io_channel − 1) / 4`) on its io_group, and
//! its pixel is the (chip, channel) of that tile, whichever UART of the tile the chip was read
//! on — the 2x2 re-routes chips between the UARTs of a tile (37 % of the active channels of
//! the Run-2 sample are read on another UART than the layout lists). The same rule is the SDK's
//! `Pixels::find`, so plugins and calibration agree.

use std::collections::BTreeMap;

use crate::error::CalibrationError;
use crate::layout::PixelLayout;

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
    /// Pixel pitch of the tile's layout, mm.
    pub pitch_mm: f64,
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
    /// (io_group, io_channel group of 4) → tile index + 1 (0 = none): 256 × 64 entries.
    tile_by_io: Vec<u16>,
    /// (layout index, chip_id, channel_id) → local (x, y) before flips, mm; NaN = unconnected.
    local_xy: Vec<[f64; 2]>,
    /// Layout index of each tile.
    tile_layout: Vec<u16>,
    /// Every connected channel, in layout order.
    channels: Vec<LayoutChannel>,
    /// (tile index, chip_id) → the io_channel the layout lists for the chip (0 = not on it).
    listed_io_channel: Vec<u8>,
    /// Pitch of each TPC's tiles, mm (NaN: no such TPC).
    tpc_pitch: Vec<f64>,
}

const IO_GROUPS: usize = 256;
const CHANNEL_GROUPS: usize = 64;
const PIXELS_PER_LAYOUT: usize = 256 * 64;

impl Geometry {
    /// Builds the geometry from layout YAML texts, each placed as a module.
    pub fn from_layouts(layouts: &[(&str, ModulePlacement)]) -> Result<Self, CalibrationError> {
        let parsed = layouts
            .iter()
            .map(|(text, placement)| {
                let layout = PixelLayout::from_yaml(text).map_err(|e| {
                    CalibrationError::Layout(format!("module {}: {e}", placement.module))
                })?;
                Ok((layout, placement.clone()))
            })
            .collect::<Result<Vec<_>, CalibrationError>>()?;
        Self::from_modules(&parsed)
    }

    /// Builds the geometry from pixel layouts, each placed as a module.
    pub fn from_modules(
        modules: &[(PixelLayout, ModulePlacement)],
    ) -> Result<Self, CalibrationError> {
        let mut geometry = Geometry {
            tiles: Vec::new(),
            tile_by_io: vec![0; IO_GROUPS * CHANNEL_GROUPS],
            local_xy: Vec::new(),
            tile_layout: Vec::new(),
            channels: Vec::new(),
            listed_io_channel: Vec::new(),
            tpc_pitch: vec![f64::NAN; 256],
        };
        for (layout_index, (layout, placement)) in modules.iter().enumerate() {
            geometry.add_module(layout_index as u16, layout, placement)?;
        }
        Ok(geometry)
    }

    fn add_module(
        &mut self,
        layout_index: u16,
        layout: &PixelLayout,
        placement: &ModulePlacement,
    ) -> Result<(), CalibrationError> {
        let bad =
            |what: String| CalibrationError::Layout(format!("module {}: {what}", placement.module));
        let pitch = layout.pitch_mm;
        if !(pitch.is_finite() && pitch > 0.0) {
            return Err(bad(format!("pixel_pitch {pitch}")));
        }
        let cols = layout.pixels.values().map(|p| p[0]);
        let rows = layout.pixels.values().map(|p| p[1]);
        let (min_col, max_col) = (cols.clone().min().unwrap_or(0), cols.max().unwrap_or(0));
        let (min_row, max_row) = (rows.clone().min().unwrap_or(0), rows.max().unwrap_or(0));
        let x_size = (max_col - min_col) as f64 * pitch + pitch;
        let y_size = (max_row - min_row) as f64 * pitch + pitch;
        let mut local = vec![[f64::NAN; 2]; PIXELS_PER_LAYOUT];
        let mut connected: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
        for (&key, &[col, row]) in &layout.pixels {
            let (chip, channel) = ((key / 1000) as usize, (key % 1000) as usize);
            if chip > 255 || channel > 63 {
                return Err(bad(format!("chip_channel_to_position key {key}")));
            }
            local[chip * 64 + channel] = [
                col as f64 * pitch + pitch / 2.0 - x_size / 2.0,
                row as f64 * pitch + pitch / 2.0 - y_size / 2.0,
            ];
            connected.entry(chip as u8).or_default().push(channel as u8);
        }
        self.local_xy.extend(local);

        let [ox, oy, oz] = placement.offset_mm;
        let module = u16::from(placement.module.max(1));
        for tile in &layout.tiles {
            let position = tile.position_mm;
            let orientation = tile.orientation;
            let tpc_center = layout.tpc_centers.get(&tile.anode).copied().unwrap_or([0.0; 3]);
            let index = self.tiles.len() as u16;
            let tpc = tile.anode + 2 * (module - 1);
            if tpc > 255 {
                return Err(bad(format!("tile {}: anode {}", tile.tile, tile.anode)));
            }
            self.tiles.push(Tile {
                id: tile.tile + 16 * (module - 1),
                module: placement.module,
                tpc: tpc as u8,
                center_xy: [position[2] + tpc_center[0] + ox, position[1] + tpc_center[1] + oy],
                anode_z: position[0] + tpc_center[2] + oz,
                drift_dir: orientation[0],
                flip_xy: [orientation[2], orientation[1]],
                drift_length_mm: placement.drift_length_mm,
                pitch_mm: pitch,
            });
            self.tpc_pitch[tpc as usize] = pitch;
            self.tile_layout.push(layout_index);
            self.listed_io_channel.extend([0u8; 256]);
            for &(chip, io_group, io_channel) in &tile.chips {
                let io_group = io_group as usize + placement.io_group_offset as usize;
                if io_group >= IO_GROUPS || io_channel == 0 {
                    return Err(bad(format!(
                        "tile {}: chip {chip} at io_group {io_group}, io_channel {io_channel}",
                        tile.tile
                    )));
                }
                let slot = io_group * CHANNEL_GROUPS + (io_channel as usize - 1) / 4;
                if self.tile_by_io[slot] != 0 && self.tile_by_io[slot] != index + 1 {
                    let other = &self.tiles[self.tile_by_io[slot] as usize - 1];
                    return Err(bad(format!(
                        "tile {} and tile {} (module {}) both use io_group {io_group}, \
                         io_channels {}-{}: two modules share io_groups (check io_group_offset)",
                        tile.tile,
                        other.id,
                        other.module,
                        (io_channel - 1) / 4 * 4 + 1,
                        (io_channel - 1) / 4 * 4 + 4
                    )));
                }
                self.tile_by_io[slot] = index + 1;
                self.listed_io_channel[index as usize * 256 + chip as usize] = io_channel;
                for &channel_id in connected.get(&chip).into_iter().flatten() {
                    self.channels.push(LayoutChannel {
                        io_group: io_group as u8,
                        io_channel,
                        chip_id: chip,
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

    /// The tile a packet's channel belongs to: the tile of the io_channel's group of four
    /// UARTs on its io_group (`chip_id` does not choose the tile: every tile has the same
    /// chip ids).
    #[inline]
    pub fn tile_index(&self, io_group: u8, io_channel: u8, _chip_id: u8) -> Option<u16> {
        let group = (io_channel as usize).checked_sub(1)? / 4;
        self.tile_by_io[io_group as usize * CHANNEL_GROUPS + group].checked_sub(1)
    }

    /// The channel's identity in the layout: the connected channel of its pixel, with the
    /// io_channel the layout lists for the chip on that tile (which may differ from the UART
    /// it was read on; a chip the tile does not list keeps the UART it was read on). `None`
    /// exactly when [`Self::pixel`] is `None`.
    #[inline]
    pub fn identify(
        &self,
        io_group: u8,
        io_channel: u8,
        chip_id: u8,
        channel_id: u8,
    ) -> Option<LayoutChannel> {
        let tile_index = self.tile_index(io_group, io_channel, chip_id)?;
        let listed = self.listed_io_channel[tile_index as usize * 256 + chip_id as usize];
        let layout = self.tile_layout[tile_index as usize] as usize;
        let [lx, _] = *self
            .local_xy
            .get(layout * PIXELS_PER_LAYOUT + chip_id as usize * 64 + channel_id as usize)?;
        (!lx.is_nan()).then_some(LayoutChannel {
            io_group,
            io_channel: if listed != 0 { listed } else { io_channel },
            chip_id,
            channel_id,
            tile_index,
        })
    }

    /// Pixel pitch of a TPC's tiles, mm (NaN for a TPC the detector does not have).
    #[inline]
    pub fn tpc_pitch_mm(&self, tpc: u8) -> f64 {
        self.tpc_pitch[tpc as usize]
    }

    /// The distinct pixel pitches of the detector, mm, smallest first.
    pub fn pitches_mm(&self) -> Vec<f64> {
        let mut pitches: Vec<f64> = self.tiles.iter().map(|t| t.pitch_mm).collect();
        pitches.sort_by(f64::total_cmp);
        pitches.dedup();
        pitches
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
        assert_eq!(g.pitches_mm(), [4.434]);
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
