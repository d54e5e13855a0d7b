//! The detector's pixels as the host sends them (stream `pixels`): where every connected channel
//! is, which anode (TPC) it belongs to, and the anodes' drift geometry and pixel pitch (the 2x2
//! mixes 4.434 and 3.87975 mm). For pixel maps, dead channels (expected but silent) and
//! fiducial cuts.
//!
//! **Channel identity** is the host's rule ([`Pixels::identify`]): the 2x2 reads chips on
//! another UART of their tile than the layout lists, so a packet's channel is the pixel of the
//! same io_group, chip and channel on any io_channel of the same group of four
//! (`(io_channel − 1) / 4`, one tile). Key per-channel statistics by `identify(key)` and every
//! channel of the data finds its pixel. In a per-packet loop over millions of packets, fill
//! [`ChannelStats`](crate::ChannelStats) by the packet's own key and regroup it once in the
//! report with [`ChannelStats::by_pixel`](crate::ChannelStats::by_pixel): the lookup is then
//! not a second cache miss per packet.

use std::collections::BTreeMap;

use crate::batch::Batch;
use crate::channels::{ChipIndex, channel_of, unique_id};

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

/// All pixels of the detector, sorted by channel key. A packet's channel finds its pixel in
/// three array loads (plugins do it for every packet; a binary search over the 2x2's 337 k
/// pixels was a third of a whole run's time).
#[derive(Clone, Debug, Default)]
pub struct Pixels {
    by_id: Vec<Pixel>,
    anodes: BTreeMap<u8, Anode>,
    /// Every chip a packet may name: the layout's, and the same chips on the other UARTs of
    /// their tile.
    chips: ChipIndex,
    /// Per chip of `chips`: its row of `pixel_of`, with [`ANOTHER_UART`] set when the row is
    /// the one chip of the tile listed under another UART (shared, not copied: an index of
    /// the 2x2 is 3 MB, not 13, in every plugin that draws pixels).
    row_of: Vec<u32>,
    /// Per row, per channel: 1 + the index in `by_id` of its pixel (0: none), with
    /// [`ANOTHER_UART`] set when the pixel is listed under another UART of the tile; beside it
    /// the pixel's key, so [`Pixels::identify`] costs one cache miss, not two.
    pixel_of: Vec<[[u32; 2]; 64]>,
}

/// Schema metadata of the `pixels` batches: the rows of all of them together.
const TOTAL_ROWS: &str = "larmon.total_rows";
/// The most pixels reserved on the host's word (the 2x2 has 337 k).
const MAX_RESERVED_PIXELS: usize = 1 << 24;

/// Marks a row of `Pixels::row_of` or an entry of `Pixels::pixel_of` found on another UART of
/// the tile.
const ANOTHER_UART: u32 = 1 << 31;

/// The UARTs a packet on `io_channel` may be read on for a pixel listed elsewhere: the others
/// of its group of four (`(io_channel − 1) / 4`), none for io_channel 0. (io_channel 255 is
/// never a candidate: the group 253–256 ends at the key's range.)
fn tile_uarts(io_channel: u8) -> impl Iterator<Item = u8> {
    let first = if io_channel == 0 { 1 } else { (io_channel - 1) / 4 * 4 + 1 };
    let end = if io_channel == 0 { first } else { first.saturating_add(4) };
    (first..end).filter(move |&uart| uart != io_channel)
}

/// The UARTs whose packets look for a pixel listed on `io_channel` (the inverse of
/// [`tile_uarts`]).
fn readers_of(io_channel: u8) -> impl Iterator<Item = u8> {
    let first = if io_channel == 0 { 0 } else { (io_channel - 1) / 4 * 4 + 1 };
    (first..=first.saturating_add(3))
        .filter(move |&reader| reader != io_channel && tile_uarts(reader).any(|u| u == io_channel))
}

impl Pixels {
    /// The columns of the `pixels` stream [`Pixels::add`] reads (what [`Info::uses_pixels`]
    /// asks for).
    ///
    /// [`Info::uses_pixels`]: crate::Info::uses_pixels
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
        self.gather(batch)?;
        self.finish();
        Ok(())
    }

    /// The rows of a `pixels` batch, kept for [`Pixels::finish`] (the stream comes in several
    /// batches; the index is built once, at the end).
    pub(crate) fn gather(&mut self, batch: &Batch) -> Result<(), String> {
        let (group, uart) = (batch.u8("io_group")?, batch.u8("io_channel")?);
        let (chip, channel) = (batch.u8("chip_id")?, batch.u8("channel_id")?);
        let (tile, tpc) = (batch.u16("tile")?, batch.u8("tpc")?);
        let (x, y, pitch) = (batch.f64("x_mm")?, batch.f64("y_mm")?, batch.f64("pitch_mm")?);
        let (anode_z, dir, length) =
            (batch.f64("anode_z_mm")?, batch.f64("drift_dir")?, batch.f64("drift_length_mm")?);
        if self.by_id.is_empty() {
            // All the batches' rows at once (the host says how many): pushed batch by batch the
            // list doubled, and Wasm memory keeps its high-water mark for the instance's life.
            let total = batch.record_batch().schema().metadata().get(TOTAL_ROWS).cloned();
            let total = total.and_then(|t| t.parse::<usize>().ok()).unwrap_or(0);
            self.by_id.reserve_exact(total.clamp(batch.len(), MAX_RESERVED_PIXELS));
        }
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
        Ok(())
    }

    /// Sorts the gathered rows and builds the index, so lookups and iteration need no
    /// sorting; a channel listed twice keeps its last row.
    pub(crate) fn finish(&mut self) {
        // The host sends them in key order, each channel once: then there is nothing to sort
        // (and no sort's scratch memory, which Wasm memory keeps for the instance's life).
        if !self.by_id.is_sorted_by(|a, b| a.unique_id < b.unique_id) {
            self.by_id.reverse();
            self.by_id.sort_by_key(|p| p.unique_id);
            self.by_id.dedup_by_key(|p| p.unique_id);
        }
        self.index();
    }

    /// Rebuilds the channel → pixel table: exact keys first, then each pixel under the other
    /// UARTs of its tile where no pixel is listed, the lowest listed UART winning (the order
    /// [`Pixels::find`] documents).
    fn index(&mut self) {
        (self.chips, self.row_of, self.pixel_of) = Default::default();
        for index in 0..self.by_id.len() {
            let key = self.by_id[index].unique_id;
            let row = self.own_row(key >> 6);
            self.pixel_of[row][(key & 63) as usize] = [index as u32 + 1, key];
        }
        // The chips a packet on another UART of the tile names, with the listed chips each may
        // be (in UART order).
        let listed: Vec<u32> = self.chips.keys().to_vec();
        let mut readers: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for &chip_key in &listed {
            let (io_group, io_channel, chip, _) = channel_of(chip_key << 6);
            for reader in readers_of(io_channel) {
                readers
                    .entry(unique_id(io_group, reader, chip, 0) >> 6)
                    .or_default()
                    .push(chip_key);
            }
        }
        for (reader, mut sources) in readers {
            sources.sort_unstable();
            let listed_itself = self.chips.get(reader).is_some();
            if let ([only], false) = (sources.as_slice(), listed_itself) {
                let row = self.row_of[self.chips.get(*only).expect("listed")];
                self.chips.add(reader);
                self.row_of.push(row | ANOTHER_UART);
                continue;
            }
            // Several chips of the tile, or a chip also listed on this UART: channel by
            // channel, exact entries kept, else the lowest UART's.
            let row = self.own_row(reader);
            for source in sources {
                let from = self.row_of[self.chips.get(source).expect("listed")] as usize;
                for channel in 0..64 {
                    let [index, key] = self.pixel_of[from][channel];
                    if index != 0 && self.pixel_of[row][channel][0] == 0 {
                        self.pixel_of[row][channel] = [index | ANOTHER_UART, key];
                    }
                }
            }
        }
    }

    /// The row of a chip of its own (made, empty, if the chip is new).
    fn own_row(&mut self, chip_key: u32) -> usize {
        match self.chips.get(chip_key) {
            Some(chip) => self.row_of[chip] as usize,
            None => {
                self.chips.add(chip_key);
                self.pixel_of.push([[0; 2]; 64]);
                self.row_of.push(self.pixel_of.len() as u32 - 1);
                self.pixel_of.len() - 1
            }
        }
    }

    /// The `pixel_of` entry of a channel key ([0, 0] when no pixel), [`ANOTHER_UART`] set
    /// when the pixel is listed under another UART.
    #[inline(always)]
    fn lookup(&self, unique_id: u32) -> [u32; 2] {
        let Some(chip) = self.chips.get(unique_id >> 6) else {
            return [0; 2];
        };
        let row = self.row_of[chip];
        let [index, key] = self.pixel_of[(row & !ANOTHER_UART) as usize][(unique_id & 63) as usize];
        [if index == 0 { 0 } else { index | (row & ANOTHER_UART) }, key]
    }

    /// The pixel listed under exactly this channel key (the layout's io_channel).
    #[inline]
    pub fn get(&self, unique_id: u32) -> Option<&Pixel> {
        match self.lookup(unique_id)[0] {
            0 => None,
            entry if entry & ANOTHER_UART != 0 => None,
            entry => Some(&self.by_id[entry as usize - 1]),
        }
    }

    /// The pixel of a packet's channel: the one listed under its key, else the one listed
    /// under the lowest other UART of its tile (see the module docs).
    #[inline]
    pub fn find(&self, unique_id: u32) -> Option<&Pixel> {
        match self.lookup(unique_id)[0] & !ANOTHER_UART {
            0 => None,
            index => Some(&self.by_id[index as usize - 1]),
        }
    }

    /// The channel key of a packet's pixel (its key in the layout); the key itself for a
    /// channel the detector does not have. Key per-channel statistics by it.
    #[inline(always)] // into the plugin's per-packet loop
    pub fn identify(&self, unique_id: u32) -> u32 {
        match self.lookup(unique_id) {
            [0, _] => unique_id,
            [_, key] => key,
        }
    }

    /// Every pixel, in channel-key order.
    pub fn iter(&self) -> impl Iterator<Item = &Pixel> {
        self.by_id.iter()
    }

    /// Each chip's pixels (same `unique_id >> 6`), chip by chip in channel-key order: a chip's
    /// channels are one run of the key-ordered pixels.
    pub fn chips(&self) -> impl Iterator<Item = &[Pixel]> {
        self.by_id.chunk_by(|a, b| a.unique_id >> 6 == b.unique_id >> 6)
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
    use std::collections::HashMap;
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, RecordBatch, UInt8Array, UInt16Array};

    use super::*;
    use crate::{CHANNEL_COLUMNS, ChannelCounts, ChannelStats, Info};

    /// A `pixels` batch of (chip, channel, x) rows on io_group 1, io_channel 1, TPC 1.
    fn batch(rows: &[(u8, u8, f64)]) -> Batch {
        let rows: Vec<_> = rows.iter().map(|&(chip, channel, x)| (1, chip, channel, x)).collect();
        batch_on_uarts(&rows)
    }

    /// (io_channel, chip, channel, x) of a pixel on io_group 1, TPC 1.
    type Listed = (u8, u8, u8, f64);

    /// A `pixels` batch of listed pixels.
    fn batch_on_uarts(rows: &[Listed]) -> Batch {
        let u8s = |f: &dyn Fn(&Listed) -> u8| {
            Arc::new(UInt8Array::from_iter_values(rows.iter().map(f))) as ArrayRef
        };
        let f64s =
            |v: f64| Arc::new(Float64Array::from_iter_values(rows.iter().map(|_| v))) as ArrayRef;
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("io_group", u8s(&|_| 1)),
            ("io_channel", u8s(&|r| r.0)),
            ("chip_id", u8s(&|r| r.1)),
            ("channel_id", u8s(&|r| r.2)),
            ("tile", Arc::new(UInt16Array::from_iter_values(rows.iter().map(|_| 3)))),
            ("tpc", u8s(&|_| 1)),
            ("x_mm", Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3)))),
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

    /// The stream in several batches, gathered and indexed once (what the adapter does),
    /// gives the index that adding each batch gives.
    #[test]
    fn pixels_gathered_from_several_batches_are_the_pixels_added_one_by_one() {
        let batches = [
            batch_on_uarts(&[(1, 12, 5, 10.0), (2, 11, 7, 20.0), (5, 3, 1, 5.0)]),
            batch_on_uarts(&[(1, 12, 5, 30.0), (3, 11, 0, 40.0)]),
            batch_on_uarts(&[(9, 40, 63, -7.5), (2, 11, 7, 21.0)]),
        ];
        let (mut added, mut gathered) = (Pixels::default(), Pixels::default());
        for b in &batches {
            added.add(b).unwrap();
            gathered.gather(b).unwrap();
        }
        gathered.finish();
        assert_eq!(added.iter().collect::<Vec<_>>(), gathered.iter().collect::<Vec<_>>());
        assert_eq!(added.anodes(), gathered.anodes());
        for uart in 0..=12 {
            for (chip, channel) in [(12, 5), (11, 7), (11, 0), (3, 1), (40, 63), (13, 2)] {
                let key = unique_id(1, uart, chip, channel);
                assert_eq!(added.identify(key), gathered.identify(key), "{uart}-{chip}-{channel}");
            }
        }
    }

    /// With the host's total in the schema metadata, the pixel list is reserved once, at its
    /// size (grown batch by batch it doubled); a total that is wrong or missing is only a
    /// hint: every row is still gathered.
    #[test]
    fn gathered_pixels_are_reserved_at_the_total_the_host_gives() {
        let with_total = |b: Batch, total: &str| {
            let batch = b.record_batch();
            let metadata = HashMap::from([(TOTAL_ROWS.to_owned(), total.to_owned())]);
            let schema = Arc::new(batch.schema().as_ref().clone().with_metadata(metadata));
            Batch::new(batch.clone().with_schema(schema).unwrap())
        };
        let rows: Vec<Listed> =
            (0..300).map(|k| (1, (k / 64) as u8, (k % 64) as u8, 0.0)).collect();
        for (total, capacity) in [("300", 300), ("junk", 100), ("2", 100)] {
            let mut pixels = Pixels::default();
            for chunk in rows.chunks(100) {
                pixels.gather(&with_total(batch_on_uarts(chunk), total)).unwrap();
                if pixels.len() == 100 {
                    assert_eq!(pixels.by_id.capacity(), capacity, "total {total}");
                }
            }
            pixels.finish();
            assert_eq!(pixels.len(), 300, "total {total}");
        }
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
    fn the_lookup_table_finds_what_the_tile_rule_says_on_every_uart() {
        // Pixels on the first and last UART groups, io_channel 0, a channel listed on two UARTs
        // of one tile (the lower one wins for the other two) and one listed on UART 255.
        let listed: Vec<Listed> = [
            (0, 12, 1),
            (1, 12, 2),
            (3, 12, 3),
            (2, 12, 3),
            (4, 12, 4),
            (6, 12, 5),
            (8, 13, 5),
            (253, 12, 6),
            (254, 12, 7),
            (255, 12, 8),
            (255, 12, 9),
            (252, 12, 9),
        ]
        .iter()
        .enumerate()
        .map(|(k, &(uart, chip, channel))| (uart, chip, channel, k as f64))
        .collect();
        let mut pixels = Pixels::default();
        pixels.add(&batch_on_uarts(&listed)).unwrap();
        // The rule as the module docs state it, by brute force.
        let keys: std::collections::BTreeSet<u32> =
            listed.iter().map(|&(u, c, ch, _)| unique_id(1, u, c, ch)).collect();
        let by_rule = |key: u32| -> Option<u32> {
            if keys.contains(&key) {
                return Some(key);
            }
            let (g, uart, chip, channel) = channel_of(key);
            tile_uarts(uart).map(|u| unique_id(g, u, chip, channel)).find(|k| keys.contains(k))
        };
        for uart in 0..=255u8 {
            for (chip, channel) in (1..=9).map(|ch| (12, ch)).chain([(13, 5), (14, 1)]) {
                let key = unique_id(1, uart, chip, channel);
                let found = pixels.find(key).map(|p| p.unique_id);
                assert_eq!(found, by_rule(key), "uart {uart} chip {chip} channel {channel}");
                assert_eq!(pixels.get(key).map(|p| p.unique_id), keys.get(&key).copied());
                assert_eq!(pixels.identify(key), found.unwrap_or(key));
            }
        }
        assert_eq!(pixels.identify(unique_id(1, 4, 12, 3)), unique_id(1, 2, 12, 3));
        assert_eq!(pixels.identify(unique_id(1, 5, 13, 5)), unique_id(1, 8, 13, 5));
        assert_eq!(pixels.identify(unique_id(1, 255, 12, 7)), unique_id(1, 254, 12, 7));
    }

    #[test]
    fn statistics_by_packet_key_then_by_pixel_are_those_filled_by_pixel() {
        // Two UARTs of one tile: the chip is listed on UART 2, read on 2, 3 and 4; one channel
        // the detector does not have; whole-number values (ADC counts).
        let listed: Vec<Listed> =
            (1..=4).map(|channel| (2, 12, channel, f64::from(channel))).collect();
        let mut pixels = Pixels::default();
        pixels.add(&batch_on_uarts(&listed)).unwrap();
        let mut by_key = ChannelStats::default();
        let mut by_pixel = ChannelStats::default();
        let (mut counted_by_key, mut counted_by_pixel) =
            (ChannelCounts::default(), ChannelCounts::default());
        for k in 0..500u32 {
            let key = unique_id(1, 2 + (k % 3) as u8, 12, 1 + (k % 5) as u8);
            let value = f64::from((k * 37) % 256);
            by_key.fill(key, value);
            by_pixel.fill(pixels.identify(key), value);
            counted_by_key.count(key);
            counted_by_pixel.count(pixels.identify(key));
        }
        let regrouped = by_key.by_pixel(&pixels);
        assert_eq!(regrouped.iter().collect::<Vec<_>>(), by_pixel.iter().collect::<Vec<_>>());
        let counted = counted_by_key.by_pixel(&pixels);
        assert_eq!(*counted, counted_by_pixel);
        assert_eq!(counted.get(unique_id(1, 2, 12, 1)), 100);
        assert!(matches!(counted_by_pixel.by_pixel(&pixels), std::borrow::Cow::Borrowed(_)));
        // Three UARTs' packets of channel 1 on the listed pixel; channel 5 stays on each key.
        assert_eq!(regrouped.get(unique_id(1, 2, 12, 1)).unwrap().n, 100);
        assert_eq!(regrouped.get(unique_id(1, 3, 12, 5)).unwrap().n, 34);
        assert!(regrouped.get(unique_id(1, 3, 12, 1)).is_none());
        // Statistics already keyed by pixel are not copied.
        assert!(matches!(regrouped, std::borrow::Cow::Owned(_)));
        assert!(matches!(by_pixel.by_pixel(&pixels), std::borrow::Cow::Borrowed(_)));
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
