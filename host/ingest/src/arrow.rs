//! The Arrow `packets` stream: schema and zero-copy conversion of packet batches.
//!
//! Columns carry the file's names and canonical unsigned types, in file order, followed by
//! `unix_time` (the Unix time of the preceding type-4 row; null for the rows before the first
//! one). The schema is documented in docs/data-model.md.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, PrimitiveArray, RecordBatch};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Schema, SchemaRef, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use larmon_decode::{IntWidth, OwnedColumn, PACKET_COLUMNS, PacketColumns};

/// Name of the stream in schema metadata (`larmon.stream`).
pub const PACKETS_STREAM: &str = "packets";
/// Version of the `packets` schema (`larmon.schema_version`); bumped on incompatible change.
pub const PACKETS_SCHEMA_VERSION: &str = "1";

/// The schema of the `packets` stream.
pub fn packets_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let mut fields: Vec<Field> = PACKET_COLUMNS
                .iter()
                .map(|c| {
                    let ty = match c.width {
                        IntWidth::U8 => DataType::UInt8,
                        IntWidth::U16 => DataType::UInt16,
                        IntWidth::U32 => DataType::UInt32,
                        IntWidth::U64 => DataType::UInt64,
                    };
                    Field::new(c.name, ty, false)
                })
                .collect();
            fields.push(Field::new("unix_time", DataType::UInt64, true));
            let metadata = HashMap::from([
                ("larmon.stream".to_owned(), PACKETS_STREAM.to_owned()),
                ("larmon.schema_version".to_owned(), PACKETS_SCHEMA_VERSION.to_owned()),
            ]);
            Arc::new(Schema::new_with_metadata(fields, metadata))
        })
        .clone()
}

fn array<T: ArrowPrimitiveType>(values: Vec<T::Native>) -> ArrayRef {
    Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(values), None))
}

/// Turns a batch of packet rows into a record batch of the `packets` schema without copying.
pub fn packets_record_batch(columns: PacketColumns) -> RecordBatch {
    let rows = columns.len();
    let parts = columns.into_parts();
    let mut arrays: Vec<ArrayRef> = parts
        .file_columns
        .into_iter()
        .map(|c| match c {
            OwnedColumn::U8(v) => array::<UInt8Type>(v),
            OwnedColumn::U16(v) => array::<UInt16Type>(v),
            OwnedColumn::U32(v) => array::<UInt32Type>(v),
            OwnedColumn::U64(v) => array::<UInt64Type>(v),
        })
        .collect();
    let unknown = parts.rows_without_unix_time.min(rows);
    let nulls = (unknown > 0).then(|| NullBuffer::from_iter((0..rows).map(|i| i >= unknown)));
    arrays.push(Arc::new(PrimitiveArray::<UInt64Type>::new(
        ScalarBuffer::from(parts.unix_time),
        nulls,
    )));
    RecordBatch::try_new(packets_schema(), arrays).expect("columns match the packets schema")
}
