//! The `channels` stream: per electronics channel, what its valid data packets (type 0, good
//! parity) added up to since the last flush — packets, Σ ADC, Σ ADC², first and last Unix time.
//!
//! Plugins that keep only per-channel totals (pixel maps, channel health) read this instead of
//! every packet: the host sums natively once, the plugins add a few hundred thousand rows per file
//! instead of millions of packets each. Nothing is lost: the sums are whole numbers, exact in a
//! plugin's `f64` accumulators in any grouping, so totals equal the packet-by-packet ones.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, RecordBatch, UInt8Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use larmon_decode::PacketColumns;

/// Name of the stream (`larmon.stream`).
pub const CHANNELS_STREAM: &str = "channels";
/// Version of the `channels` schema (`larmon.schema_version`).
pub const CHANNELS_SCHEMA_VERSION: &str = "1";
/// Rows per record batch of a flush.
const ROWS_PER_BATCH: usize = 1 << 15;
/// Chips held before a flush is forced: the 2x2 has ~5 300; garbage keys in a corrupt file
/// cannot grow the table past this (64 channels × 40 B per chip: 42 MB).
const MAX_CHIPS: usize = 16_384;

/// The schema of the `channels` stream.
pub fn channels_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let key = |name| Field::new(name, DataType::UInt8, false);
            let sum = |name| Field::new(name, DataType::UInt64, false);
            let time = |name| Field::new(name, DataType::UInt64, true);
            let fields = vec![
                key("io_group"),
                key("io_channel"),
                key("chip_id"),
                key("channel_id"),
                sum("packets"),
                sum("adc_sum"),
                sum("adc_sum_sq"),
                time("first_unix_time"),
                time("last_unix_time"),
            ];
            let metadata = HashMap::from([
                ("larmon.stream".to_owned(), CHANNELS_STREAM.to_owned()),
                ("larmon.schema_version".to_owned(), CHANNELS_SCHEMA_VERSION.to_owned()),
            ]);
            Arc::new(Schema::new_with_metadata(fields, metadata))
        })
        .clone()
}

/// One channel's sums; `first > last` while no packet had a known Unix time.
#[derive(Clone, Copy, Debug)]
struct Sums {
    packets: u64,
    adc_sum: u64,
    adc_sum_sq: u64,
    first: u64,
    last: u64,
}

impl Default for Sums {
    fn default() -> Self {
        Self { packets: 0, adc_sum: 0, adc_sum_sq: 0, first: u64::MAX, last: 0 }
    }
}

/// Sums valid data packets per channel until [`flush`](ChannelActivity::flush)ed. A channel is
/// found in three array loads: (io_group, io_channel) → that UART's 256 chips → the chip's 64
/// channels.
#[derive(Default)]
pub struct ChannelActivity {
    /// (io_group·256 + io_channel) → 1 + index into `uart_chips`, 0 when unseen.
    uarts: Vec<u32>,
    /// Per UART, chip_id → 1 + chip index, 0 when unseen.
    uart_chips: Vec<[u32; 256]>,
    /// Chip key (`(io_group·256 + io_channel)·256 + chip_id`) of each chip index.
    chip_keys: Vec<u32>,
    /// The 64 channels of each chip index, chip after chip.
    cells: Vec<Sums>,
    /// Chip indices with a packet since the last flush, and the flag that lists them once.
    touched: Vec<u32>,
    is_touched: Vec<bool>,
    /// (cell, row) of each valid data packet of the batch being added.
    found: Vec<(u32, u32)>,
}

impl ChannelActivity {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a batch's valid data packets. Returns the batches of a forced flush when the batch
    /// brought more chips than [`MAX_CHIPS`] (only a corrupt file does), else nothing.
    ///
    /// Two passes: the first finds every packet's cell (small tables, in cache), the second
    /// adds to the cells. The cells (13 MB for the 2x2) miss the cache on nearly every packet;
    /// with nothing else in the second loop the processor waits for many misses at once.
    pub fn add(&mut self, packets: &PacketColumns) -> Vec<RecordBatch> {
        let mut forced = Vec::new();
        let mut found = std::mem::take(&mut self.found);
        found.clear();
        for i in 0..packets.packet_type.len() {
            if packets.packet_type[i] != 0 || packets.valid_parity[i] != 1 {
                continue;
            }
            let uart = usize::from(packets.io_group[i]) << 8 | usize::from(packets.io_channel[i]);
            let chip_id = packets.chip_id[i];
            let index = match self.chip_index(uart, chip_id) {
                Some(index) => index,
                None => {
                    if self.chip_keys.len() >= MAX_CHIPS {
                        self.add_cells(packets, &found);
                        found.clear();
                        forced.extend(self.flush());
                        self.forget_chips();
                    }
                    self.add_chip(uart, chip_id)
                }
            };
            if !self.is_touched[index] {
                self.is_touched[index] = true;
                self.touched.push(index as u32);
            }
            let cell = index * 64 + usize::from(packets.channel_id[i] & 63);
            found.push((cell as u32, i as u32));
        }
        self.add_cells(packets, &found);
        self.found = found;
        forced
    }

    /// Adds the packets at `found` (cell, row) to their cells.
    fn add_cells(&mut self, packets: &PacketColumns, found: &[(u32, u32)]) {
        let unknown = packets.rows_without_unix_time;
        let (adc, unix) = (&packets.dataword[..], &packets.unix_time[..]);
        for &(cell, row) in found {
            let (cell, row) = (cell as usize, row as usize);
            let sums = &mut self.cells[cell];
            let value = u64::from(adc[row]);
            sums.packets += 1;
            sums.adc_sum += value;
            sums.adc_sum_sq += value * value;
            if row >= unknown {
                let t = unix[row];
                sums.first = sums.first.min(t);
                sums.last = sums.last.max(t);
            }
        }
    }

    #[inline(always)]
    fn chip_index(&self, uart: usize, chip_id: u8) -> Option<usize> {
        match self.uarts.get(uart) {
            Some(&u) if u > 0 => {
                let found = self.uart_chips[u as usize - 1][usize::from(chip_id)];
                (found > 0).then(|| found as usize - 1)
            }
            _ => None,
        }
    }

    #[cold]
    #[inline(never)]
    fn add_chip(&mut self, uart: usize, chip_id: u8) -> usize {
        if self.uarts.len() <= uart {
            self.uarts.resize(uart + 1, 0);
        }
        if self.uarts[uart] == 0 {
            self.uart_chips.push([0; 256]);
            self.uarts[uart] = self.uart_chips.len() as u32;
        }
        let index = self.chip_keys.len();
        self.cells.extend([Sums::default(); 64]);
        self.chip_keys.push((uart as u32) << 8 | u32::from(chip_id));
        self.is_touched.push(false);
        self.uart_chips[self.uarts[uart] as usize - 1][usize::from(chip_id)] = index as u32 + 1;
        index
    }

    fn forget_chips(&mut self) {
        self.uarts.clear();
        self.uart_chips.clear();
        self.chip_keys.clear();
        self.cells.clear();
        self.is_touched.clear();
    }

    /// Whether anything was added since the last flush.
    pub fn is_empty(&self) -> bool {
        self.touched.is_empty()
    }

    /// The channels with packets since the last flush, in channel-key order, as record batches
    /// of the `channels` schema; the sums start again from zero.
    pub fn flush(&mut self) -> Vec<RecordBatch> {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable_by_key(|&index| self.chip_keys[index as usize]);
        let mut out = Vec::new();
        let mut rows = Rows::default();
        for index in touched.drain(..) {
            let index = index as usize;
            self.is_touched[index] = false;
            let key = self.chip_keys[index];
            for (channel, sums) in self.cells[index * 64..][..64].iter_mut().enumerate() {
                if sums.packets == 0 {
                    continue;
                }
                rows.push(key, channel as u8, sums);
                *sums = Sums::default();
                if rows.len() == ROWS_PER_BATCH {
                    out.push(std::mem::take(&mut rows).into_record_batch());
                }
            }
        }
        if rows.len() > 0 {
            out.push(rows.into_record_batch());
        }
        self.touched = touched;
        out
    }
}

/// Columns of one flushed batch.
#[derive(Default)]
struct Rows {
    io_group: Vec<u8>,
    io_channel: Vec<u8>,
    chip_id: Vec<u8>,
    channel_id: Vec<u8>,
    packets: Vec<u64>,
    adc_sum: Vec<u64>,
    adc_sum_sq: Vec<u64>,
    first: Vec<Option<u64>>,
    last: Vec<Option<u64>>,
}

impl Rows {
    fn len(&self) -> usize {
        self.packets.len()
    }

    fn push(&mut self, chip_key: u32, channel: u8, sums: &Sums) {
        self.io_group.push((chip_key >> 16) as u8);
        self.io_channel.push((chip_key >> 8) as u8);
        self.chip_id.push(chip_key as u8);
        self.channel_id.push(channel);
        self.packets.push(sums.packets);
        self.adc_sum.push(sums.adc_sum);
        self.adc_sum_sq.push(sums.adc_sum_sq);
        let known = sums.first <= sums.last;
        self.first.push(known.then_some(sums.first));
        self.last.push(known.then_some(sums.last));
    }

    fn into_record_batch(self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt8Array::from(self.io_group)),
            Arc::new(UInt8Array::from(self.io_channel)),
            Arc::new(UInt8Array::from(self.chip_id)),
            Arc::new(UInt8Array::from(self.channel_id)),
            Arc::new(UInt64Array::from(self.packets)),
            Arc::new(UInt64Array::from(self.adc_sum)),
            Arc::new(UInt64Array::from(self.adc_sum_sq)),
            Arc::new(UInt64Array::from(self.first)),
            Arc::new(UInt64Array::from(self.last)),
        ];
        RecordBatch::try_new(channels_schema(), columns).expect("columns match the channels schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{UInt8Type, UInt64Type};
    use larmon_decode::PacketRow;

    fn packet(group: u8, uart: u8, chip: u8, channel: u8, adc: u8, unix: u64) -> PacketRow {
        PacketRow {
            io_group: group,
            io_channel: uart,
            chip_id: chip,
            channel_id: channel,
            packet_type: 0,
            valid_parity: 1,
            dataword: adc,
            unix_time: unix,
            ..PacketRow::default()
        }
    }

    fn columns_of(rows: &[PacketRow]) -> PacketColumns {
        let mut columns = PacketColumns::default();
        for row in rows {
            columns.push(row);
        }
        columns
    }

    /// (key, packets, Σ adc, Σ adc², first, last) of every row of the flushed batches.
    type Row = ((u8, u8, u8, u8), u64, u64, u64, Option<u64>, Option<u64>);

    fn rows_of(batches: &[RecordBatch]) -> Vec<Row> {
        let mut out = Vec::new();
        for b in batches {
            let u8s = |i: usize| b.column(i).as_primitive::<UInt8Type>().values().to_vec();
            let u64s = |i: usize| b.column(i).as_primitive::<UInt64Type>().clone();
            let (g, u, c, ch) = (u8s(0), u8s(1), u8s(2), u8s(3));
            let (n, s, sq, first, last) = (u64s(4), u64s(5), u64s(6), u64s(7), u64s(8));
            for r in 0..b.num_rows() {
                out.push((
                    (g[r], u[r], c[r], ch[r]),
                    n.value(r),
                    s.value(r),
                    sq.value(r),
                    first.is_valid(r).then(|| first.value(r)),
                    last.is_valid(r).then(|| last.value(r)),
                ));
            }
        }
        out
    }

    #[test]
    fn valid_data_packets_are_summed_per_channel_in_key_order_and_the_rest_is_skipped() {
        let mut rows = vec![
            packet(2, 1, 20, 5, 10, 100),
            packet(1, 3, 11, 63, 255, 101),
            packet(2, 1, 20, 5, 30, 99),
            packet(1, 3, 11, 0, 7, 102),
        ];
        let mut bad_parity = packet(1, 3, 11, 0, 200, 50);
        bad_parity.valid_parity = 0;
        let mut trigger = packet(1, 3, 11, 0, 200, 50);
        trigger.packet_type = 7;
        rows.extend([bad_parity, trigger]);
        let mut activity = ChannelActivity::new();
        assert!(activity.add(&columns_of(&rows)).is_empty());
        let flushed = activity.flush();
        assert_eq!(flushed[0].schema(), channels_schema());
        assert_eq!(
            rows_of(&flushed),
            vec![
                ((1, 3, 11, 0), 1, 7, 49, Some(102), Some(102)),
                ((1, 3, 11, 63), 1, 255, 255 * 255, Some(101), Some(101)),
                ((2, 1, 20, 5), 2, 40, 100 + 900, Some(99), Some(100)),
            ]
        );
        assert!(activity.is_empty());
        assert!(activity.flush().is_empty(), "a flush starts the sums again");
        activity.add(&columns_of(&rows[..1]));
        assert_eq!(
            rows_of(&activity.flush()),
            vec![((2, 1, 20, 5), 1, 10, 100, Some(100), Some(100))]
        );
    }

    #[test]
    fn packets_before_the_first_unix_time_count_without_a_time() {
        let mut columns = columns_of(&[packet(1, 1, 12, 3, 9, 0), packet(1, 1, 12, 4, 9, 0)]);
        columns.rows_without_unix_time = 1;
        columns.unix_time[1] = 1_700_000_000;
        let mut activity = ChannelActivity::new();
        activity.add(&columns);
        assert_eq!(
            rows_of(&activity.flush()),
            vec![
                ((1, 1, 12, 3), 1, 9, 81, None, None),
                ((1, 1, 12, 4), 1, 9, 81, Some(1_700_000_000), Some(1_700_000_000)),
            ]
        );
    }

    #[test]
    fn a_corrupt_file_with_endless_chips_flushes_instead_of_growing() {
        let rows: Vec<PacketRow> = (0..MAX_CHIPS as u32 + 10)
            .map(|k| packet(1 + (k >> 16) as u8, (k >> 8) as u8, k as u8, 1, 2, 5))
            .collect();
        let mut activity = ChannelActivity::new();
        let forced = activity.add(&columns_of(&rows));
        assert!(activity.chip_keys.len() <= MAX_CHIPS);
        let mut all = rows_of(&forced);
        all.extend(rows_of(&activity.flush()));
        assert_eq!(all.len(), rows.len(), "every packet is in exactly one row");
        assert_eq!(all.iter().map(|r| r.1).sum::<u64>(), rows.len() as u64);
    }
}
