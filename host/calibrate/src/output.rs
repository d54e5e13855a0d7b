//! What the calibrator emits: hit and event rows, and their Arrow streams `hits` and `events`
//! (schemas in docs/data-model.md).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, ArrowPrimitiveType, Float64Array, PrimitiveArray, RecordBatch, UInt8Array,
    UInt16Array, UInt32Array, UInt64Array,
};
use arrow::buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
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
#[derive(Clone, Copy, Debug, Default, PartialEq)]
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
    pub hits: HitColumns,
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
        self.hits.append(other.hits);
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
    let mut rows: Vec<_> = geometry
        .channels()
        .iter()
        .filter_map(|c| {
            let p = geometry.pixel(c.io_group, c.io_channel, c.chip_id, c.channel_id)?;
            Some((c, p, &geometry.tiles[p.tile_index as usize]))
        })
        .collect();
    // In channel-key order, the order every plugin keeps them in: the SDK then has nothing to
    // sort in each instance it opens (a sort of the 2x2's 337 k pixels per instance, and its
    // 8 MB scratch in every pixel-drawing plugin's memory).
    rows.sort_by_key(|(c, _, _)| (c.io_group, c.io_channel, c.chip_id, c.channel_id));
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

/// The calibrated hits of a batch, kept as the columns of the `hits` stream: the calibrator
/// appends each hit to them as it makes it, and the record batch takes them as they are. (A
/// `Vec` of 130-byte rows turned into columns afterwards read every row back from memory, cold:
/// a sixth of `larmon calibrate`.) Rows are read back as [`HitRow`]s.
#[derive(Clone, Debug, Default)]
pub struct HitColumns {
    event_id: Column<UInt64Type>,
    track_id: Column<UInt64Type>,
    io_group: Column<UInt8Type>,
    io_channel: Column<UInt8Type>,
    chip_id: Column<UInt8Type>,
    channel_id: Column<UInt8Type>,
    tile: Column<UInt16Type>,
    tpc: Column<UInt8Type>,
    ts_ticks: Column<Int64Type>,
    unix_time: Column<UInt64Type>,
    trigger_type: Column<UInt8Type>,
    n_packets: Column<UInt16Type>,
    q_mv: Column<Float32Type>,
    q_ke: Column<Float32Type>,
    x_mm: Column<Float32Type>,
    y_mm: Column<Float32Type>,
    t0_ticks: Column<Float64Type>,
    drift_ticks: Column<Float32Type>,
    drift_mm: Column<Float32Type>,
    z_mm: Column<Float32Type>,
}

/// Calls `$dense!(fields…)` for the columns of [`HitColumns`] never null and
/// `$optional!(fields…)` for those that may be, together in schema order: the one list every
/// method that goes over all columns takes them from.
macro_rules! hit_columns {
    ($dense:ident, $optional:ident) => {
        $optional!(event_id, track_id);
        $dense!(io_group, io_channel, chip_id, channel_id);
        $optional!(tile, tpc);
        $dense!(ts_ticks, unix_time, trigger_type, n_packets, q_mv, q_ke);
        $optional!(x_mm, y_mm, t0_ticks, drift_ticks, drift_mm, z_mm);
    };
}

impl HitColumns {
    /// Hits.
    pub fn len(&self) -> usize {
        self.io_group.values.len()
    }

    /// True without hits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Room for `additional` more hits in every column.
    pub fn reserve(&mut self, additional: usize) {
        macro_rules! dense {
            ($($field:ident),*) => {$(
                self.$field.values.reserve(additional);
            )*};
        }
        macro_rules! optional {
            ($($field:ident),*) => {$(
                self.$field.values.reserve(additional);
                self.$field.valid.reserve(additional);
            )*};
        }
        hit_columns!(dense, optional);
    }

    /// Appends a hit.
    pub fn push(&mut self, h: HitRow) {
        self.extend_rows(std::slice::from_ref(&h));
    }

    /// Appends hits, column by column: each column's copy is a loop without a branch per row.
    /// For rows still in the cache (an event's, made just before): 30 pushes per hit, one for
    /// each column and validity flag, took longer than making the hit.
    pub fn extend_rows(&mut self, rows: &[HitRow]) {
        macro_rules! dense {
            ($($field:ident),*) => {$(
                self.$field.values.extend(rows.iter().map(|h| h.$field));
            )*};
        }
        macro_rules! optional {
            ($($field:ident),*) => {$(
                let column = &mut self.$field;
                debug_assert_eq!(column.valid.len(), column.values.len(), "an optional column");
                let start = column.valid.len();
                column.values.extend(rows.iter().map(|h| h.$field.unwrap_or_default()));
                column.valid.extend(rows.iter().map(|h| h.$field.is_some()));
                column.nulls += column.valid[start..].iter().filter(|valid| !**valid).count();
            )*};
        }
        hit_columns!(dense, optional);
    }

    /// Hit `i` as a row; panics if there is no such hit.
    pub fn row(&self, i: usize) -> HitRow {
        let mut row = HitRow::default();
        macro_rules! dense {
            ($($field:ident),*) => {$( row.$field = self.$field.values[i]; )*};
        }
        macro_rules! optional {
            ($($field:ident),*) => {$( row.$field = self.$field.get(i); )*};
        }
        hit_columns!(dense, optional);
        row
    }

    /// Every hit as a row, in order.
    pub fn iter(&self) -> impl Iterator<Item = HitRow> + '_ {
        (0..self.len()).map(|i| self.row(i))
    }

    /// The pixel position and drift coordinate of hit `i` (x, y, z in mm), if all are known.
    #[inline]
    pub fn xyz(&self, i: usize) -> Option<[f32; 3]> {
        Some([self.x_mm.get(i)?, self.y_mm.get(i)?, self.z_mm.get(i)?])
    }

    /// The hits `range` (e.g. an event's); panics if it is out of bounds.
    pub fn slice(&self, range: std::ops::Range<usize>) -> HitSlice<'_> {
        assert!(
            range.start <= range.end && range.end <= self.len(),
            "hits {range:?} of {}",
            self.len()
        );
        HitSlice { hits: self, start: range.start, len: range.end - range.start }
    }

    /// Puts hit `i` on a track (or on none).
    pub fn set_track_id(&mut self, i: usize, track_id: Option<u64>) {
        self.track_id.set(i, track_id);
    }

    /// Appends another batch's hits.
    pub fn append(&mut self, other: HitColumns) {
        macro_rules! append {
            ($($field:ident),*) => {$(
                self.$field.append(other.$field);
            )*};
        }
        hit_columns!(append, append);
    }

    /// The hits as a record batch of the `hits` schema, without copying a column.
    pub fn into_record_batch(self) -> RecordBatch {
        let mut columns = Vec::with_capacity(20);
        macro_rules! finish {
            ($($field:ident),*) => {$(
                columns.push(self.$field.finish());
            )*};
        }
        hit_columns!(finish, finish);
        RecordBatch::try_new(hits_schema(), columns).expect("columns match the hits schema")
    }

    /// The hits as a record batch of the `hits` schema (the columns copied).
    pub fn record_batch(&self) -> RecordBatch {
        self.clone().into_record_batch()
    }
}

/// A range of [`HitColumns`] (an event's hits), indexed from 0.
#[derive(Clone, Copy, Debug)]
pub struct HitSlice<'a> {
    hits: &'a HitColumns,
    start: usize,
    len: usize,
}

impl HitSlice<'_> {
    /// Hits in the range.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty range.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hit `i` of the range as a row.
    pub fn row(&self, i: usize) -> HitRow {
        assert!(i < self.len, "hit {i} of {}", self.len);
        self.hits.row(self.start + i)
    }

    /// x, y, z of hit `i` of the range, if all are known ([`HitColumns::xyz`]).
    #[inline]
    pub fn xyz(&self, i: usize) -> Option<[f32; 3]> {
        self.hits.xyz(self.at(i))
    }

    /// The index in the columns of hit `i` of the range.
    #[inline]
    fn at(&self, i: usize) -> usize {
        assert!(i < self.len, "hit {i} of {}", self.len);
        self.start + i
    }

    /// (io_group, io_channel, chip_id, channel_id) of hit `i` of the range.
    #[inline]
    pub fn channel(&self, i: usize) -> (u8, u8, u8, u8) {
        let (h, k) = (self.hits, self.at(i));
        (h.io_group.values[k], h.io_channel.values[k], h.chip_id.values[k], h.channel_id.values[k])
    }

    /// TPC of hit `i` of the range.
    #[inline]
    pub fn tpc(&self, i: usize) -> Option<u8> {
        self.hits.tpc.get(self.at(i))
    }

    /// Charge of hit `i` of the range, ke⁻.
    #[inline]
    pub fn q_ke(&self, i: usize) -> f32 {
        self.hits.q_ke.values[self.at(i)]
    }

    /// Drift time of hit `i` of the range, ticks.
    #[inline]
    pub fn drift_ticks(&self, i: usize) -> Option<f32> {
        self.hits.drift_ticks.get(self.at(i))
    }

    /// Event t0 of hit `i` of the range, ticks.
    #[inline]
    pub fn t0_ticks(&self, i: usize) -> Option<f64> {
        self.hits.t0_ticks.get(self.at(i))
    }
}

impl PartialEq for HitColumns {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<'a> IntoIterator for &'a HitColumns {
    type Item = HitRow;
    type IntoIter = Box<dyn Iterator<Item = HitRow> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl From<&[HitRow]> for HitColumns {
    fn from(rows: &[HitRow]) -> Self {
        let mut hits = HitColumns::default();
        hits.extend_rows(rows);
        hits
    }
}

/// The hits as a record batch of the `hits` schema.
pub fn hits_record_batch(hits: &[HitRow]) -> RecordBatch {
    HitColumns::from(hits).into_record_batch()
}

/// One column: its values, and its validity when a row may be null (a column never null keeps
/// none). Null rows hold the default value, and a column without a null row has no validity
/// buffer, both as `collect::<PrimitiveArray>()` of `Option`s makes them. Validity is kept as
/// a flag per row while the column is filled (a push without a branch or a read-modify-write of
/// a bit word) and packed into bits once, when the column is finished.
struct Column<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    /// Per row, whether it holds a value (empty for a column never null).
    valid: Vec<bool>,
    nulls: usize,
}

impl<T: ArrowPrimitiveType> Clone for Column<T> {
    fn clone(&self) -> Self {
        Self { values: self.values.clone(), valid: self.valid.clone(), nulls: self.nulls }
    }
}

impl<T: ArrowPrimitiveType> Default for Column<T> {
    fn default() -> Self {
        Self::new(0)
    }
}

impl<T: ArrowPrimitiveType> std::fmt::Debug for Column<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} rows, {} null", self.values.len(), self.nulls)
    }
}

impl<T: ArrowPrimitiveType> Column<T> {
    fn new(rows: usize) -> Self {
        Self { values: Vec::with_capacity(rows), valid: Vec::new(), nulls: 0 }
    }

    #[inline]
    fn push_option(&mut self, value: Option<T::Native>) {
        debug_assert_eq!(self.valid.len(), self.values.len(), "a column of values never null");
        self.valid.push(value.is_some());
        self.nulls += usize::from(value.is_none());
        self.values.push(value.unwrap_or_default());
    }

    /// Row `i` of a column filled with [`Column::push_option`].
    #[inline]
    fn get(&self, i: usize) -> Option<T::Native> {
        let value = self.values[i];
        self.valid[i].then_some(value)
    }

    /// Sets row `i` of a column filled with [`Column::push_option`].
    fn set(&mut self, i: usize, value: Option<T::Native>) {
        let was_null = !self.valid[i];
        self.nulls = self.nulls + usize::from(value.is_none()) - usize::from(was_null);
        self.valid[i] = value.is_some();
        self.values[i] = value.unwrap_or_default();
    }

    /// Appends another column filled the same way.
    fn append(&mut self, other: Column<T>) {
        self.values.extend(other.values);
        self.valid.extend(other.valid);
        self.nulls += other.nulls;
    }

    fn finish(self) -> ArrayRef {
        let nulls = (self.nulls > 0).then(|| {
            let valid = &self.valid;
            NullBuffer::new(BooleanBuffer::collect_bool(valid.len(), |i| valid[i]))
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

    /// The hits batch, from columns filled hit by hit, is what arrow's own collect of each
    /// column makes: same values, nulls where a field is `None` (across several 64-row validity
    /// words and a last partial one), no validity buffer without a null; for batches of every
    /// length around a validity word's.
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

    /// Hits read back as rows are the rows pushed; batches appended at any length are one
    /// batch; track ids set afterwards count their nulls right; a slice reads its range.
    #[test]
    fn hit_columns_give_back_their_rows_and_append_at_any_length() {
        let rows: Vec<HitRow> = (0..300).map(hit).collect();
        let all = HitColumns::from(&rows[..]);
        assert_eq!(all.len(), 300);
        assert!(all.iter().eq(rows.iter().copied()));
        assert!((&all).into_iter().eq(rows.iter().copied()));
        for cut in [0, 1, 63, 64, 65, 130, 299, 300] {
            let mut joined = HitColumns::from(&rows[..cut]);
            joined.append(HitColumns::from(&rows[cut..]));
            assert_eq!(joined, all, "cut at {cut}");
            assert_eq!(joined.record_batch(), all.record_batch(), "cut at {cut}");
            let mut extended = HitColumns::from(&rows[..cut]);
            extended.extend_rows(&rows[cut..cut + (300 - cut) / 2]);
            extended.extend_rows(&rows[cut + (300 - cut) / 2..]);
            assert_eq!(extended.record_batch(), all.record_batch(), "extended at {cut}");
        }
        let mut tracked = all.clone();
        let mut expected = rows.clone();
        for i in (0..300).step_by(7) {
            let id = (i % 3 != 0).then_some(i as u64 * 10);
            tracked.set_track_id(i, id);
            expected[i].track_id = id;
        }
        assert!(tracked.iter().eq(expected.iter().copied()));
        let batch = tracked.into_record_batch();
        let want = hits_record_batch(&expected);
        assert_eq!(batch.column(1).to_data(), want.column(1).to_data());
        assert_eq!(batch.column(1).null_count(), want.column(1).null_count());
        let slice = all.slice(100..164);
        assert_eq!(slice.len(), 64);
        assert_eq!(slice.row(5), rows[105]);
        let xyz = |h: &HitRow| Some([h.x_mm?, h.y_mm?, h.z_mm?]);
        assert!((0..64).all(|i| slice.xyz(i) == xyz(&rows[100 + i])));
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
