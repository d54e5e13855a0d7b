//! Column-oriented packet rows: the 22 columns of the canonical LArPix+HDF5 2.4 `packets` table,
//! in file order, plus the Unix time every row inherits from the preceding type-4 row.
//!
//! One macro invocation lists the columns once; the struct, the by-name binding used by the
//! packet-file reader, the Arrow schema and the on-disk 36-byte layout all derive from it.

/// Packet-table type of the per-message Unix time row (a PACMAN message's timestamp; every
/// following row inherits its Unix time).
pub const TIMESTAMP_ROW: u8 = 4;

/// Stored width of an unsigned integer column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntWidth {
    /// 1 byte (`u1` in numpy notation).
    U8,
    /// 2 bytes.
    U16,
    /// 4 bytes.
    U32,
    /// 8 bytes.
    U64,
}

impl IntWidth {
    /// Size in bytes.
    pub const fn bytes(self) -> usize {
        match self {
            IntWidth::U8 => 1,
            IntWidth::U16 => 2,
            IntWidth::U32 => 4,
            IntWidth::U64 => 8,
        }
    }
}

/// An unsigned integer type that can be a packet column.
pub trait ColumnInt: Copy + Default + 'static {
    /// Its width.
    const WIDTH: IntWidth;
    /// Truncating conversion from a wider stored value (as numpy's `astype` would do).
    fn from_u64_truncating(v: u64) -> Self;
}

macro_rules! column_int {
    ($t:ty, $w:ident) => {
        impl ColumnInt for $t {
            const WIDTH: IntWidth = IntWidth::$w;
            #[inline(always)]
            fn from_u64_truncating(v: u64) -> Self {
                v as $t
            }
        }
    };
}
column_int!(u8, U8);
column_int!(u16, U16);
column_int!(u32, U32);
column_int!(u64, U64);

/// Name and canonical width of one `packets` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnSpec {
    /// Compound member name in the HDF5 file and column name in Arrow.
    pub name: &'static str,
    /// Width in the canonical 2.4 layout.
    pub width: IntWidth,
}

/// Mutable access to one column, whatever its type.
pub enum ColumnMut<'a> {
    /// A `u8` column.
    U8(&'a mut Vec<u8>),
    /// A `u16` column.
    U16(&'a mut Vec<u16>),
    /// A `u32` column.
    U32(&'a mut Vec<u32>),
    /// A `u64` column.
    U64(&'a mut Vec<u64>),
}

/// One column taken out of a [`PacketColumns`], whatever its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnedColumn {
    /// A `u8` column.
    U8(Vec<u8>),
    /// A `u16` column.
    U16(Vec<u16>),
    /// A `u32` column.
    U32(Vec<u32>),
    /// A `u64` column.
    U64(Vec<u64>),
}

/// A [`PacketColumns`] taken apart: the file columns in canonical order, then the Unix time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketParts {
    /// The 22 file columns, in [`PACKET_COLUMNS`] order.
    pub file_columns: Vec<OwnedColumn>,
    /// Inherited Unix time of each row.
    pub unix_time: Vec<u64>,
    /// Leading rows whose Unix time is unknown.
    pub rows_without_unix_time: usize,
}

macro_rules! define_packet_columns {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty ),* $(,)?) => {
        /// The `packets` columns in canonical (2.4 file) order.
        pub const PACKET_COLUMNS: &[ColumnSpec] = &[
            $( ColumnSpec { name: stringify!($name), width: <$ty as ColumnInt>::WIDTH }, )*
        ];

        /// A batch of packet rows, stored column by column.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct PacketColumns {
            $( $(#[$doc])* pub $name: Vec<$ty>, )*
            /// Unix time (s) of the type-4 row at or before each row; see
            /// [`PacketColumns::rows_without_unix_time`].
            pub unix_time: Vec<u64>,
            /// How many rows at the start of this batch had no type-4 row before them in the
            /// stream (their `unix_time` is 0 and means "unknown"). Only a prefix can lack it.
            pub rows_without_unix_time: usize,
        }

        /// One packet row (used for tests, single-row access and writing).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct PacketRow {
            $( $(#[$doc])* pub $name: $ty, )*
            /// Unix time (s) inherited from the preceding type-4 row (0 if none).
            pub unix_time: u64,
        }

        impl PacketColumns {
            /// Number of rows.
            pub fn len(&self) -> usize {
                self.io_group.len()
            }
            /// True when there are no rows.
            pub fn is_empty(&self) -> bool {
                self.io_group.is_empty()
            }
            /// Removes every row, keeping the allocations.
            pub fn clear(&mut self) {
                $( self.$name.clear(); )*
                self.unix_time.clear();
                self.rows_without_unix_time = 0;
            }
            /// Reserves room for `n` more rows in every column.
            pub fn reserve(&mut self, n: usize) {
                $( self.$name.reserve(n); )*
                self.unix_time.reserve(n);
            }
            /// Appends one row.
            #[inline(always)]
            pub fn push(&mut self, row: &PacketRow) {
                $( self.$name.push(row.$name); )*
                self.unix_time.push(row.unix_time);
            }
            /// Appends rows given row by row (the decoder's output), one tight loop per column.
            pub fn extend_from_rows(&mut self, rows: &[PacketRow]) {
                $( self.$name.extend(rows.iter().map(|r| r.$name)); )*
                self.unix_time.extend(rows.iter().map(|r| r.unix_time));
            }
            /// Appends every row to `out` as a packed little-endian canonical 36-byte record:
            /// one strided pass per column.
            pub fn encode_canonical(&self, out: &mut Vec<u8>) {
                let n = self.len();
                let base = out.len();
                out.resize(base + n * CANONICAL_RECORD_SIZE, 0);
                let records = &mut out[base..];
                let mut offset = 0usize;
                $(
                    {
                        const W: usize = std::mem::size_of::<$ty>();
                        let at = offset;
                        for (record, v) in records.chunks_exact_mut(CANONICAL_RECORD_SIZE).zip(&self.$name) {
                            let field: &mut [u8; W] = (&mut record[at..at + W]).try_into().unwrap();
                            *field = v.to_le_bytes();
                        }
                        offset += W;
                    }
                )*
                debug_assert_eq!(offset, CANONICAL_RECORD_SIZE);
            }
            /// Returns row `i`, if it exists.
            pub fn row(&self, i: usize) -> Option<PacketRow> {
                if i >= self.len() {
                    return None;
                }
                Some(PacketRow { $( $name: self.$name[i], )* unix_time: self.unix_time.get(i).copied().unwrap_or(0) })
            }
            /// Value of file column `name` at row `i`, widened to u64.
            pub fn value(&self, name: &str, i: usize) -> Option<u64> {
                match name {
                    $( stringify!($name) => self.$name.get(i).map(|v| u64::from(*v)), )*
                    _ => None,
                }
            }
            /// Mutable access to a file column by its compound member name.
            pub fn column_mut(&mut self, name: &str) -> Option<ColumnMut<'_>> {
                match name {
                    $( stringify!($name) => Some(<$ty as IntoColumnMut>::wrap(&mut self.$name)), )*
                    _ => None,
                }
            }
            /// Sets `unix_time` of every row from the latest type-4 row at or before it; `last`
            /// carries the latest Unix time from batch to batch.
            pub fn fill_unix_time(&mut self, last: &mut Option<u64>) {
                self.unix_time.clear();
                self.unix_time.reserve(self.len());
                self.rows_without_unix_time = 0;
                for (kind, time) in self.packet_type.iter().zip(&self.timestamp) {
                    if *kind == TIMESTAMP_ROW {
                        *last = Some(*time);
                    }
                    match last {
                        Some(t) => self.unix_time.push(*t),
                        None => {
                            self.unix_time.push(0);
                            self.rows_without_unix_time += 1;
                        }
                    }
                }
            }
            /// Takes the columns apart without copying them.
            pub fn into_parts(self) -> PacketParts {
                PacketParts {
                    file_columns: vec![ $( <$ty as IntoColumnMut>::own(self.$name), )* ],
                    unix_time: self.unix_time,
                    rows_without_unix_time: self.rows_without_unix_time,
                }
            }
            /// Resizes every file column to `n` rows, filling new rows with zeros.
            pub fn resize_file_columns(&mut self, n: usize) {
                $( self.$name.resize(n, 0); )*
            }
        }

        impl PacketRow {
            /// Encodes the row in the canonical packed little-endian 36-byte record.
            pub fn to_canonical_bytes(&self) -> [u8; CANONICAL_RECORD_SIZE] {
                let mut out = [0u8; CANONICAL_RECORD_SIZE];
                let mut at = 0usize;
                $(
                    let bytes = self.$name.to_le_bytes();
                    out[at..at + bytes.len()].copy_from_slice(&bytes);
                    at += bytes.len();
                )*
                debug_assert_eq!(at, CANONICAL_RECORD_SIZE);
                out
            }
        }
    };
}

trait IntoColumnMut: Sized {
    fn wrap(v: &mut Vec<Self>) -> ColumnMut<'_>;
    fn own(v: Vec<Self>) -> OwnedColumn;
}
impl IntoColumnMut for u8 {
    fn wrap(v: &mut Vec<u8>) -> ColumnMut<'_> {
        ColumnMut::U8(v)
    }
    fn own(v: Vec<u8>) -> OwnedColumn {
        OwnedColumn::U8(v)
    }
}
impl IntoColumnMut for u16 {
    fn wrap(v: &mut Vec<u16>) -> ColumnMut<'_> {
        ColumnMut::U16(v)
    }
    fn own(v: Vec<u16>) -> OwnedColumn {
        OwnedColumn::U16(v)
    }
}
impl IntoColumnMut for u32 {
    fn wrap(v: &mut Vec<u32>) -> ColumnMut<'_> {
        ColumnMut::U32(v)
    }
    fn own(v: Vec<u32>) -> OwnedColumn {
        OwnedColumn::U32(v)
    }
}
impl IntoColumnMut for u64 {
    fn wrap(v: &mut Vec<u64>) -> ColumnMut<'_> {
        ColumnMut::U64(v)
    }
    fn own(v: Vec<u64>) -> OwnedColumn {
        OwnedColumn::U64(v)
    }
}

/// Size of one row in the canonical 2.4 layout.
pub const CANONICAL_RECORD_SIZE: usize = 36;

define_packet_columns! {
    /// PACMAN / IO group (from the raw file's `msg_headers`, not the message).
    io_group: u8,
    /// PACMAN UART channel.
    io_channel: u8,
    /// ASIC id (packet bits 2–9).
    chip_id: u8,
    /// 0 data, 1 test, 2 config write, 3 config read, 4 timestamp, 5 message, 6 sync, 7 trigger.
    packet_type: u8,
    /// Packet bit 62.
    downstream_marker: u8,
    /// Packet bit 63.
    parity: u8,
    /// 1 iff the 64-bit packet has odd parity (types 0–3 only).
    valid_parity: u8,
    /// Channel id (packet bits 10–15).
    channel_id: u8,
    /// 31-bit ASIC time (types 0–3), Unix s (type 4), 32-bit PACMAN time (types 6, 7).
    timestamp: u64,
    /// ADC value (data); clock source (sync rows).
    dataword: u8,
    /// Data trigger type; sync type byte (sync rows); trigger byte (trigger rows).
    trigger_type: u8,
    /// Local FIFO flags (bits 58–59).
    local_fifo: u8,
    /// Shared FIFO flags (bits 60–61).
    shared_fifo: u8,
    /// Packet bits 10–17.
    register_address: u8,
    /// Packet bits 18–25.
    register_data: u8,
    /// 0 sent to the ASICs, 1 received.
    direction: u8,
    /// FIFO-diagnostics mode only.
    local_fifo_events: u8,
    /// FIFO-diagnostics mode only (u1 in files written before larpix-control 3.5).
    shared_fifo_events: u16,
    /// Message index of type-5 rows (always 0 in files from 3.5+, a known writer bug).
    counter: u32,
    /// 1 if the packet was decoded in FIFO-diagnostics mode.
    fifo_diagnostics_enabled: u8,
    /// Packet bit 47 (files 2.1+).
    first_packet: u8,
    /// PACMAN receive time (files 2.3+).
    receipt_timestamp: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_layout_is_36_bytes_in_22_columns() {
        assert_eq!(PACKET_COLUMNS.len(), 22);
        let size: usize = PACKET_COLUMNS.iter().map(|c| c.width.bytes()).sum();
        assert_eq!(size, CANONICAL_RECORD_SIZE);
        assert_eq!(PACKET_COLUMNS[9].name, "dataword");
        assert_eq!(PACKET_COLUMNS[21].name, "receipt_timestamp");
    }

    #[test]
    fn columnar_encoding_equals_row_encoding() {
        let rows: Vec<PacketRow> = (0..100u64)
            .map(|i| PacketRow {
                io_group: i as u8,
                chip_id: (i * 7) as u8,
                timestamp: i * 0x0001_0101_0101,
                shared_fifo_events: (i * 300) as u16,
                counter: (i * 70_000) as u32,
                receipt_timestamp: (i * 123_456_789) as u32,
                unix_time: 1_700_000_000 + i,
                ..Default::default()
            })
            .collect();
        let mut columns = PacketColumns::default();
        columns.extend_from_rows(&rows);
        assert_eq!(columns.row(42), Some(rows[42]));
        let mut bytes = Vec::new();
        columns.encode_canonical(&mut bytes);
        let expected: Vec<u8> = rows.iter().flat_map(|r| r.to_canonical_bytes()).collect();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn canonical_bytes_put_each_field_at_its_offset() {
        let row = PacketRow {
            io_group: 1,
            timestamp: 0x0102_0304_0506_0708,
            shared_fifo_events: 0xABCD,
            receipt_timestamp: 0xDEAD_BEEF,
            ..Default::default()
        };
        let b = row.to_canonical_bytes();
        assert_eq!(b[0], 1);
        assert_eq!(&b[8..16], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&b[24..26], &0xABCDu16.to_le_bytes());
        assert_eq!(&b[32..36], &0xDEAD_BEEFu32.to_le_bytes());
    }
}
