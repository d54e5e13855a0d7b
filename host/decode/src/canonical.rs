//! Fast conversion between canonical 36-byte packet records (the 2.4 file layout) and columns.
//!
//! 16 of the 22 columns are single bytes at record offsets 0–7 and 16–23. For 8 records at a
//! time those bytes form two 8×8 byte matrices; transposing each in registers turns 8 rows of
//! one column into one 8-byte store, instead of 8 scalar strided loads and stores. The other
//! columns are copied row by row. The generic, layout-driven path lives in the ingest crate; this
//! one is checked against [`PacketRow::to_canonical_bytes`] in the tests below.

use crate::columns::{CANONICAL_RECORD_SIZE, PacketColumns};

/// Transposes an 8×8 matrix of bytes held as 8 little-endian words (word = row, byte = column).
#[inline(always)]
fn transpose_8x8(m: &mut [u64; 8]) {
    // Swap 4×4 blocks, then 2×2 blocks of the blocks, then single bytes (Hacker's Delight 7-3).
    for i in 0..4 {
        let t = ((m[i] >> 32) ^ m[i + 4]) & 0x0000_0000_FFFF_FFFF;
        m[i + 4] ^= t;
        m[i] ^= t << 32;
    }
    for i in [0, 1, 4, 5] {
        let t = ((m[i] >> 16) ^ m[i + 2]) & 0x0000_FFFF_0000_FFFF;
        m[i + 2] ^= t;
        m[i] ^= t << 16;
    }
    for i in [0, 2, 4, 6] {
        let t = ((m[i] >> 8) ^ m[i + 1]) & 0x00FF_00FF_00FF_00FF;
        m[i + 1] ^= t;
        m[i] ^= t << 8;
    }
}

#[inline(always)]
fn word(record: &[u8; CANONICAL_RECORD_SIZE], at: usize) -> u64 {
    u64::from_le_bytes(record[at..at + 8].try_into().expect("8 bytes"))
}

impl PacketColumns {
    /// Replaces the content with the rows of canonical 36-byte records.
    pub fn decode_canonical(&mut self, records: &[[u8; CANONICAL_RECORD_SIZE]]) {
        self.clear();
        self.reserve(records.len());
        let (groups, rest) = records.as_chunks::<8>();
        for group in groups {
            let mut low = [0u64; 8];
            let mut high = [0u64; 8];
            for (r, record) in group.iter().enumerate() {
                low[r] = word(record, 0);
                high[r] = word(record, 16);
            }
            transpose_8x8(&mut low);
            transpose_8x8(&mut high);
            let bytes = |w: u64| w.to_le_bytes();
            self.io_group.extend_from_slice(&bytes(low[0]));
            self.io_channel.extend_from_slice(&bytes(low[1]));
            self.chip_id.extend_from_slice(&bytes(low[2]));
            self.packet_type.extend_from_slice(&bytes(low[3]));
            self.downstream_marker.extend_from_slice(&bytes(low[4]));
            self.parity.extend_from_slice(&bytes(low[5]));
            self.valid_parity.extend_from_slice(&bytes(low[6]));
            self.channel_id.extend_from_slice(&bytes(low[7]));
            self.dataword.extend_from_slice(&bytes(high[0]));
            self.trigger_type.extend_from_slice(&bytes(high[1]));
            self.local_fifo.extend_from_slice(&bytes(high[2]));
            self.shared_fifo.extend_from_slice(&bytes(high[3]));
            self.register_address.extend_from_slice(&bytes(high[4]));
            self.register_data.extend_from_slice(&bytes(high[5]));
            self.direction.extend_from_slice(&bytes(high[6]));
            self.local_fifo_events.extend_from_slice(&bytes(high[7]));
        }
        for record in rest {
            for (k, column) in [
                &mut self.io_group,
                &mut self.io_channel,
                &mut self.chip_id,
                &mut self.packet_type,
                &mut self.downstream_marker,
                &mut self.parity,
                &mut self.valid_parity,
                &mut self.channel_id,
            ]
            .into_iter()
            .enumerate()
            {
                column.push(record[k]);
            }
            for (k, column) in [
                &mut self.dataword,
                &mut self.trigger_type,
                &mut self.local_fifo,
                &mut self.shared_fifo,
                &mut self.register_address,
                &mut self.register_data,
                &mut self.direction,
                &mut self.local_fifo_events,
            ]
            .into_iter()
            .enumerate()
            {
                column.push(record[16 + k]);
            }
        }
        // The other columns, one tight pass each (a push per row per column would store and
        // reload six vector lengths for every row).
        self.timestamp.extend(records.iter().map(|r| word(r, 8)));
        self.shared_fifo_events.extend(records.iter().map(|r| u16::from_le_bytes([r[24], r[25]])));
        self.counter
            .extend(records.iter().map(|r| u32::from_le_bytes([r[26], r[27], r[28], r[29]])));
        self.fifo_diagnostics_enabled.extend(records.iter().map(|r| r[30]));
        self.first_packet.extend(records.iter().map(|r| r[31]));
        self.receipt_timestamp
            .extend(records.iter().map(|r| u32::from_le_bytes([r[32], r[33], r[34], r[35]])));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::PacketRow;

    #[test]
    fn transpose_8x8_is_a_byte_matrix_transpose() {
        let mut m = [0u64; 8];
        for (r, w) in m.iter_mut().enumerate() {
            *w = u64::from_le_bytes(std::array::from_fn(|c| (r * 8 + c) as u8));
        }
        transpose_8x8(&mut m);
        for (c, w) in m.iter().enumerate() {
            assert_eq!(w.to_le_bytes(), std::array::from_fn(|r| (r * 8 + c) as u8));
        }
    }

    #[test]
    fn decoding_canonical_records_inverts_encoding() {
        // 8k + 5 rows, so both the 8-row groups and the tail are exercised.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let rows: Vec<PacketRow> = (0..8 * 37 + 5)
            .map(|_| {
                let b = next().to_le_bytes();
                let c = next().to_le_bytes();
                PacketRow {
                    io_group: b[0],
                    io_channel: b[1],
                    chip_id: b[2],
                    packet_type: b[3],
                    downstream_marker: b[4],
                    parity: b[5],
                    valid_parity: b[6],
                    channel_id: b[7],
                    timestamp: next(),
                    dataword: c[0],
                    trigger_type: c[1],
                    local_fifo: c[2],
                    shared_fifo: c[3],
                    register_address: c[4],
                    register_data: c[5],
                    direction: c[6],
                    local_fifo_events: c[7],
                    shared_fifo_events: next() as u16,
                    counter: next() as u32,
                    fifo_diagnostics_enabled: next() as u8,
                    first_packet: next() as u8,
                    receipt_timestamp: next() as u32,
                    unix_time: 0,
                }
            })
            .collect();
        let bytes: Vec<u8> = rows.iter().flat_map(|r| r.to_canonical_bytes()).collect();
        let mut columns = PacketColumns::default();
        columns.decode_canonical(bytes.as_chunks::<CANONICAL_RECORD_SIZE>().0);
        assert_eq!(columns.len(), rows.len());
        for (i, row) in rows.iter().enumerate() {
            let mut got = columns.row(i).unwrap();
            got.unix_time = 0;
            assert_eq!(got, *row, "row {i}");
        }
    }
}
