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

/// Chips per storage block of a channel table (48 KiB of moments, 16 KiB of counts).
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

/// What a channel table holds per channel: empty until something is added, and added to
/// another cell of its kind field by field.
trait Cell: Copy + Default {
    fn is_filled(&self) -> bool;
    fn add(&mut self, other: &Self);
}

impl Cell for Moments {
    fn is_filled(&self) -> bool {
        self.n > 0
    }
    fn add(&mut self, other: &Self) {
        self.n += other.n;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
    }
}

impl Cell for u64 {
    fn is_filled(&self) -> bool {
        *self > 0
    }
    fn add(&mut self, other: &Self) {
        *self += other;
    }
}

/// One cell per channel, stored densely per chip (64 channels side by side) and found with a
/// [`ChipIndex`]: three array loads. The storage of [`ChannelStats`] and [`ChannelCounts`].
#[derive(Clone, Debug)]
struct ChannelTable<T> {
    chips: ChipIndex,
    /// 64 channels per chip, in blocks of [`CHIPS_PER_BLOCK`] chips (growing never copies).
    blocks: Vec<Box<[[T; 64]; CHIPS_PER_BLOCK]>>,
}

impl<T> Default for ChannelTable<T> {
    fn default() -> Self {
        Self { chips: ChipIndex::default(), blocks: Vec::new() }
    }
}

impl<T: Cell> ChannelTable<T> {
    /// The cell of a channel, added (default) if its chip is new.
    #[inline(always)]
    fn cell(&mut self, unique_id: u32) -> &mut T {
        let chip_key = unique_id >> 6;
        let index = match self.chips.get(chip_key) {
            Some(index) => index,
            None => self.add_chip(chip_key),
        };
        &mut self.blocks[index / CHIPS_PER_BLOCK][index % CHIPS_PER_BLOCK]
            [(unique_id & 63) as usize]
    }

    #[cold]
    #[inline(never)]
    fn add_chip(&mut self, chip_key: u32) -> usize {
        let index = self.chips.add(chip_key);
        if index.is_multiple_of(CHIPS_PER_BLOCK) {
            self.blocks.push(Box::new([[T::default(); 64]; CHIPS_PER_BLOCK]));
        }
        index
    }

    /// The cell of a channel whose chip was added.
    fn find(&self, unique_id: u32) -> Option<&T> {
        let index = self.chips.get(unique_id >> 6)?;
        Some(&self.chip(index)[(unique_id & 63) as usize])
    }

    fn chip(&self, index: usize) -> &[T; 64] {
        &self.blocks[index / CHIPS_PER_BLOCK][index % CHIPS_PER_BLOCK]
    }

    /// The cell of a channel, if it was filled.
    fn get(&self, unique_id: u32) -> Option<T> {
        self.find(unique_id).filter(|cell| cell.is_filled()).copied()
    }

    /// Adds `cell` to a channel's.
    fn add(&mut self, unique_id: u32, cell: &T) {
        self.cell(unique_id).add(cell);
    }

    /// The filled cells, in `unique_id` order.
    fn iter(&self) -> impl Iterator<Item = (u32, T)> + '_ {
        let mut chips: Vec<(u32, usize)> =
            self.chips.keys().iter().enumerate().map(|(index, key)| (*key, index)).collect();
        chips.sort_unstable();
        chips.into_iter().flat_map(move |(key, index)| {
            self.chip(index)
                .iter()
                .enumerate()
                .filter(|(_, cell)| cell.is_filled())
                .map(move |(channel, cell)| ((key << 6) | channel as u32, *cell))
        })
    }

    /// Adds another table, channel by channel.
    fn merge(&mut self, other: &Self) {
        for (id, cell) in other.iter() {
            self.add(id, &cell);
        }
    }

    /// The table keyed by each channel's pixel ([`Pixels::identify`]), cells added in key
    /// order; `None` when every channel already has its pixel's key.
    fn by_pixel(&self, pixels: &Pixels) -> Option<Self> {
        if self.iter().all(|(id, _)| pixels.identify(id) == id) {
            return None;
        }
        let mut keyed = Self::default();
        for (id, cell) in self.iter() {
            keyed.add(pixels.identify(id), &cell);
        }
        Some(keyed)
    }
}

impl<T: Cell + PartialEq> PartialEq for ChannelTable<T> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

/// One snapshot column: `value` of each filled channel, in `unique_id` order, written as it is
/// read from the table.
struct SnapshotColumn<'a, T, V>(&'a ChannelTable<T>, fn(u32, &T) -> V);

impl<T: Cell, V: Serialize> Serialize for SnapshotColumn<'_, T, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(id, cell)| (self.1)(id, &cell)))
    }
}

/// [`Moments`] per channel, stored densely per chip and found with a [`ChipIndex`]: a fill is
/// three array loads. Snapshots are columns in `unique_id` order,
/// `{"unique_id": [...], "n": [...], "sum": [...], "sum_sq": [...]}`, written straight from the
/// store (the 2x2's 337 k channels as a map of objects were 16 MB of JSON built through a
/// `BTreeMap` on both sides); the older `{unique_id: moments}` map is still read. To count
/// packets only, [`ChannelCounts`] keeps a third of the memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelStats {
    table: ChannelTable<Moments>,
}

impl ChannelStats {
    /// Adds `value` for a channel.
    #[inline(always)] // into the plugin's loop: a Wasm call costs stack and epoch checks
    pub fn fill(&mut self, unique_id: u32, value: f64) {
        let m = self.table.cell(unique_id);
        m.n += 1;
        m.sum += value;
        m.sum_sq += value * value;
    }

    /// Adds moments for a channel.
    pub fn add(&mut self, unique_id: u32, moments: &Moments) {
        self.table.add(unique_id, moments);
    }

    /// The same statistics keyed by each channel's pixel ([`Pixels::identify`]): fill with a
    /// packet's own channel key in the per-packet loop (one cache miss per packet instead of
    /// two: the pixel lookup waits until the report) and read this view in the report. A
    /// pixel read on two UARTs gets the sum of both keys' moments, added in key order: the
    /// same as filling by `identify` packet by packet whenever the values are whole numbers
    /// (ADC counts, or 0 for counting), whose sums in `f64` are exact. Borrowed, not copied,
    /// when every channel already has its pixel's key.
    pub fn by_pixel(&self, pixels: &Pixels) -> Cow<'_, ChannelStats> {
        match self.table.by_pixel(pixels) {
            Some(table) => Cow::Owned(ChannelStats { table }),
            None => Cow::Borrowed(self),
        }
    }

    /// Adds another set of channels.
    pub fn merge(&mut self, other: &ChannelStats) {
        self.table.merge(&other.table);
    }

    /// The moments of a channel, if it had entries.
    pub fn get(&self, unique_id: u32) -> Option<Moments> {
        self.table.get(unique_id)
    }

    /// Channels with entries, in `unique_id` order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, Moments)> + '_ {
        self.table.iter()
    }

    /// Number of channels with entries.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True when no channel has entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A count per channel (packets, hits, …): what [`ChannelStats`] holds in `n`, in 8 bytes per
/// channel instead of 24. Filled once per packet at a random channel of the 2x2's 337 k, the
/// smaller table (2.7 MB) stays in the cache where the moments (8 MB) did not.
/// Snapshots are `{"unique_id": [...], "n": [...]}`; a [`ChannelStats`] snapshot (columns or
/// the older map) is read as its counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelCounts {
    table: ChannelTable<u64>,
}

impl ChannelCounts {
    /// Counts one for a channel.
    #[inline(always)] // into the plugin's loop
    pub fn count(&mut self, unique_id: u32) {
        *self.table.cell(unique_id) += 1;
    }

    /// Adds `n` for a channel.
    pub fn add(&mut self, unique_id: u32, n: u64) {
        self.table.add(unique_id, &n);
    }

    /// The count of a channel (0 if never counted).
    pub fn get(&self, unique_id: u32) -> u64 {
        self.table.get(unique_id).unwrap_or(0)
    }

    /// Channels counted, in `unique_id` order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.table.iter()
    }

    /// Number of channels counted.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True when no channel was counted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &ChannelCounts) {
        self.table.merge(&other.table);
    }

    /// The same counts keyed by each channel's pixel, as [`ChannelStats::by_pixel`].
    pub fn by_pixel(&self, pixels: &Pixels) -> Cow<'_, ChannelCounts> {
        match self.table.by_pixel(pixels) {
            Some(table) => Cow::Owned(ChannelCounts { table }),
            None => Cow::Borrowed(self),
        }
    }
}

impl Serialize for ChannelCounts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("unique_id", &SnapshotColumn(&self.table, |id, _| id))?;
        map.serialize_entry("n", &SnapshotColumn(&self.table, |_, n| *n))?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for ChannelCounts {
    /// Its own columns, or a [`ChannelStats`] snapshot's counts (what a plugin that counted
    /// with moments wrote before).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(ChannelCounts { table: read_snapshot(deserializer)? })
    }
}

/// The snapshot's column names.
const SNAPSHOT_COLUMNS: [&str; 4] = ["unique_id", "n", "sum", "sum_sq"];

impl Serialize for ChannelStats {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("unique_id", &SnapshotColumn(&self.table, |id, _| id))?;
        map.serialize_entry("n", &SnapshotColumn(&self.table, |_, m| m.n))?;
        map.serialize_entry("sum", &SnapshotColumn(&self.table, |_, m| m.sum))?;
        map.serialize_entry("sum_sq", &SnapshotColumn(&self.table, |_, m| m.sum_sq))?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for ChannelStats {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(ChannelStats { table: read_snapshot(deserializer)? })
    }
}

/// A cell a snapshot is read into, column by column.
trait SnapshotCell: Cell {
    /// Whether the `sum` and `sum_sq` columns must be present (else they are checked and
    /// skipped).
    const WITH_SUMS: bool;
    /// Adds a value of column `column` (1: `n`, 2: `sum`, 3: `sum_sq`).
    fn add_column(&mut self, column: usize, value: ColumnValue);
    /// Adds a channel of the older `{unique_id: moments}` snapshot.
    fn add_moments(&mut self, moments: &Moments);
}

/// A value of a snapshot column: `n` is a count, the sums are floats.
#[derive(Clone, Copy)]
enum ColumnValue {
    Count(u64),
    Float(f64),
}

impl SnapshotCell for Moments {
    const WITH_SUMS: bool = true;
    fn add_column(&mut self, column: usize, value: ColumnValue) {
        match (column, value) {
            (1, ColumnValue::Count(n)) => self.n += n,
            (2, ColumnValue::Float(sum)) => self.sum += sum,
            (3, ColumnValue::Float(sum_sq)) => self.sum_sq += sum_sq,
            _ => {}
        }
    }
    fn add_moments(&mut self, moments: &Moments) {
        self.add(moments);
    }
}

impl SnapshotCell for u64 {
    const WITH_SUMS: bool = false;
    fn add_column(&mut self, column: usize, value: ColumnValue) {
        if let (1, ColumnValue::Count(n)) = (column, value) {
            *self += n;
        }
    }
    fn add_moments(&mut self, moments: &Moments) {
        *self += moments.n;
    }
}

/// Reads a snapshot into a table: the columns (`unique_id`, `n`, and `sum`, `sum_sq` unless
/// the cells are counts) or the older `{unique_id: moments}` map. Each value column is added
/// to the cells as it is read, after the `unique_id` column (the order snapshots are written
/// in), so no column but the keys is held beside the table: read into four vectors first, the
/// 2x2's channels took 14 MB more of the instance's memory, which Wasm keeps.
fn read_snapshot<'de, T: SnapshotCell, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<ChannelTable<T>, D::Error> {
    struct Visitor<T>(std::marker::PhantomData<T>);
    impl<'de, T: SnapshotCell> serde::de::Visitor<'de> for Visitor<T> {
        type Value = ChannelTable<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("per-channel columns (unique_id, n, sum, sum_sq) or {unique_id: moments}")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            use serde::de::Error;
            let mut table = ChannelTable::<T>::default();
            let mut ids: Option<Vec<u32>> = None;
            // Value columns read before the keys (not written so, but valid JSON), then added.
            let mut early: Vec<(usize, Vec<ColumnValue>)> = Vec::new();
            let mut lengths: [Option<usize>; 4] = [None; 4];
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                let column = SNAPSHOT_COLUMNS.iter().position(|c| *c == key.as_ref());
                match (column, &ids) {
                    (Some(0), _) => {
                        let keys: Vec<u32> = map.next_value()?;
                        lengths[0] = Some(keys.len());
                        ids = Some(keys);
                    }
                    (Some(column), Some(keys)) => {
                        let seed = ColumnInto { keys, table: &mut table, column };
                        lengths[column] = Some(map.next_value_seed(seed)?);
                    }
                    (Some(column), None) => {
                        let values = map.next_value_seed(ColumnValues { column })?;
                        lengths[column] = Some(values.len());
                        early.push((column, values));
                    }
                    // The older snapshot: a map of channel key → moments.
                    (None, _) => {
                        let id = key
                            .parse::<u32>()
                            .map_err(|_| A::Error::unknown_field(&key, &SNAPSHOT_COLUMNS))?;
                        table.cell(id).add_moments(&map.next_value::<Moments>()?);
                    }
                }
            }
            let needed = if T::WITH_SUMS { 4 } else { 2 };
            match lengths {
                [None, None, None, None] => return Ok(table),
                _ if lengths[..needed].iter().any(Option::is_none) => {
                    return Err(A::Error::custom(
                        "a column is missing (unique_id, n, sum, sum_sq)",
                    ));
                }
                _ if lengths.iter().flatten().any(|l| Some(*l) != lengths[0]) => {
                    return Err(A::Error::custom("columns of different lengths"));
                }
                _ => {}
            }
            let keys = ids.unwrap_or_default();
            for (column, values) in early {
                for (id, value) in keys.iter().zip(values) {
                    table.cell(*id).add_column(column, value);
                }
            }
            Ok(table)
        }
    }
    deserializer.deserialize_map(Visitor(std::marker::PhantomData))
}

/// Reads one value column of a snapshot, adding each value to the cell of the key at its
/// place; gives the column's length (values past the keys are counted, not added).
struct ColumnInto<'t, T> {
    keys: &'t [u32],
    table: &'t mut ChannelTable<T>,
    column: usize,
}

impl<'de, T: SnapshotCell> serde::de::DeserializeSeed<'de> for ColumnInto<'_, T> {
    type Value = usize;
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: SnapshotCell> serde::de::Visitor<'de> for ColumnInto<'_, T> {
    type Value = usize;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "the {} column", SNAPSHOT_COLUMNS[self.column])
    }
    fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> Result<usize, S::Error> {
        let mut count = 0;
        while let Some(value) = next_column_value(&mut seq, self.column)? {
            if let Some(id) = self.keys.get(count) {
                self.table.cell(*id).add_column(self.column, value);
            }
            count += 1;
        }
        Ok(count)
    }
}

/// Reads one value column of a snapshot whose keys come later.
struct ColumnValues {
    column: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for ColumnValues {
    type Value = Vec<ColumnValue>;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ColumnValues {
    type Value = Vec<ColumnValue>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "the {} column", SNAPSHOT_COLUMNS[self.column])
    }
    fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let mut values = Vec::new();
        while let Some(value) = next_column_value(&mut seq, self.column)? {
            values.push(value);
        }
        Ok(values)
    }
}

/// The next value of column `column`: a count for `n`, a float for the sums.
fn next_column_value<'de, S: serde::de::SeqAccess<'de>>(
    seq: &mut S,
    column: usize,
) -> Result<Option<ColumnValue>, S::Error> {
    Ok(if column == 1 {
        seq.next_element::<u64>()?.map(ColumnValue::Count)
    } else {
        seq.next_element::<f64>()?.map(ColumnValue::Float)
    })
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
        // The value columns are added as they are read, after the keys; before them (valid
        // JSON, though never written so) they are held and added at the end.
        let keys_last = format!(
            "{{\"n\":[2,1],\"sum\":[10.1,7.0],\"sum_sq\":[100.01,49.0],\"unique_id\":[{},{}]}}",
            unique_id(1, 2, 3, 4),
            unique_id(8, 40, 200, 63)
        );
        assert_eq!(serde_json::from_str::<ChannelStats>(&keys_last).unwrap(), stats);
        for bad in [
            r#"{"unique_id":[1,2],"n":[1],"sum":[1.0],"sum_sq":[1.0]}"#,
            r#"{"unique_id":[1],"n":[1,2],"sum":[1.0],"sum_sq":[1.0]}"#,
            r#"{"n":[1,2],"sum":[1.0,2.0],"sum_sq":[1.0,2.0],"unique_id":[1]}"#,
            r#"{"unique_id":[1],"n":[1.5],"sum":[1.0],"sum_sq":[1.0]}"#,
            r#"{"unique_id":[1],"n":[1],"sum":[1.0]}"#,
            r#"{"channel":[1]}"#,
        ] {
            assert!(serde_json::from_str::<ChannelStats>(bad).is_err(), "{bad}");
        }
    }

    /// Counts are the moments' `n`, channel by channel, across chips of several storage
    /// blocks and UARTs; they merge, regroup by pixel and round-trip through their snapshot
    /// like the moments, and read a snapshot of moments (what channel-health wrote before it
    /// counted) as its counts.
    #[test]
    fn counts_are_the_moments_counts_and_read_their_snapshots() {
        let (mut stats, mut counts) = (ChannelStats::default(), ChannelCounts::default());
        let (mut a, mut b) = (ChannelCounts::default(), ChannelCounts::default());
        let mut bits = 12345u32;
        for k in 0..20_000u32 {
            bits = bits.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let key = unique_id(
                1 + (bits >> 28) as u8 % 3,
                (bits >> 20) as u8 % 5,
                (bits >> 8) as u8,
                (bits % 64) as u8,
            );
            stats.fill(key, f64::from(k % 7));
            counts.count(key);
            if k % 3 == 0 { a.count(key) } else { b.count(key) }
        }
        assert!(counts.len() > 5_000 && counts.len() == stats.len());
        let moments_n: Vec<(u32, u64)> = stats.iter().map(|(id, m)| (id, m.n)).collect();
        assert_eq!(counts.iter().collect::<Vec<_>>(), moments_n);
        for (id, n) in &moments_n {
            assert_eq!(counts.get(*id), *n);
        }
        assert_eq!(counts.get(unique_id(200, 1, 1, 1)), 0);
        a.merge(&b);
        assert_eq!(a, counts);

        let snapshot = serde_json::to_string(&counts).unwrap();
        assert!(snapshot.starts_with("{\"unique_id\":[") && !snapshot.contains("sum"));
        assert_eq!(serde_json::from_str::<ChannelCounts>(&snapshot).unwrap(), counts);
        let of_moments = serde_json::to_string(&stats).unwrap();
        assert_eq!(serde_json::from_str::<ChannelCounts>(&of_moments).unwrap(), counts);
        let older: BTreeMap<u32, Moments> = stats.iter().collect();
        let older = serde_json::to_string(&older).unwrap();
        assert_eq!(serde_json::from_str::<ChannelCounts>(&older).unwrap(), counts);
        assert!(serde_json::from_str::<ChannelStats>(&snapshot).is_err(), "counts have no sums");
        assert!(serde_json::from_str::<ChannelCounts>(r#"{"unique_id":[1,2],"n":[1]}"#).is_err());
    }
}
