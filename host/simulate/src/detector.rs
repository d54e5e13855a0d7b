//! The detector as the simulator sees it: the active volume and a point → pixel lookup built
//! from the same layout the calibration reads, so simulated packets land on the channels the
//! calibration maps back to the same place.

use larmon_calibrate::geometry::{Geometry, LayoutChannel};

/// One TPC: an anode plane with its pixel grid.
#[derive(Clone, Debug)]
pub struct Tpc {
    /// The TPC's number in the calibration geometry (2x2: 1–8, module m has 2m−1 and 2m).
    pub id: u8,
    /// Anode plane position along the drift axis, mm.
    pub anode_z: f64,
    /// +1 or −1: the direction in which z grows away from the anode.
    pub drift_dir: f64,
    /// Anode-to-cathode distance, mm.
    pub drift_length_mm: f64,
    /// Lower corner of the pixel grid (x, y), mm.
    origin: [f64; 2],
    /// Grid size in pixels (columns, rows).
    size: [usize; 2],
    /// Grid cell → index into [`Detector::channels`] (`u32::MAX` = no pixel).
    cells: Vec<u32>,
    /// Pixel pitch of this anode's tiles, mm.
    pub pitch: f64,
}

impl Tpc {
    /// The TPC's active box: lower and upper corners (x, y, z), mm.
    pub fn active_box(&self) -> ([f64; 3], [f64; 3]) {
        let cathode_z = self.anode_z + self.drift_dir * self.drift_length_mm;
        (
            [self.origin[0], self.origin[1], self.anode_z.min(cathode_z)],
            [
                self.origin[0] + self.size[0] as f64 * self.pitch,
                self.origin[1] + self.size[1] as f64 * self.pitch,
                self.anode_z.max(cathode_z),
            ],
        )
    }
}

/// Pixels and active volume of the detector.
#[derive(Clone, Debug)]
pub struct Detector {
    /// Every connected channel of the layout.
    pub channels: Vec<LayoutChannel>,
    /// The UART each channel's packets arrive on (parallel to `channels`): as in the 2x2,
    /// a third of the chips (chip id divisible by 3) are read on the next UART of their
    /// tile rather than the one the layout lists (the Run-2 data: 37 % of the channels).
    pub read_io_channel: Vec<u8>,
    /// TPCs, one per anode plane (each with its own pitch: the 2x2 mixes 4.434 and 3.87975 mm).
    pub tpcs: Vec<Tpc>,
    /// Active box: lower and upper corners (x, y, z), mm.
    pub box_min: [f64; 3],
    /// Upper corner of the active box.
    pub box_max: [f64; 3],
}

impl Detector {
    /// Builds the lookup from a calibration geometry.
    pub fn new(geometry: &Geometry) -> Self {
        let channels: Vec<LayoutChannel> = geometry.channels().to_vec();
        // Group pixel positions (channel index, x, y) by anode plane (tpc id).
        type PixelList = Vec<(usize, f64, f64)>;
        let mut by_tpc: Vec<(u8, PixelList)> = Vec::new();
        for (index, c) in channels.iter().enumerate() {
            let Some(p) = geometry.pixel(c.io_group, c.io_channel, c.chip_id, c.channel_id) else {
                continue;
            };
            let tpc = geometry.tiles[p.tile_index as usize].tpc;
            match by_tpc.iter_mut().find(|(t, _)| *t == tpc) {
                Some((_, list)) => list.push((index, p.x, p.y)),
                None => by_tpc.push((tpc, vec![(index, p.x, p.y)])),
            }
        }
        by_tpc.sort_by_key(|(t, _)| *t);
        let mut tpcs = Vec::new();
        let (mut box_min, mut box_max) = ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]);
        for (tpc_id, pixels) in by_tpc {
            let tile = geometry.tiles.iter().find(|t| t.tpc == tpc_id).expect("tile of the tpc");
            let pitch = tile.pitch_mm;
            let fold = |f: fn(f64, f64) -> f64, init: f64, pick: fn(&(usize, f64, f64)) -> f64| {
                pixels.iter().map(pick).fold(init, f)
            };
            let (x0, x1) =
                (fold(f64::min, f64::INFINITY, |p| p.1), fold(f64::max, -1e300, |p| p.1));
            let (y0, y1) =
                (fold(f64::min, f64::INFINITY, |p| p.2), fold(f64::max, -1e300, |p| p.2));
            let origin = [x0 - pitch / 2.0, y0 - pitch / 2.0];
            let size = [
                ((x1 - x0) / pitch).round() as usize + 1,
                ((y1 - y0) / pitch).round() as usize + 1,
            ];
            let mut cells = vec![u32::MAX; size[0] * size[1]];
            for &(index, x, y) in &pixels {
                let col = ((x - origin[0]) / pitch).floor() as usize;
                let row = ((y - origin[1]) / pitch).floor() as usize;
                cells[row * size[0] + col] = index as u32;
            }
            let cathode_z = tile.anode_z + tile.drift_dir * tile.drift_length_mm;
            for (axis, low, high) in [
                (0, origin[0], origin[0] + size[0] as f64 * pitch),
                (1, origin[1], origin[1] + size[1] as f64 * pitch),
                (2, tile.anode_z.min(cathode_z), tile.anode_z.max(cathode_z)),
            ] {
                box_min[axis] = box_min[axis].min(low);
                box_max[axis] = box_max[axis].max(high);
            }
            tpcs.push(Tpc {
                id: tpc_id,
                anode_z: tile.anode_z,
                drift_dir: tile.drift_dir,
                drift_length_mm: tile.drift_length_mm,
                origin,
                size,
                cells,
                pitch,
            });
        }
        let read_io_channel = reassigned_uarts(&channels);
        Self { channels, read_io_channel, tpcs, box_min, box_max }
    }

    /// The channel (index into `channels`) whose pixel collects charge drifting from a point,
    /// and the drift distance, mm; `None` outside every TPC or above a gap between pixels.
    pub fn pixel_at(&self, point: [f64; 3]) -> Option<(u32, f64)> {
        for tpc in &self.tpcs {
            let drift = (point[2] - tpc.anode_z) * tpc.drift_dir;
            if !(0.0..=tpc.drift_length_mm).contains(&drift) {
                continue;
            }
            let col = ((point[0] - tpc.origin[0]) / tpc.pitch).floor();
            let row = ((point[1] - tpc.origin[1]) / tpc.pitch).floor();
            // Modules side by side share drift ranges: outside this anode's pixel plane, the
            // point may still be in front of another one.
            if col < 0.0 || row < 0.0 {
                continue;
            }
            let (col, row) = (col as usize, row as usize);
            if col >= tpc.size[0] || row >= tpc.size[1] {
                continue;
            }
            let cell = tpc.cells[row * tpc.size[0] + col];
            return (cell != u32::MAX).then_some((cell, drift));
        }
        None
    }
}

/// The UART each channel is read on: chips with an id divisible by 3 move to the next UART
/// (cyclically) of the UARTs their tile uses; tiles with one UART keep it.
fn reassigned_uarts(channels: &[LayoutChannel]) -> Vec<u8> {
    let mut uarts: std::collections::BTreeMap<u16, Vec<u8>> = std::collections::BTreeMap::new();
    for c in channels {
        uarts.entry(c.tile_index).or_default().push(c.io_channel);
    }
    for list in uarts.values_mut() {
        list.sort_unstable();
        list.dedup();
    }
    channels
        .iter()
        .map(|c| {
            let list = &uarts[&c.tile_index];
            if c.chip_id % 3 != 0 || list.len() < 2 {
                return c.io_channel;
            }
            let at = list.iter().position(|&u| u == c.io_channel).unwrap_or(0);
            list[(at + 1) % list.len()]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use larmon_calibrate::DetectorConfig;

    fn maps_every_pixel_centre_back(name: &str, channels: usize, tpcs: usize, size: [f64; 3]) {
        let geometry = DetectorConfig::named(name).unwrap().geometry().unwrap();
        let detector = Detector::new(&geometry);
        // A third of the channels arrive on another UART of their tile, and the calibration
        // still finds their pixel.
        let moved = detector
            .channels
            .iter()
            .zip(&detector.read_io_channel)
            .filter(|(c, &uart)| {
                let found = geometry.identify(c.io_group, uart, c.chip_id, c.channel_id).unwrap();
                assert_eq!((found.io_channel, found.tile_index), (c.io_channel, c.tile_index));
                uart != c.io_channel
            })
            .count();
        let share = moved as f64 / channels as f64;
        assert!((0.3..0.36).contains(&share), "{name}: {share}");
        assert_eq!(detector.channels.len(), channels, "{name}");
        assert_eq!(detector.tpcs.len(), tpcs, "{name}");
        for (index, c) in detector.channels.iter().enumerate().step_by(37) {
            let p = geometry.pixel(c.io_group, c.io_channel, c.chip_id, c.channel_id).unwrap();
            let tile = &geometry.tiles[p.tile_index as usize];
            let z = tile.anode_z + tile.drift_dir * 100.0;
            let (found, drift) = detector.pixel_at([p.x, p.y, z]).unwrap();
            assert_eq!(found as usize, index, "{name}");
            assert!((drift - 100.0).abs() < 1e-9);
        }
        let got: Vec<f64> = (0..3).map(|i| detector.box_max[i] - detector.box_min[i]).collect();
        for axis in 0..3 {
            assert!((got[axis] - size[axis]).abs() < 1e-6, "{name}: {got:?}");
        }
    }

    #[test]
    fn every_pixel_centre_maps_back_to_its_channel() {
        // The simulation fixtures' module: 620.76 × 1241.52 × 608.62 mm.
        maps_every_pixel_centre_back("sim-module", 78_400, 2, [620.76, 1241.52, 608.62]);
        // The 2x2: modules at ±335 mm along the beam and the drift axis, 3 × 78 400 + 102 400
        // pixels, module 3 with a 3.87975 mm pitch.
        maps_every_pixel_centre_back("2x2", 337_600, 8, [1290.76, 1241.52, 1278.62]);
    }
}
