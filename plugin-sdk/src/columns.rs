//! Columns declared once: [`columns!`](crate::columns) names the columns a plugin reads from a
//! stream with their types; `info()` requests them from that declaration
//! ([`Info::reads`](crate::Info::reads)) and the stream method gets them as typed slices
//! (`Packets::read(batch)?`), so a name or a type is written in one place.
//!
//! ```ignore
//! columns! {
//!     /// The packet columns it reads.
//!     struct Packets from "packets" {
//!         packet_type: u8,
//!         dataword: u8,
//!         unix_time: Option<u64>,   // nullable: Vec<Option<u64>>
//!         channel: ChannelKey,      // io_group, io_channel, chip_id, channel_id as one key
//!     }
//! }
//! // info():    .reads::<Packets>()
//! // packets(): let p = Packets::read(batch)?; for i in 0..p.rows { p.dataword[i] … }
//! ```

use crate::batch::Batch;
use crate::channels::CHANNEL_COLUMNS;

/// A column type of [`columns!`](crate::columns): how it is read and which stream columns it
/// stands for.
pub trait Column {
    /// What a batch gives: a slice for plain columns, a vector of options for nullable ones.
    type Values<'a>;
    /// Reads the column `field` of `batch`.
    fn read<'a>(batch: &'a Batch, field: &str) -> Result<Self::Values<'a>, String>;
    /// The stream columns behind the field `field` (the field itself, unless it combines
    /// several).
    fn names(field: &'static str, names: &mut Vec<&'static str>) {
        names.push(field);
    }
}

macro_rules! plain_column {
    ($($native:ty => $plain:ident, $optional:ident;)*) => {$(
        impl Column for $native {
            type Values<'a> = &'a [$native];
            #[inline(always)]
            fn read<'a>(batch: &'a Batch, field: &str) -> Result<Self::Values<'a>, String> {
                batch.$plain(field)
            }
        }
        impl Column for Option<$native> {
            type Values<'a> = Vec<Option<$native>>;
            #[inline(always)]
            fn read<'a>(batch: &'a Batch, field: &str) -> Result<Self::Values<'a>, String> {
                batch.$optional(field)
            }
        }
    )*};
}

plain_column! {
    u8 => u8, opt_u8;
    u16 => u16, opt_u16;
    u32 => u32, opt_u32;
    u64 => u64, opt_u64;
    i64 => i64, opt_i64;
    f32 => f32, opt_f32;
    f64 => f64, opt_f64;
}

/// A `list<i16>` column (`light_waveforms.samples`): one slice per row.
impl Column for [i16] {
    type Values<'a> = Vec<&'a [i16]>;
    fn read<'a>(batch: &'a Batch, field: &str) -> Result<Self::Values<'a>, String> {
        batch.i16_lists(field)
    }
}

/// A packet's channel key ([`unique_id`](crate::unique_id)) from the columns io_group,
/// io_channel, chip_id and channel_id (the field's own name is not a column).
pub struct ChannelKey;

impl Column for ChannelKey {
    type Values<'a> = Vec<u32>;
    fn read<'a>(batch: &'a Batch, _field: &str) -> Result<Self::Values<'a>, String> {
        batch.channel_keys()
    }
    fn names(_field: &'static str, names: &mut Vec<&'static str>) {
        names.extend_from_slice(CHANNEL_COLUMNS);
    }
}

/// What [`columns!`](crate::columns) declares: a stream and its columns.
pub trait Columns {
    /// The stream.
    const STREAM: &'static str;
    /// The stream columns to request.
    fn names() -> Vec<&'static str>;
}

/// Declares the columns a plugin reads from a stream (one struct per stream, several structs
/// in one `columns!` block), each with its type (`u8` … `f64` as in
/// the stream tables, `Option<T>` for a nullable column, `[i16]` for a list of samples,
/// `ChannelKey` for a packet's channel). It makes a struct of typed column values with
/// `read(batch)` and `rows`; `Info::reads::<Name>()` requests the same columns.
#[macro_export]
macro_rules! columns {
    ($($(#[$meta:meta])* $vis:vis struct $name:ident from $stream:literal {
        $($(#[$field_meta:meta])* $field:ident : $type:ty),* $(,)?
    })*) => {$(
        $(#[$meta])*
        $vis struct $name<'a> {
            $($(#[$field_meta])* pub $field: <$type as $crate::Column>::Values<'a>,)*
            /// Rows of the batch: every column is this long.
            #[allow(dead_code)]
            pub rows: usize,
        }
        impl<'a> $name<'a> {
            /// The columns of `batch`; an error names a column that is missing or of
            /// another type.
            #[inline(always)]
            pub fn read(batch: &'a $crate::Batch) -> ::core::result::Result<Self, String> {
                Ok(Self {
                    $($field: <$type as $crate::Column>::read(batch, stringify!($field))?,)*
                    rows: batch.len(),
                })
            }
        }
        impl $crate::Columns for $name<'_> {
            const STREAM: &'static str = $stream;
            fn names() -> Vec<&'static str> {
                let mut names = Vec::new();
                $(<$type as $crate::Column>::names(stringify!($field), &mut names);)*
                names
            }
        }
    )*};
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, RecordBatch, UInt8Array, UInt64Array};

    use crate::{Batch, ChannelKey, Columns, Info, unique_id};

    columns! {
        /// Test columns.
        struct Packets from "packets" {
            packet_type: u8,
            unix_time: Option<u64>,
            channel: ChannelKey,
        }
        #[allow(dead_code)]
        struct WrongType from "packets" { packet_type: f32 }
    }

    fn batch() -> Batch {
        let u8s = |v: [u8; 2]| Arc::new(UInt8Array::from(v.to_vec())) as ArrayRef;
        Batch::new(
            RecordBatch::try_from_iter([
                ("packet_type", u8s([0, 4])),
                ("unix_time", Arc::new(UInt64Array::from(vec![Some(7), None])) as ArrayRef),
                ("io_group", u8s([1, 2])),
                ("io_channel", u8s([3, 4])),
                ("chip_id", u8s([11, 12])),
                ("channel_id", u8s([5, 6])),
            ])
            .unwrap(),
        )
    }

    #[test]
    fn declared_columns_are_requested_and_read_typed() {
        let info = Info::new("x", "").reads::<Packets>();
        assert_eq!(
            info.consumes,
            [(
                "packets".to_string(),
                ["packet_type", "unix_time", "io_group", "io_channel", "chip_id", "channel_id"]
                    .map(String::from)
                    .to_vec()
            )]
        );
        let batch = batch();
        let packets = Packets::read(&batch).unwrap();
        assert_eq!(packets.rows, 2);
        assert_eq!(packets.packet_type, [0, 4]);
        assert_eq!(packets.unix_time, [Some(7), None]);
        assert_eq!(packets.channel, [unique_id(1, 3, 11, 5), unique_id(2, 4, 12, 6)]);
        assert_eq!(Packets::STREAM, "packets");
    }

    #[test]
    fn a_column_of_another_type_is_an_error_naming_it() {
        let batch = batch();
        let error = WrongType::read(&batch).err().unwrap();
        assert!(error.contains("\"packet_type\"") && error.contains("UInt8"), "{error}");
    }
}
