//! What the calibrator emits: hit and event rows, and their Arrow streams `hits` and `events`
//! (schemas in docs/data-model.md).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, ArrowPrimitiveType, Float64Array, PrimitiveArray, RecordBatch, UInt8Array,
    UInt16Array, UInt32Array, UInt64Array,
};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};
use arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Int64Type, Schema, SchemaRef, UInt8Type, UInt16Type,
    UInt64Type,
};

pub use crate::tracks::{SegmentRow, TrackPixelRow, TrackRow};

use crate::geometry::Geometry;

macro_rules! column {
    ($rows:expr, $array:ty, |$r:ident| $value:expr) => {{
        let array: $array = dense_array($rows.iter().map(|$r| $value));
        Arc::new(array) as ArrayRef
    }};
}

/// A column whose rows may be null (see [`Column`]).
macro_rules! optional_column {
    ($rows:expr, $type:ty, |$r:ident| $value:expr) => {{
        let mut column = Column::<$type>::new($rows.len());
        for $r in $rows.iter() {
            column.push_option($value);
        }
        column.finish()
    }};
}

/// An array without nulls from its values. (`collect::<PrimitiveArray>()` of `Some(v)` pushes a
/// validity bit per row through a `BooleanBufferBuilder`: a third of the main thread's time in
/// building a run's hit batches.)
fn dense_array<T: ArrowPrimitiveType>(
    values: impl Iterator<Item = T::Native>,
) -> PrimitiveArray<T> {
    PrimitiveArray::new(ScalarBuffer::from(values.collect::<Vec<_>>()), None)
}

/// How an event was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[repr(u8)]
pub enum EventKind {
    /// Opened by an external trigger: t0 known.
    Triggered = 1,
    /// A cluster of untriggered hits: t0 unknown.
    SelfTriggered = 2,
}

/// One calibrated hit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HitRow {
    /// Event it belongs to (none for isolated untriggered hits).
    pub event_id: Option<u64>,
    /// Track it belongs to, if any.
    pub track_id: Option<u64>,
    /// PACMAN / IO group.
    pub io_group: u8,
    /// UART channel.
    pub io_channel: u8,
    /// ASIC id.
    pub chip_id: u8,
    /// Channel of the ASIC.
    pub channel_id: u8,
    /// Tile id (none if the geometry does not know the channel).
    pub tile: Option<u16>,
    /// TPC / anode id.
    pub tpc: Option<u8>,
    /// Time in ticks since the first PPS of the stream (PPS rollover applied).
    pub ts_ticks: i64,
    /// Unix time of the packet's message, s.
    pub unix_time: u64,
    /// Trigger type of the (first) packet: 0 self, 1 external, 2 cross, 3 periodic.
    pub trigger_type: u8,
    /// Packets merged into this hit.
    pub n_packets: u16,
    /// Charge above pedestal, mV.
    pub q_mv: f32,
    /// Charge, ke⁻.
    pub q_ke: f32,
    /// Pixel x, mm.
    pub x_mm: Option<f32>,
    /// Pixel y, mm.
    pub y_mm: Option<f32>,
    /// Event t0, ticks (triggered events only).
    pub t0_ticks: Option<f64>,
    /// ts − t0, ticks.
    pub drift_ticks: Option<f32>,
    /// Drift distance, mm.
    pub drift_mm: Option<f32>,
    /// Drift coordinate, mm: anode_z + drift_dir · drift_mm.
    pub z_mm: Option<f32>,
}

/// One event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EventRow {
    /// Sequential id within the stream.
    pub event_id: u64,
    /// How it was found.
    pub kind: EventKind,
    /// Unix time of the trigger's (or first hit's) message, s.
    pub unix_time: u64,
    /// t0 in ticks since the first PPS of the stream (triggered events).
    pub t0_ticks: Option<f64>,
    /// Trigger rows merged into the trigger (one per io_group that saw it).
    pub n_triggers: u32,
    /// Hits (after merging).
    pub n_hits: u32,
    /// Summed hit charge, ke⁻.
    pub q_ke: f64,
    /// Earliest of t0 and hit times, ticks.
    pub ts_start: f64,
    /// Latest of t0 and hit times, ticks.
    pub ts_end: f64,
}

/// Hits, events, tracks and segments completed by one call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CalibratedBatch {
    /// Hits, grouped by event; within an event ordered by channel, then time.
    pub hits: Vec<HitRow>,
    /// Events.
    pub events: Vec<EventRow>,
    /// Tracks of triggered events.
    pub tracks: Vec<TrackRow>,
    /// Segments of those tracks.
    pub segments: Vec<SegmentRow>,
    /// Charge and track length per pixel of those tracks.
    pub track_pixels: Vec<TrackPixelRow>,
}

impl CalibratedBatch {
    /// Appends another batch.
    pub fn extend(&mut self, other: CalibratedBatch) {
        self.hits.extend(other.hits);
        self.events.extend(other.events);
        self.tracks.extend(other.tracks);
        self.segments.extend(other.segments);
        self.track_pixels.extend(other.track_pixels);
    }
}

/// Schema of the `track_pixels` stream.
pub fn track_pixels_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        use DataType::*;
        schema(
            "track_pixels",
            vec![
                Field::new("track_id", UInt64, false),
                Field::new("event_id", UInt64, false),
                Field::new("io_group", UInt8, false),
                Field::new("io_channel", UInt8, false),
                Field::new("chip_id", UInt8, false),
                Field::new("channel_id", UInt8, false),
                Field::new("tpc", UInt8, false),
                Field::new("x_mm", Float64, false),
                Field::new("y_mm", Float64, false),
                Field::new("z_mm", Float64, false),
                Field::new("drift_us", Float64, false),
                Field::new("q_ke", Float64, false),
                Field::new("dx_mm", Float64, false),
                Field::new("s_mm", Float64, false),
                Field::new("at_track_end", UInt8, false),
                Field::new("n_hits", UInt32, false),
                Field::new("track_length_mm", Float64, false),
                Field::new("track_tpc_mask", UInt32, false),
            ],
        )
    })
    .clone()
}

/// The track pixels as a record batch of the `track_pixels` schema.
pub fn track_pixels_record_batch(rows: &[TrackPixelRow]) -> RecordBatch {
    let columns = vec![
        column!(rows, UInt64Array, |r| r.track_id),
        column!(rows, UInt64Array, |r| r.event_id),
        column!(rows, UInt8Array, |r| r.io_group),
        column!(rows, UInt8Array, |r| r.io_channel),
        column!(rows, UInt8Array, |r| r.chip_id),
        column!(rows, UInt8Array, |r| r.channel_id),
        column!(rows, UInt8Array, |r| r.tpc),
        column!(rows, Float64Array, |r| r.x_mm),
        column!(rows, Float64Array, |r| r.y_mm),
        column!(rows, Float64Array, |r| r.z_mm),
        column!(rows, Float64Array, |r| r.drift_us),
        column!(rows, Float64Array, |r| r.q_ke),
        column!(rows, Float64Array, |r| r.dx_mm),
        column!(rows, Float64Array, |r| r.s_mm),
        column!(rows, UInt8Array, |r| u8::from(r.at_track_end)),
        column!(rows, UInt32Array, |r| r.n_hits),
        column!(rows, Float64Array, |r| r.track_length_mm),
        column!(rows, UInt32Array, |r| r.track_tpc_mask),
    ];
    RecordBatch::try_new(track_pixels_schema(), columns).expect("columns match the schema")
}

/// Schema of the `pixels` stream: the detector's connected channels and where they are.
pub fn pixels_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        use DataType::*;
        schema(
            "pixels",
            vec![
                Field::new("io_group", UInt8, false),
                Field::new("io_channel", UInt8, false),
                Field::new("chip_id", UInt8, false),
                Field::new("channel_id", UInt8, false),
                Field::new("tile", UInt16, false),
                Field::new("tpc", UInt8, false),
                Field::new("x_mm", Float64, false),
                Field::new("y_mm", Float64, false),
                Field::new("pitch_mm", Float64, false),
                Field::new("anode_z_mm", Float64, false),
                Field::new("drift_dir", Float64, false),
                Field::new("drift_length_mm", Float64, false),
            ],
        )
    })
    .clone()
}

/// Every connected channel of the geometry as one record batch of the `pixels` schema.
pub fn pixels_record_batch(geometry: &Geometry) -> RecordBatch {
    let rows: Vec<_> = geometry
        .channels()
        .iter()
        .filter_map(|c| {
            let p = geometry.pixel(c.io_group, c.io_channel, c.chip_id, c.channel_id)?;
            Some((c, p, &geometry.tiles[p.tile_index as usize]))
        })
        .collect();
    let columns = vec![
        column!(rows, UInt8Array, |r| r.0.io_group),
        column!(rows, UInt8Array, |r| r.0.io_channel),
        column!(rows, UInt8Array, |r| r.0.chip_id),
        column!(rows, UInt8Array, |r| r.0.channel_id),
        column!(rows, UInt16Array, |r| r.2.id),
        column!(rows, UInt8Array, |r| r.2.tpc),
        column!(rows, Float64Array, |r| r.1.x),
        column!(rows, Float64Array, |r| r.1.y),
        column!(rows, Float64Array, |r| r.2.pitch_mm),
        column!(rows, Float64Array, |r| r.2.anode_z),
        column!(rows, Float64Array, |r| r.2.drift_dir),
        column!(rows, Float64Array, |r| r.2.drift_length_mm),
    ];
    RecordBatch::try_new(pixels_schema(), columns).expect("columns match the pixels schema")
}

/// Schema of the `tracks` stream.
pub fn tracks_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        use DataType::*;
        let mut fields =
            vec![Field::new("track_id", UInt64, false), Field::new("event_id", UInt64, false)];
        for name in ["start", "end"] {
            for axis in ["x", "y", "z"] {
                fields.push(Field::new(format!("{name}_{axis}_mm"), Float64, false));
            }
        }
        fields.push(Field::new("length_mm", Float64, false));
        for axis in ["x", "y", "z"] {
            fields.push(Field::new(format!("dir_{axis}"), Float64, false));
        }
        fields.extend([
            Field::new("n_hits", UInt32, false),
            Field::new("q_ke", Float64, false),
            Field::new("tpc_mask", UInt32, false),
            Field::new("has_t0", UInt8, false),
            Field::new("mean_residual_mm", Float64, false),
        ]);
        schema("tracks", fields)
    })
    .clone()
}

/// Schema of the `track_segments` stream.
pub fn segments_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        use DataType::*;
        schema(
            "track_segments",
            vec![
                Field::new("track_id", UInt64, false),
                Field::new("event_id", UInt64, false),
                Field::new("index", UInt32, false),
                Field::new("dq_ke", Float64, false),
                Field::new("dx_mm", Float64, false),
                Field::new("drift_us", Float64, false),
                Field::new("x_mm", Float64, false),
                Field::new("y_mm", Float64, false),
                Field::new("z_mm", Float64, false),
                Field::new("n_hits", UInt32, false),
            ],
        )
    })
    .clone()
}

/// The tracks as a record batch of the `tracks` schema.
pub fn tracks_record_batch(tracks: &[TrackRow]) -> RecordBatch {
    let mut columns = vec![
        column!(tracks, UInt64Array, |t| t.track_id),
        column!(tracks, UInt64Array, |t| t.event_id),
    ];
    for k in 0..3 {
        columns.push(column!(tracks, Float64Array, |t| t.start[k]));
    }
    for k in 0..3 {
        columns.push(column!(tracks, Float64Array, |t| t.end[k]));
    }
    columns.push(column!(tracks, Float64Array, |t| t.length_mm));
    for k in 0..3 {
        columns.push(column!(tracks, Float64Array, |t| t.direction[k]));
    }
    columns.extend([
        column!(tracks, UInt32Array, |t| t.n_hits),
        column!(tracks, Float64Array, |t| t.q_ke),
        column!(tracks, UInt32Array, |t| t.tpc_mask),
        column!(tracks, UInt8Array, |t| u8::from(t.has_t0)),
        column!(tracks, Float64Array, |t| t.mean_residual_mm),
    ]);
    RecordBatch::try_new(tracks_schema(), columns).expect("columns match the tracks schema")
}

/// The segments as a record batch of the `track_segments` schema.
pub fn segments_record_batch(segments: &[SegmentRow]) -> RecordBatch {
    let columns = vec![
        column!(segments, UInt64Array, |s| s.track_id),
        column!(segments, UInt64Array, |s| s.event_id),
        column!(segments, UInt32Array, |s| s.index),
        column!(segments, Float64Array, |s| s.dq_ke),
        column!(segments, Float64Array, |s| s.dx_mm),
        column!(segments, Float64Array, |s| s.drift_us),
        column!(segments, Float64Array, |s| s.center[0]),
        column!(segments, Float64Array, |s| s.center[1]),
        column!(segments, Float64Array, |s| s.center[2]),
        column!(segments, UInt32Array, |s| s.n_hits),
    ];
    RecordBatch::try_new(segments_schema(), columns).expect("columns match the segments schema")
}

fn schema(stream: &str, fields: Vec<Field>) -> SchemaRef {
    let metadata = HashMap::from([
        ("larmon.stream".to_owned(), stream.to_owned()),
        ("larmon.schema_version".to_owned(), "1".to_owned()),
    ]);
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// Schema of the `hits` stream.
pub fn hits_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        use DataType::*;
        schema(
            "hits",
            vec![
                Field::new("event_id", UInt64, true),
                Field::new("track_id", UInt64, true),
                Field::new("io_group", UInt8, false),
                Field::new("io_channel", UInt8, false),
                Field::new("chip_id", UInt8, false),
                Field::new("channel_id", UInt8, false),
                Field::new("tile", UInt16, true),
                Field::new("tpc", UInt8, true),
                Field::new("ts_ticks", Int64, false),
                Field::new("unix_time", UInt64, false),
                Field::new("trigger_type", UInt8, false),
                Field::new("n_packets", UInt16, false),
                Field::new("q_mv", Float32, false),
                Field::new("q_ke", Float32, false),
                Field::new("x_mm", Float32, true),
                Field::new("y_mm", Float32, true),
                Field::new("t0_ticks", Float64, true),
                Field::new("drift_ticks", Float32, true),
                Field::new("drift_mm", Float32, true),
                Field::new("z_mm", Float32, true),
            ],
        )
    })
    .clone()
}

/// Schema of the `events` stream.
pub fn events_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        use DataType::*;
        schema(
            "events",
            vec![
                Field::new("event_id", UInt64, false),
                Field::new("kind", UInt8, false),
                Field::new("unix_time", UInt64, false),
                Field::new("t0_ticks", Float64, true),
                Field::new("n_triggers", UInt32, false),
                Field::new("n_hits", UInt32, false),
                Field::new("q_ke", Float64, false),
                Field::new("ts_start", Float64, false),
                Field::new("ts_end", Float64, false),
            ],
        )
    })
    .clone()
}

/// Rows a record batch is built from at a time: their 64 × 130 bytes stay in the L1 cache
/// while each column is copied out of them, and each optional column's 64 validity bits are
/// one word.
const ROWS_PER_CHUNK: usize = 64;

/// The hits as a record batch of the `hits` schema. Built [`ROWS_PER_CHUNK`] rows at a time,
/// column by column: each column's copy is then a loop without a capacity check or a branch
/// per row (one pass of 20 pushes per row took twice as long; 20 passes over the whole batch
/// missed the cache on every row).
pub fn hits_record_batch(hits: &[HitRow]) -> RecordBatch {
    let n = hits.len();
    let mut event_id = Column::<UInt64Type>::new(n);
    let mut track_id = Column::<UInt64Type>::new(n);
    let mut io_group = Column::<UInt8Type>::new(n);
    let mut io_channel = Column::<UInt8Type>::new(n);
    let mut chip_id = Column::<UInt8Type>::new(n);
    let mut channel_id = Column::<UInt8Type>::new(n);
    let mut tile = Column::<UInt16Type>::new(n);
    let mut tpc = Column::<UInt8Type>::new(n);
    let mut ts_ticks = Column::<Int64Type>::new(n);
    let mut unix_time = Column::<UInt64Type>::new(n);
    let mut trigger_type = Column::<UInt8Type>::new(n);
    let mut n_packets = Column::<UInt16Type>::new(n);
    let mut q_mv = Column::<Float32Type>::new(n);
    let mut q_ke = Column::<Float32Type>::new(n);
    let mut x_mm = Column::<Float32Type>::new(n);
    let mut y_mm = Column::<Float32Type>::new(n);
    let mut t0_ticks = Column::<Float64Type>::new(n);
    let mut drift_ticks = Column::<Float32Type>::new(n);
    let mut drift_mm = Column::<Float32Type>::new(n);
    let mut z_mm = Column::<Float32Type>::new(n);
    for rows in hits.chunks(ROWS_PER_CHUNK) {
        event_id.extend_chunk_options(rows.iter().map(|h| h.event_id));
        track_id.extend_chunk_options(rows.iter().map(|h| h.track_id));
        io_group.extend(rows.iter().map(|h| h.io_group));
        io_channel.extend(rows.iter().map(|h| h.io_channel));
        chip_id.extend(rows.iter().map(|h| h.chip_id));
        channel_id.extend(rows.iter().map(|h| h.channel_id));
        tile.extend_chunk_options(rows.iter().map(|h| h.tile));
        tpc.extend_chunk_options(rows.iter().map(|h| h.tpc));
        ts_ticks.extend(rows.iter().map(|h| h.ts_ticks));
        unix_time.extend(rows.iter().map(|h| h.unix_time));
        trigger_type.extend(rows.iter().map(|h| h.trigger_type));
        n_packets.extend(rows.iter().map(|h| h.n_packets));
        q_mv.extend(rows.iter().map(|h| h.q_mv));
        q_ke.extend(rows.iter().map(|h| h.q_ke));
        x_mm.extend_chunk_options(rows.iter().map(|h| h.x_mm));
        y_mm.extend_chunk_options(rows.iter().map(|h| h.y_mm));
        t0_ticks.extend_chunk_options(rows.iter().map(|h| h.t0_ticks));
        drift_ticks.extend_chunk_options(rows.iter().map(|h| h.drift_ticks));
        drift_mm.extend_chunk_options(rows.iter().map(|h| h.drift_mm));
        z_mm.extend_chunk_options(rows.iter().map(|h| h.z_mm));
    }
    let columns = vec![
        event_id.finish(),
        track_id.finish(),
        io_group.finish(),
        io_channel.finish(),
        chip_id.finish(),
        channel_id.finish(),
        tile.finish(),
        tpc.finish(),
        ts_ticks.finish(),
        unix_time.finish(),
        trigger_type.finish(),
        n_packets.finish(),
        q_mv.finish(),
        q_ke.finish(),
        x_mm.finish(),
        y_mm.finish(),
        t0_ticks.finish(),
        drift_ticks.finish(),
        drift_mm.finish(),
        z_mm.finish(),
    ];
    RecordBatch::try_new(hits_schema(), columns).expect("columns match the hits schema")
}

/// One column filled row by row or chunk by chunk: its values, and its validity when a row
/// may be null. Null rows hold the default value, and a column without a null row has no
/// validity buffer, both as `collect::<PrimitiveArray>()` of `Option`s makes them (without its
/// validity bit pushed per row through a `BooleanBufferBuilder`). A column is filled with
/// [`Column::push`] / [`Column::extend`] (rows never null: no validity kept) or with
/// [`Column::push_option`] / [`Column::extend_chunk_options`], not both.
struct Column<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    valid: Vec<u64>,
    nulls: usize,
}

impl<T: ArrowPrimitiveType> Column<T> {
    fn new(rows: usize) -> Self {
        Self { values: Vec::with_capacity(rows), valid: Vec::new(), nulls: 0 }
    }

    #[inline]
    fn push(&mut self, value: T::Native) {
        debug_assert!(self.valid.is_empty(), "a column of optional values");
        self.values.push(value);
    }

    #[inline]
    fn push_option(&mut self, value: Option<T::Native>) {
        let row = self.values.len();
        debug_assert_eq!(self.valid.len(), row.div_ceil(64), "a column of values never null");
        if row.is_multiple_of(64) {
            self.valid.push(0);
        }
        match value {
            Some(value) => {
                self.valid[row / 64] |= 1 << (row % 64);
                self.values.push(value);
            }
            None => {
                self.nulls += 1;
                self.values.push(T::Native::default());
            }
        }
    }

    /// Appends values never null (as [`Column::push`], without a capacity check per row).
    #[inline]
    fn extend(&mut self, values: impl ExactSizeIterator<Item = T::Native>) {
        debug_assert!(self.valid.is_empty(), "a column of optional values");
        self.values.extend(values);
    }

    /// Appends the rows of one chunk that starts a validity word (a multiple of 64 rows in)
    /// and holds at most 64 rows, as [`Column::push_option`] would row by row.
    #[inline]
    fn extend_chunk_options(&mut self, values: impl ExactSizeIterator<Item = Option<T::Native>>) {
        let (start, rows) = (self.values.len(), values.len());
        debug_assert!(start.is_multiple_of(64) && rows <= 64, "a chunk of up to 64 rows");
        debug_assert_eq!(self.valid.len(), start / 64, "a column of values never null");
        let mut word = 0u64;
        self.values.extend(values.enumerate().map(|(row, value)| {
            word |= u64::from(value.is_some()) << row;
            value.unwrap_or_default()
        }));
        self.valid.push(word);
        self.nulls += rows - word.count_ones() as usize;
    }

    fn finish(self) -> ArrayRef {
        let rows = self.values.len();
        let nulls = (self.nulls > 0).then(|| {
            let bits = BooleanBuffer::new(Buffer::from_vec(self.valid), 0, rows);
            NullBuffer::new(bits)
        });
        Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(self.values), nulls))
    }
}

/// The events as a record batch of the `events` schema.
pub fn events_record_batch(events: &[EventRow]) -> RecordBatch {
    let columns = vec![
        column!(events, UInt64Array, |e| e.event_id),
        column!(events, UInt8Array, |e| e.kind as u8),
        column!(events, UInt64Array, |e| e.unix_time),
        optional_column!(events, Float64Type, |e| e.t0_ticks),
        column!(events, UInt32Array, |e| e.n_triggers),
        column!(events, UInt32Array, |e| e.n_hits),
        column!(events, Float64Array, |e| e.q_ke),
        column!(events, Float64Array, |e| e.ts_start),
        column!(events, Float64Array, |e| e.ts_end),
    ];
    RecordBatch::try_new(events_schema(), columns).expect("columns match the events schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(k: u32) -> HitRow {
        let some = |every: u32| (!k.is_multiple_of(every)).then_some(k);
        HitRow {
            event_id: some(3).map(u64::from),
            track_id: some(7).map(u64::from),
            io_group: k as u8,
            io_channel: 1,
            chip_id: 12,
            channel_id: (k % 64) as u8,
            tile: some(5).map(|k| k as u16),
            tpc: None,
            ts_ticks: i64::from(k) - 50,
            unix_time: 1_700_000_000 + u64::from(k),
            trigger_type: 2,
            n_packets: 1,
            q_mv: k as f32 * 0.5,
            q_ke: k as f32,
            x_mm: some(2).map(|k| k as f32),
            y_mm: Some(1.0),
            t0_ticks: some(11).map(f64::from),
            drift_ticks: some(13).map(|k| k as f32),
            drift_mm: some(17).map(|k| k as f32),
            z_mm: some(19).map(|k| k as f32),
        }
    }

    /// The hits batch, built 64 rows at a time, is what arrow's own collect of each column
    /// makes: same values, nulls where a field is `None` (across several 64-row validity words
    /// and a last partial one), no validity buffer without a null; for batches of every length
    /// around a chunk's.
    #[test]
    fn hits_made_in_chunks_are_the_columns_collected() {
        for rows in [0, 1, 2, 63, 64, 65, 127, 128, 129, 200] {
            let hits: Vec<HitRow> = (0..rows).map(hit).collect();
            compare_hits_batch(&hits);
        }
        let hits: Vec<HitRow> = (0..200).map(hit).collect();
        let batch = compare_hits_batch(&hits);
        assert_eq!(batch.column(0).null_count(), 67); // k = 0, 3, …, 198
        assert_eq!(batch.column(7).null_count(), 200);
        assert!(batch.column(15).nulls().is_none(), "y_mm has no null");
        // A null only in the last, partial chunk.
        let mut hits: Vec<HitRow> = (0..130).map(|_| hit(1)).collect(); // no field None
        hits[129].event_id = None;
        let batch = compare_hits_batch(&hits);
        assert_eq!(batch.column(0).null_count(), 1);
        assert!(batch.column(1).nulls().is_none(), "track_id has no null");
    }

    fn compare_hits_batch(hits: &[HitRow]) -> RecordBatch {
        let batch = hits_record_batch(hits);
        // What the column-by-column code made: arrow's own collect of the optional values.
        macro_rules! collected {
            ($array:ty, |$h:ident| $value:expr) => {
                Arc::new(hits.iter().map(|$h| $value).collect::<$array>()) as ArrayRef
            };
        }
        use arrow::array::{Float32Array, Int64Array};
        let expected: Vec<ArrayRef> = vec![
            collected!(UInt64Array, |h| h.event_id),
            collected!(UInt64Array, |h| h.track_id),
            collected!(UInt8Array, |h| Some(h.io_group)),
            collected!(UInt8Array, |h| Some(h.io_channel)),
            collected!(UInt8Array, |h| Some(h.chip_id)),
            collected!(UInt8Array, |h| Some(h.channel_id)),
            collected!(UInt16Array, |h| h.tile),
            collected!(UInt8Array, |h| h.tpc),
            collected!(Int64Array, |h| Some(h.ts_ticks)),
            collected!(UInt64Array, |h| Some(h.unix_time)),
            collected!(UInt8Array, |h| Some(h.trigger_type)),
            collected!(UInt16Array, |h| Some(h.n_packets)),
            collected!(Float32Array, |h| Some(h.q_mv)),
            collected!(Float32Array, |h| Some(h.q_ke)),
            collected!(Float32Array, |h| h.x_mm),
            collected!(Float32Array, |h| h.y_mm),
            collected!(Float64Array, |h| h.t0_ticks),
            collected!(Float32Array, |h| h.drift_ticks),
            collected!(Float32Array, |h| h.drift_mm),
            collected!(Float32Array, |h| h.z_mm),
        ];
        assert_eq!(batch.num_columns(), expected.len());
        for (k, (got, want)) in batch.columns().iter().zip(&expected).enumerate() {
            assert_eq!(got.to_data(), want.to_data(), "column {k} of {} rows", hits.len());
            assert_eq!(got.null_count(), want.null_count(), "column {k} of {} rows", hits.len());
            assert_eq!(got.nulls().is_some(), want.nulls().is_some(), "column {k}");
        }
        batch
    }
}
