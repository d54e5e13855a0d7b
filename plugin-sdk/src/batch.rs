//! Typed access to the columns of a record batch: `batch.u8("io_group")?` is a `&[u8]`.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrowPrimitiveType, RecordBatch};

/// A batch of one stream, with typed column access.
pub struct Batch {
    inner: RecordBatch,
    /// `inner.num_rows()`, kept beside it so that the compiler sees every column slice is
    /// exactly `len()` long and drops the bounds checks of `for i in 0..batch.len() { a[i] }`
    /// (measured: 13 % of the benchmark plot's time in Wasm).
    rows: usize,
}

macro_rules! getter {
    ($name:ident, $opt:ident, $arrow:ty, $native:ty) => {
        /// The column's values (nulls read as 0); an error if it is missing or of another type.
        #[inline(always)]
        pub fn $name(&self, column: &str) -> Result<&[$native], String> {
            self.rows_of(self.primitive::<$arrow>(column)?.values())
        }
        /// The column's values with nulls as `None`.
        pub fn $opt(&self, column: &str) -> Result<Vec<Option<$native>>, String> {
            // Values and validity side by side, without the per-element null lookup of the
            // array's iterator (a column without nulls is a loop the compiler vectorises).
            let array = self.primitive::<$arrow>(column)?;
            let values = array.values().iter().copied();
            Ok(match array.nulls() {
                None => values.map(Some).collect(),
                Some(valid) => values.zip(valid.iter()).map(|(v, ok)| ok.then_some(v)).collect(),
            })
        }
    };
}

impl Batch {
    /// Wraps a record batch (what the host does; also for native tests and benchmarks).
    pub fn new(inner: RecordBatch) -> Self {
        let rows = inner.num_rows();
        Self { inner, rows }
    }

    /// Rows in the batch.
    #[inline]
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when the batch has no rows.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// A column's values cut to the batch's rows (which they are in a valid batch).
    #[inline(always)]
    fn rows_of<'a, T>(&self, values: &'a [T]) -> Result<&'a [T], String> {
        values.get(..self.rows).ok_or_else(|| "a column shorter than its batch".to_string())
    }

    /// The underlying Arrow record batch.
    pub fn record_batch(&self) -> &RecordBatch {
        &self.inner
    }

    #[inline(never)]
    fn primitive<T: ArrowPrimitiveType>(
        &self,
        column: &str,
    ) -> Result<&arrow_array::PrimitiveArray<T>, String> {
        let array = self
            .inner
            .column_by_name(column)
            .ok_or_else(|| format!("no column {column:?} (did info() request it?)"))?;
        array.as_primitive_opt::<T>().ok_or_else(|| {
            format!("column {column:?} is {}, not {}", array.data_type(), T::DATA_TYPE)
        })
    }

    /// The channel key ([`unique_id`](crate::unique_id)) of every row, from the columns
    /// [`CHANNEL_COLUMNS`](crate::channels::CHANNEL_COLUMNS) (request them in `info()`).
    pub fn channel_keys(&self) -> Result<Vec<u32>, String> {
        let (group, uart) = (self.u8("io_group")?, self.u8("io_channel")?);
        let (chip, channel) = (self.u8("chip_id")?, self.u8("channel_id")?);
        Ok((0..self.len())
            .map(|i| crate::unique_id(group[i], uart[i], chip[i], channel[i]))
            .collect())
    }

    /// A `list<i16>` column (e.g. `light_waveforms.samples`): one slice per row, no copy.
    pub fn i16_lists(&self, column: &str) -> Result<Vec<&[i16]>, String> {
        let array = self
            .inner
            .column_by_name(column)
            .ok_or_else(|| format!("no column {column:?} (did info() request it?)"))?;
        let list = array
            .as_list_opt::<i32>()
            .ok_or_else(|| format!("column {column:?} is {}, not a list", array.data_type()))?;
        let values = list
            .values()
            .as_primitive_opt::<Int16Type>()
            .ok_or_else(|| format!("column {column:?} holds {}, not i16", list.value_type()))?
            .values();
        let offsets = list.value_offsets();
        Ok((0..list.len()).map(|i| &values[offsets[i] as usize..offsets[i + 1] as usize]).collect())
    }

    getter!(u8, opt_u8, UInt8Type, u8);
    getter!(u16, opt_u16, UInt16Type, u16);
    getter!(u32, opt_u32, UInt32Type, u32);
    getter!(u64, opt_u64, UInt64Type, u64);
    getter!(i64, opt_i64, Int64Type, i64);
    getter!(f32, opt_f32, Float32Type, f32);
    getter!(f64, opt_f64, Float64Type, f64);
}

/// The runs of equal `key` among rows `0..rows`, in order: rows of a stream come grouped (a
/// step's hits by event and channel, a track's pixels by TPC), so a per-row map look-up can be
/// made once per run instead. `key(i)` is the row's key.
pub fn runs<K: PartialEq>(
    rows: usize,
    key: impl Fn(usize) -> K,
) -> impl Iterator<Item = std::ops::Range<usize>> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= rows {
            return None;
        }
        let first = key(start);
        let end = (start + 1..rows).find(|&i| key(i) != first).unwrap_or(rows);
        let run = start..end;
        start = end;
        Some(run)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Float32Array, UInt64Array};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    /// Nullable columns read as Arrow's own iterator reads them: with and without nulls, and
    /// from a slice whose validity bits start inside a byte.
    #[test]
    fn optional_columns_read_as_arrow_iterates_them() {
        let times: Vec<Option<u64>> =
            (0..300).map(|i| (i % 7 != 3).then_some(1_700_000_000 + i)).collect();
        let charges: Vec<Option<f32>> = (0..300).map(|i| Some(i as f32 * 0.5)).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("unix_time", DataType::UInt64, true),
            Field::new("q", DataType::Float32, true),
        ]));
        let whole = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(UInt64Array::from(times.clone())),
                Arc::new(Float32Array::from(charges.clone())),
            ],
        )
        .unwrap();
        for (start, len) in [(0, 300), (5, 101), (13, 0), (299, 1)] {
            let batch = Batch::new(whole.slice(start, len));
            let time = batch.opt_u64("unix_time").unwrap();
            assert_eq!(time, times[start..start + len], "slice {start}+{len}");
            let arrow: Vec<Option<u64>> =
                batch.record_batch().column(0).as_primitive::<UInt64Type>().iter().collect();
            assert_eq!(time, arrow);
            assert_eq!(batch.opt_f32("q").unwrap(), charges[start..start + len]);
        }
        assert!(Batch::new(whole.clone()).opt_u64("q").unwrap_err().contains("Float32"));
    }

    /// Runs cover every row once, in order, each of one key, neighbours of different keys.
    #[test]
    fn runs_split_rows_where_the_key_changes() {
        let keys = [Some(1), Some(1), None, None, Some(1), Some(2), Some(2), Some(2), None];
        let found: Vec<_> = runs(keys.len(), |i| keys[i]).collect();
        assert_eq!(found, [0..2, 2..4, 4..5, 5..8, 8..9]);
        assert_eq!(runs(0, |i| keys[i]).count(), 0);
        let single: Vec<_> = runs(1, |i| keys[i]).collect();
        assert_eq!((single.len(), single.first()), (1, Some(&(0..1))));
    }
}
