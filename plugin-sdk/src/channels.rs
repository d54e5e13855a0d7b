//! Per-channel accumulators: count, mean and RMS of a value per electronics channel (keyed by
//! `unique_id = ((io_group·256 + io_channel)·256 + chip_id)·64 + channel_id`), mergeable.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::geometry::Pixels;

/// The columns that identify a channel (what [`Batch::channel_keys`](crate::Batch::channel_keys)
/// reads): `.consumes("packets", CHANNEL_COLUMNS)`.
pub const CHANNEL_COLUMNS: &[&str] = &["io_group", "io_channel", "chip_id", "channel_id"];

/// The channel key of larmon and of the pedestal/configuration files.
pub fn unique_id(io_group: u8, io_channel: u8, chip_id: u8, channel_id: u8) -> u32 {
    ((u32::from(io_group) * 256 + u32::from(io_channel)) * 256 + u32::from(chip_id)) * 64
        + u32::from(channel_id)
}

/// (io_group, io_channel, chip_id, channel_id) of a key.
pub fn channel_of(unique_id: u32) -> (u8, u8, u8, u8) {
    (
        (unique_id >> 22) as u8,
        (unique_id >> 14) as u8,
        (unique_id >> 6) as u8,
        (unique_id & 63) as u8,
    )
}

/// Count, sum and sum of squares of a value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Entries.
    pub n: u64,
    /// Σ x.
    pub sum: f64,
    /// Σ x².
    pub sum_sq: f64,
}

impl Moments {
    /// Mean, if any entry.
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
    /// RMS about the mean (population), if any entry.
    pub fn rms(&self) -> Option<f64> {
        let mean = self.mean()?;
        Some((self.sum_sq / self.n as f64 - mean * mean).max(0.0).sqrt())
    }
}

/// Chips per storage block of [`ChannelStats`] (48 KiB).
const CHIPS_PER_BLOCK: usize = 32;

/// Finds a chip by direct indexing: (io_group, io_channel) → a table of 256 chips → the chip's
/// index (in the order chips were added). Three array loads, as fast in Wasm as natively (a
/// `BTreeMap` or a binary search per packet was 2.7× slower in Wasm and dominated plot time).
#[derive(Clone, Debug, Default)]
pub(crate) struct ChipIndex {
    /// (io_group·256 + io_channel) → 1 + index into `uart_chips`, 0 when unseen (up to the
    /// highest UART seen).
    uarts: Vec<u32>,
    /// Per UART, chip_id → 1 + chip index, 0 when unseen.
    uart_chips: Vec<[u32; 256]>,
    /// The chip key (`unique_id >> 6`) of each chip index.
    keys: Vec<u32>,
}

impl ChipIndex {
    /// The index of a chip (`unique_id >> 6`), if it was added.
    #[inline(always)]
    pub(crate) fn get(&self, chip_key: u32) -> Option<usize> {
        let uart = (chip_key >> 8) as usize & 0xffff;
        let found = match self.uarts.get(uart) {
            Some(&u) if u > 0 => self.uart_chips[u as usize - 1][chip_key as usize & 0xff],
            _ => 0,
        };
        (found > 0).then(|| found as usize - 1)
    }

    /// Adds a chip not yet present; returns its index (the number of chips before it).
    #[cold]
    #[inline(never)]
    pub(crate) fn add(&mut self, chip_key: u32) -> usize {
        let uart = (chip_key >> 8) as usize & 0xffff;
        if self.uarts.len() <= uart {
            // Sized to the highest UART seen (a few KiB for a detector), not all 65 536: a
            // fresh plugin instance pays a page fault for every page it touches.
            self.uarts.resize(uart + 1, 0);
        }
        if self.uarts[uart] == 0 {
            self.uart_chips.push([0; 256]);
            self.uarts[uart] = self.uart_chips.len() as u32;
        }
        let index = self.keys.len();
        self.keys.push(chip_key);
        self.uart_chips[self.uarts[uart] as usize - 1][chip_key as usize & 0xff] = index as u32 + 1;
        index
    }

    /// The chip key of each index, in index order.
    pub(crate) fn keys(&self) -> &[u32] {
        &self.keys
    }
}

/// [`Moments`] per channel, stored densely per chip (64 channels side by side) and found with a
/// [`ChipIndex`]: a fill is three array loads. Snapshots are columns in `unique_id` order,
/// `{"unique_id": [...], "n": [...], "sum": [...], "sum_sq": [...]}`, written straight from the
/// store (the 2x2's 337 k channels as a map of objects were 16 MB of JSON built through a
/// `BTreeMap` on both sides); the older `{unique_id: moments}` map is still read.
#[derive(Clone, Debug, Default)]
pub struct ChannelStats {
    chips: ChipIndex,
    /// 64 channels per chip, in blocks of [`CHIPS_PER_BLOCK`] chips (growing never copies).
    blocks: Vec<Box<[[Moments; 64]; CHIPS_PER_BLOCK]>>,
}

impl ChannelStats {
    #[inline(always)]
    fn slot(&mut self, chip_key: u32) -> &mut [Moments; 64] {
        let index = match self.chips.get(chip_key) {
            Some(index) => index,
            None => self.add_chip(chip_key),
        };
        &mut self.blocks[index / CHIPS_PER_BLOCK][index % CHIPS_PER_BLOCK]
    }

    #[cold]
    #[inline(never)]
    fn add_chip(&mut self, chip_key: u32) -> usize {
        let index = self.chips.add(chip_key);
        if index.is_multiple_of(CHIPS_PER_BLOCK) {
            self.blocks.push(Box::new([[Moments::default(); 64]; CHIPS_PER_BLOCK]));
        }
        index
    }

    fn find(&self, chip_key: u32) -> Option<&[Moments; 64]> {
        self.chips.get(chip_key).map(|index| self.chip(index))
    }

    fn chip(&self, index: usize) -> &[Moments; 64] {
        &self.blocks[index / CHIPS_PER_BLOCK][index % CHIPS_PER_BLOCK]
    }

    /// Adds `value` for a channel.
    #[inline(always)] // into the plugin's loop: a Wasm call costs stack and epoch checks
    pub fn fill(&mut self, unique_id: u32, value: f64) {
        let m = &mut self.slot(unique_id >> 6)[(unique_id & 63) as usize];
        m.n += 1;
        m.sum += value;
        m.sum_sq += value * value;
    }

    /// Adds moments for a channel.
    pub fn add(&mut self, unique_id: u32, moments: &Moments) {
        let m = &mut self.slot(unique_id >> 6)[(unique_id & 63) as usize];
        m.n += moments.n;
        m.sum += moments.sum;
        m.sum_sq += moments.sum_sq;
    }

    /// The same statistics keyed by each channel's pixel ([`Pixels::identify`]): fill with a
    /// packet's own channel key in the per-packet loop (one cache miss per packet instead of
    /// two: the pixel lookup waits until the report) and read this view in the report. A
    /// pixel read on two UARTs gets the sum of both keys' moments, added in key order: the
    /// same as filling by `identify` packet by packet whenever the values are whole numbers
    /// (ADC counts, or 0 for counting), whose sums in `f64` are exact. Borrowed, not copied,
    /// when every channel already has its pixel's key.
    pub fn by_pixel(&self, pixels: &Pixels) -> Cow<'_, ChannelStats> {
        if self.iter().all(|(id, _)| pixels.identify(id) == id) {
            return Cow::Borrowed(self);
        }
        let mut keyed = ChannelStats::default();
        for (id, m) in self.iter() {
            keyed.add(pixels.identify(id), &m);
        }
        Cow::Owned(keyed)
    }

    /// Adds another set of channels.
    pub fn merge(&mut self, other: &ChannelStats) {
        for (id, m) in other.iter() {
            self.add(id, &m);
        }
    }

    /// The moments of a channel, if it had entries.
    pub fn get(&self, unique_id: u32) -> Option<Moments> {
        let m = self.find(unique_id >> 6)?[(unique_id & 63) as usize];
        (m.n > 0).then_some(m)
    }

    /// Channels with entries, in `unique_id` order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, Moments)> + '_ {
        let mut chips: Vec<(u32, usize)> =
            self.chips.keys().iter().enumerate().map(|(index, key)| (*key, index)).collect();
        chips.sort_unstable();
        chips.into_iter().flat_map(move |(key, index)| {
            self.chip(index)
                .iter()
                .enumerate()
                .filter(|(_, m)| m.n > 0)
                .map(move |(channel, m)| ((key << 6) | channel as u32, *m))
        })
    }

    /// Number of channels with entries.
    pub fn len(&self) -> usize {
        (0..self.chips.keys().len()).flat_map(|i| self.chip(i)).filter(|m| m.n > 0).count()
    }

    /// True when no channel has entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PartialEq for ChannelStats {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

/// The snapshot's column names.
const SNAPSHOT_COLUMNS: [&str; 4] = ["unique_id", "n", "sum", "sum_sq"];

impl Serialize for ChannelStats {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        /// One column of the channels with entries, written as it is read from the store.
        struct Column<'a, T>(&'a ChannelStats, fn(u32, &Moments) -> T);
        impl<T: Serialize> Serialize for Column<'_, T> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.iter().map(|(id, m)| (self.1)(id, &m)))
            }
        }
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("unique_id", &Column(self, |id, _| id))?;
        map.serialize_entry("n", &Column(self, |_, m| m.n))?;
        map.serialize_entry("sum", &Column(self, |_, m| m.sum))?;
        map.serialize_entry("sum_sq", &Column(self, |_, m| m.sum_sq))?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for ChannelStats {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ChannelStats;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "per-channel columns (unique_id, n, sum, sum_sq) or {unique_id: moments}",
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                use serde::de::Error;
                let mut stats = ChannelStats::default();
                let (mut ids, mut n) = (None::<Vec<u32>>, None::<Vec<u64>>);
                let (mut sum, mut sum_sq) = (None::<Vec<f64>>, None::<Vec<f64>>);
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "unique_id" => ids = Some(map.next_value()?),
                        "n" => n = Some(map.next_value()?),
                        "sum" => sum = Some(map.next_value()?),
                        "sum_sq" => sum_sq = Some(map.next_value()?),
                        // The older snapshot: a map of channel key → moments.
                        id => {
                            let id = id
                                .parse::<u32>()
                                .map_err(|_| A::Error::unknown_field(id, &SNAPSHOT_COLUMNS))?;
                            stats.add(id, &map.next_value::<Moments>()?);
                        }
                    }
                }
                match (ids, n, sum, sum_sq) {
                    (None, None, None, None) => Ok(stats),
                    (Some(ids), Some(n), Some(sum), Some(sum_sq)) => {
                        if [n.len(), sum.len(), sum_sq.len()].iter().any(|l| *l != ids.len()) {
                            return Err(A::Error::custom("columns of different lengths"));
                        }
                        for (k, id) in ids.into_iter().enumerate() {
                            let m = Moments { n: n[k], sum: sum[k], sum_sq: sum_sq[k] };
                            stats.add(id, &m);
                        }
                        Ok(stats)
                    }
                    _ => Err(A::Error::custom("a column is missing (unique_id, n, sum, sum_sq)")),
                }
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn keys_round_trip_and_stats_merge() {
        let id = unique_id(2, 14, 61, 28);
        assert_eq!(channel_of(id), (2, 14, 61, 28));
        let (mut a, mut b, mut all) =
            (ChannelStats::default(), ChannelStats::default(), ChannelStats::default());
        for (k, v) in [1.0, 2.0, 3.0, 4.0].into_iter().enumerate() {
            all.fill(id, v);
            if k < 2 { a.fill(id, v) } else { b.fill(id, v) }
        }
        a.merge(&b);
        assert_eq!(a, all);
        let m = all.get(id).unwrap();
        assert_eq!(all.len(), 1);
        let snapshot = serde_json::to_string(&all).unwrap();
        assert_eq!(serde_json::from_str::<ChannelStats>(&snapshot).unwrap(), all);
        assert_eq!(m.mean(), Some(2.5));
        assert!((m.rms().unwrap() - 1.118_033_988_7).abs() < 1e-9);
    }

    #[test]
    fn channels_of_any_uart_and_chip_are_kept_apart() {
        // The UART table grows to the highest UART seen: fill low, then the highest key, then
        // low again, across more chips than one storage block holds.
        let mut stats = ChannelStats::default();
        let mut expected = BTreeMap::new();
        let keys = (0..40u8)
            .map(|chip| unique_id(1, 3, chip, chip % 64))
            .chain([unique_id(255, 255, 255, 63), unique_id(0, 0, 0, 0)])
            .chain((0..40u8).map(|chip| unique_id(8, 40, 200 - chip, 5)));
        for (n, key) in keys.enumerate() {
            stats.fill(key, n as f64);
            stats.fill(key, 1.0);
            expected.insert(key, (2, n as f64 + 1.0));
        }
        assert_eq!(stats.len(), expected.len());
        for (key, (n, sum)) in &expected {
            let m = stats.get(*key).unwrap();
            assert_eq!((m.n, m.sum), (*n, *sum), "channel {:?}", channel_of(*key));
        }
        assert!(stats.get(unique_id(255, 255, 254, 63)).is_none());
        let snapshot = serde_json::to_string(&stats).unwrap();
        assert_eq!(serde_json::from_str::<ChannelStats>(&snapshot).unwrap(), stats);
    }

    /// Snapshots are columns; the older map of moments is still read (a watcher's state written
    /// by an earlier larmon); damaged columns are refused.
    #[test]
    fn snapshots_are_columns_and_the_older_map_is_still_read() {
        let mut stats = ChannelStats::default();
        stats.fill(unique_id(1, 2, 3, 4), 10.0);
        stats.fill(unique_id(1, 2, 3, 4), 0.1);
        stats.fill(unique_id(8, 40, 200, 63), 7.0);
        let snapshot = serde_json::to_string(&stats).unwrap();
        assert_eq!(
            snapshot,
            format!(
                "{{\"unique_id\":[{},{}],\"n\":[2,1],\"sum\":[10.1,7.0],\"sum_sq\":[100.01,49.0]}}",
                unique_id(1, 2, 3, 4),
                unique_id(8, 40, 200, 63)
            )
        );
        let older: BTreeMap<u32, Moments> = stats.iter().collect();
        let older = serde_json::to_string(&older).unwrap();
        assert_eq!(serde_json::from_str::<ChannelStats>(&older).unwrap(), stats);
        assert_eq!(serde_json::from_str::<ChannelStats>("{}").unwrap(), ChannelStats::default());
        for bad in [
            r#"{"unique_id":[1,2],"n":[1],"sum":[1.0],"sum_sq":[1.0]}"#,
            r#"{"unique_id":[1],"n":[1],"sum":[1.0]}"#,
            r#"{"channel":[1]}"#,
        ] {
            assert!(serde_json::from_str::<ChannelStats>(bad).is_err(), "{bad}");
        }
    }
}
