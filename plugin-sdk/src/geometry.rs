//! The detector's pixels as the host sends them (stream `pixels`): where every connected channel
//! is, which anode (TPC) it belongs to, and the anodes' drift geometry and pixel pitch (the 2x2
//! mixes 4.434 and 3.87975 mm). For pixel maps, dead channels (expected but silent) and
//! fiducial cuts.
//!
//! **Channel identity** is the host's rule ([`Pixels::identify`]): the 2x2 reads chips on
//! another UART of their tile than the layout lists, so a packet's channel is the pixel of the
//! same io_group, chip and channel on any io_channel of the same group of four
//! (`(io_channel − 1) / 4`, one tile). Key per-channel statistics by `identify(key)` and every
//! channel of the data finds its pixel.

use std::collections::BTreeMap;

use crate::batch::Batch;
use crate::channels::unique_id;

/// One connected channel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pixel {
    /// Channel key (see [`unique_id`]).
    pub unique_id: u32,
    /// Tile.
    pub tile: u16,
    /// Anode / TPC.
    pub tpc: u8,
    /// Pixel centre, mm.
    pub x_mm: f64,
    /// Pixel centre, mm.
    pub y_mm: f64,
}

/// One anode: its pixel plane and drift volume.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Anode {
    /// Anode plane along the drift axis, mm.
    pub z_mm: f64,
    /// +1 or −1: direction from the anode towards its cathode.
    pub drift_dir: f64,
    /// Anode-to-cathode distance, mm.
    pub drift_length_mm: f64,
    /// Extent of its pixel centres, mm: (min x, max x, min y, max y).
    pub extent: (f64, f64, f64, f64),
    /// Pixel pitch of its tiles, mm.
    pub pitch_mm: f64,
}

impl Anode {
    /// Whether a point (x, y in the pixel plane, drift distance from this anode) lies at least
    /// `margin_mm` inside the active volume (pixel plane edges ± half a pitch, anode, cathode).
    pub fn contains(&self, x: f64, y: f64, drift_mm: f64, margin_mm: f64, pitch: f64) -> bool {
        let (x0, x1, y0, y1) = self.extent;
        let half = pitch / 2.0;
        x >= x0 - half + margin_mm
            && x <= x1 + half - margin_mm
            && y >= y0 - half + margin_mm
            && y <= y1 + half - margin_mm
            && drift_mm >= margin_mm
            && drift_mm <= self.drift_length_mm - margin_mm
    }
}

/// All pixels of the detector, sorted by channel key (looked up by binary search).
#[derive(Clone, Debug, Default)]
pub struct Pixels {
    by_id: Vec<Pixel>,
    anodes: BTreeMap<u8, Anode>,
}

impl Pixels {
    /// The columns of the `pixels` stream [`Pixels::add`] reads: `.consumes("pixels", Pixels::COLUMNS)`.
    pub const COLUMNS: &'static [&'static str] = &[
        "io_group",
        "io_channel",
        "chip_id",
        "channel_id",
        "tile",
        "tpc",
        "x_mm",
        "y_mm",
        "pitch_mm",
        "anode_z_mm",
        "drift_dir",
        "drift_length_mm",
    ];

    /// Adds a batch of the `pixels` stream (columns io_group, io_channel, chip_id, channel_id,
    /// tile, tpc, x_mm, y_mm, pitch_mm, anode_z_mm, drift_dir, drift_length_mm).
    pub fn add(&mut self, batch: &Batch) -> Result<(), String> {
        let (group, uart) = (batch.u8("io_group")?, batch.u8("io_channel")?);
        let (chip, channel) = (batch.u8("chip_id")?, batch.u8("channel_id")?);
        let (tile, tpc) = (batch.u16("tile")?, batch.u8("tpc")?);
        let (x, y, pitch) = (batch.f64("x_mm")?, batch.f64("y_mm")?, batch.f64("pitch_mm")?);
        let (anode_z, dir, length) =
            (batch.f64("anode_z_mm")?, batch.f64("drift_dir")?, batch.f64("drift_length_mm")?);
        for i in 0..batch.len() {
            let id = unique_id(group[i], uart[i], chip[i], channel[i]);
            self.by_id.push(Pixel {
                unique_id: id,
                tile: tile[i],
                tpc: tpc[i],
                x_mm: x[i],
                y_mm: y[i],
            });
            let anode = self.anodes.entry(tpc[i]).or_insert(Anode {
                z_mm: anode_z[i],
                drift_dir: dir[i],
                drift_length_mm: length[i],
                extent: (x[i], x[i], y[i], y[i]),
                pitch_mm: pitch[i],
            });
            let e = &mut anode.extent;
            *e = (e.0.min(x[i]), e.1.max(x[i]), e.2.min(y[i]), e.3.max(y[i]));
        }
        // Sorted once here (the stream comes once), so lookups and iteration need no sorting;
        // a channel listed twice keeps its last row.
        self.by_id.reverse();
        self.by_id.sort_by_key(|p| p.unique_id);
        self.by_id.dedup_by_key(|p| p.unique_id);
        Ok(())
    }

    /// The pixel listed under exactly this channel key (the layout's io_channel).
    pub fn get(&self, unique_id: u32) -> Option<&Pixel> {
        let index = self.by_id.binary_search_by_key(&unique_id, |p| p.unique_id).ok()?;
        Some(&self.by_id[index])
    }

    /// The pixel of a packet's channel, read on any UART of its tile (see the module docs).
    pub fn find(&self, unique_id: u32) -> Option<&Pixel> {
        if let Some(pixel) = self.get(unique_id) {
            return Some(pixel);
        }
        let (io_group, io_channel, chip, channel) = crate::channels::channel_of(unique_id);
        if io_channel == 0 {
            return None;
        }
        let first = (io_channel - 1) / 4 * 4 + 1;
        (first..first.saturating_add(4))
            .filter(|&uart| uart != io_channel)
            .find_map(|uart| self.get(crate::channels::unique_id(io_group, uart, chip, channel)))
    }

    /// The channel key of a packet's pixel (its key in the layout); the key itself for a
    /// channel the detector does not have. Key per-channel statistics by it.
    pub fn identify(&self, unique_id: u32) -> u32 {
        self.find(unique_id).map_or(unique_id, |p| p.unique_id)
    }

    /// Every pixel, in channel-key order.
    pub fn iter(&self) -> impl Iterator<Item = &Pixel> {
        self.by_id.iter()
    }

    /// Number of connected channels.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True before the `pixels` stream arrived.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The anodes by TPC id.
    pub fn anodes(&self) -> &BTreeMap<u8, Anode> {
        &self.anodes
    }

    /// Pixel pitch of the lowest-numbered anode, mm; detectors may mix pitches (the 2x2's
    /// module 3 has 3.87975 mm): use [`Anode::pitch_mm`] of the anode at hand.
    pub fn pitch_mm(&self) -> f64 {
        self.anodes.values().next().map_or(f64::NAN, |a| a.pitch_mm)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, RecordBatch, UInt8Array, UInt16Array};

    use super::*;
    use crate::{CHANNEL_COLUMNS, Info};

    /// A `pixels` batch of (chip, channel, x) rows on io_group 1, io_channel 1, TPC 1.
    fn batch(rows: &[(u8, u8, f64)]) -> Batch {
        let u8s = |f: &dyn Fn(&(u8, u8, f64)) -> u8| {
            Arc::new(UInt8Array::from_iter_values(rows.iter().map(f))) as ArrayRef
        };
        let f64s =
            |v: f64| Arc::new(Float64Array::from_iter_values(rows.iter().map(|_| v))) as ArrayRef;
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("io_group", u8s(&|_| 1)),
            ("io_channel", u8s(&|_| 1)),
            ("chip_id", u8s(&|r| r.0)),
            ("channel_id", u8s(&|r| r.1)),
            ("tile", Arc::new(UInt16Array::from_iter_values(rows.iter().map(|_| 3)))),
            ("tpc", u8s(&|_| 1)),
            ("x_mm", Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2)))),
            ("y_mm", f64s(0.0)),
            ("pitch_mm", f64s(4.434)),
            ("anode_z_mm", f64s(-304.31)),
            ("drift_dir", f64s(1.0)),
            ("drift_length_mm", f64s(304.31)),
        ];
        Batch::new(RecordBatch::try_from_iter(columns).unwrap())
    }

    #[test]
    fn pixels_are_found_by_key_in_key_order_and_a_repeated_channel_keeps_its_last_row() {
        let mut pixels = Pixels::default();
        pixels.add(&batch(&[(12, 5, 10.0), (11, 7, 20.0)])).unwrap();
        pixels.add(&batch(&[(12, 5, 30.0), (11, 0, 40.0)])).unwrap();
        let keys: Vec<u32> = pixels.iter().map(|p| p.unique_id).collect();
        let expected = [(11, 0), (11, 7), (12, 5)].map(|(c, ch)| unique_id(1, 1, c, ch));
        assert_eq!(keys, expected);
        assert_eq!(pixels.len(), 3);
        assert_eq!(pixels.get(unique_id(1, 1, 12, 5)).unwrap().x_mm, 30.0);
        assert!(pixels.get(unique_id(1, 1, 13, 5)).is_none());
        assert_eq!(pixels.anodes()[&1].extent.0, 10.0);
        assert_eq!(pixels.anodes()[&1].extent.1, 40.0);
        // The channel keys of a batch, from its four channel columns.
        assert_eq!(batch(&[(11, 7, 0.0)]).channel_keys().unwrap(), [unique_id(1, 1, 11, 7)]);
    }

    #[test]
    fn a_chip_read_on_another_uart_of_its_tile_is_its_pixel() {
        let mut pixels = Pixels::default();
        pixels.add(&batch(&[(12, 5, 10.0)])).unwrap();
        let listed = unique_id(1, 1, 12, 5);
        for uart in [1, 2, 3, 4] {
            assert_eq!(pixels.identify(unique_id(1, uart, 12, 5)), listed, "uart {uart}");
        }
        // UART 5 is the next tile's group; another io_group or chip is another channel.
        for other in [unique_id(1, 5, 12, 5), unique_id(2, 2, 12, 5), unique_id(1, 2, 13, 5)] {
            assert!(pixels.find(other).is_none());
            assert_eq!(pixels.identify(other), other);
        }
        assert_eq!(pixels.anodes()[&1].pitch_mm, 4.434);
    }

    #[test]
    fn consuming_a_stream_twice_adds_columns_once() {
        let info = Info::new("x", "")
            .consumes("packets", &["packet_type", "io_group"])
            .consumes("packets", CHANNEL_COLUMNS)
            .consumes("pixels", &["tile"]);
        let packets = &info.consumes[0];
        assert_eq!(info.consumes.len(), 2);
        assert_eq!(
            packets.1,
            ["packet_type", "io_group", "io_channel", "chip_id", "channel_id"].map(String::from)
        );
    }
}
