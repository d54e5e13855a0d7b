//! The Arrow streams of the light readout (docs/data-model.md): `light_events` (one row per
//! event), `light_waveforms` (one row per waveform: its detector and reduced quantities, plus the
//! 14-bit samples, sent only to plugins that ask for them) and `light_matches` (light events and
//! charge triggers paired by time, both ways). Built incrementally, a batch per few hundred
//! events.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float32Builder, Float64Builder, Int16Builder, Int64Builder, ListBuilder, RecordBatch,
    UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::LightEvent;
use super::TAI_MINUS_UTC_S;
use super::channel_map::{ChannelMap, DetType};
use super::reduce::summarize;

/// Clock ticks of the charge readout per second (10 MHz).
pub const TICKS_PER_S: i64 = 10_000_000;

/// A list type of non-null `item`s.
fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, false)))
}

/// Schema of `light_events`.
pub fn light_events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event", DataType::UInt64, false),
        Field::new("unix_ms", DataType::UInt64, false),
        Field::new("boards", DataType::UInt8, false),
        Field::new("boards_present", DataType::UInt8, false),
        Field::new("boards_missing", DataType::UInt8, false),
        Field::new("tai_s", DataType::UInt64, false),
        Field::new("tai_ns", DataType::UInt32, false),
        Field::new("time_ticks", DataType::Int64, false),
        Field::new("board_tai_s", list_of(DataType::UInt64), false),
        Field::new("board_tai_ns", list_of(DataType::UInt32), false),
    ]))
}

/// Schema of `light_waveforms`.
pub fn light_waveforms_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event", DataType::UInt64, false),
        Field::new("adc", DataType::UInt8, false),
        Field::new("channel", DataType::UInt8, false),
        Field::new("tpc", DataType::UInt8, false),
        Field::new("det", DataType::UInt8, false),
        Field::new("det_type", DataType::UInt8, false),
        Field::new("baseline", DataType::Float32, false),
        Field::new("rms", DataType::Float32, false),
        Field::new("peak", DataType::Float32, false),
        Field::new("peak_sample", DataType::UInt16, false),
        Field::new("integral", DataType::Float32, false),
        Field::new("clipped_high", DataType::UInt16, false),
        Field::new("clipped_low", DataType::UInt16, false),
        Field::new(
            "samples",
            DataType::List(Arc::new(Field::new("item", DataType::Int16, false))),
            false,
        ),
    ]))
}

/// Schema of `light_matches`.
pub fn light_matches_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("light_event", DataType::UInt64, true),
        Field::new("charge_event", DataType::UInt64, true),
        Field::new("dt_ticks", DataType::Int64, true),
        Field::new("time_ticks", DataType::Int64, false),
        Field::new("charge_q_ke", DataType::Float64, true),
    ]))
}

/// The trigger time of a light event: Unix seconds × 1e7 + ns / 100 (the charge clock's
/// ticks), from the first board present.
pub fn event_time_ticks(event: &LightEvent<'_>) -> Option<i64> {
    let adc = (0..8).find(|&b| event.boards_present & (1 << b) != 0)?;
    let unix_s = event.tai_s[adc].checked_sub(TAI_MINUS_UTC_S)? as i64;
    Some(unix_s * TICKS_PER_S + i64::from(event.tai_ns[adc]) / 100)
}

/// Builds `light_events` and `light_waveforms` batches from events.
pub struct LightBatchBuilder {
    baseline_samples: usize,
    map: ChannelMap,
    events: (
        UInt64Builder,
        UInt64Builder,
        UInt8Builder,
        UInt8Builder,
        UInt8Builder,
        UInt64Builder,
        UInt32Builder,
        Int64Builder,
    ),
    ids: (UInt64Builder, UInt8Builder, UInt8Builder, UInt8Builder, UInt8Builder, UInt8Builder),
    values: (
        Float32Builder,
        Float32Builder,
        Float32Builder,
        UInt16Builder,
        Float32Builder,
        UInt16Builder,
        UInt16Builder,
    ),
    samples: ListBuilder<Int16Builder>,
    board_tai_s: ListBuilder<UInt64Builder>,
    board_tai_ns: ListBuilder<UInt32Builder>,
    /// Events added since the last `finish`.
    pub pending_events: usize,
}

impl LightBatchBuilder {
    /// A builder with the channel map and baseline window.
    pub fn new(map: ChannelMap, baseline_samples: usize) -> Self {
        Self {
            baseline_samples,
            map,
            events: Default::default(),
            ids: Default::default(),
            values: Default::default(),
            samples: ListBuilder::new(Int16Builder::new()).with_field(Arc::new(Field::new(
                "item",
                DataType::Int16,
                false,
            ))),
            board_tai_s: ListBuilder::new(UInt64Builder::new()).with_field(Arc::new(Field::new(
                "item",
                DataType::UInt64,
                false,
            ))),
            board_tai_ns: ListBuilder::new(UInt32Builder::new()).with_field(Arc::new(Field::new(
                "item",
                DataType::UInt32,
                false,
            ))),
            pending_events: 0,
        }
    }

    /// Adds one event and its waveforms.
    pub fn add(&mut self, event: &LightEvent<'_>) {
        let e = &mut self.events;
        let first = (0..8).find(|&b| event.boards_present & (1 << b) != 0);
        e.0.append_value(event.event);
        e.1.append_value(event.unix_ms);
        e.2.append_value(event.boards);
        e.3.append_value(event.boards_present);
        e.4.append_value(event.missing_boards());
        e.5.append_value(first.map_or(0, |b| event.tai_s[b]));
        e.6.append_value(first.map_or(0, |b| event.tai_ns[b]));
        e.7.append_value(event_time_ticks(event).unwrap_or(0));
        let boards = usize::from(event.boards.min(8));
        self.board_tai_s.values().append_slice(&event.tai_s[..boards]);
        self.board_tai_s.append(true);
        self.board_tai_ns.values().append_slice(&event.tai_ns[..boards]);
        self.board_tai_ns.append(true);
        for w in &event.waveforms {
            let s = summarize(w.samples, self.baseline_samples);
            let mapped = self.map.get(w.adc, w.channel);
            let ids = &mut self.ids;
            ids.0.append_value(event.event);
            ids.1.append_value(w.adc);
            ids.2.append_value(w.channel);
            ids.3.append_value(mapped.map_or(u8::MAX, |m| m.tpc));
            ids.4.append_value(mapped.map_or(u8::MAX, |m| m.det));
            ids.5.append_value(mapped.map_or(u8::MAX, |m| match m.det_type {
                DetType::Acl => 0,
                DetType::Lcm => 1,
            }));
            let v = &mut self.values;
            v.0.append_value(s.baseline);
            v.1.append_value(s.rms);
            v.2.append_value(s.peak);
            v.3.append_value(s.peak_sample);
            v.4.append_value(s.integral);
            v.5.append_value(s.clipped_high);
            v.6.append_value(s.clipped_low);
            let values = self.samples.values();
            for &x in w.samples {
                values.append_value(x >> 2); // the 14-bit value
            }
            self.samples.append(true);
        }
        self.pending_events += 1;
    }

    /// The batches of the events added since the last call.
    pub fn finish(&mut self) -> (RecordBatch, RecordBatch) {
        self.pending_events = 0;
        let e = &mut self.events;
        let events: Vec<ArrayRef> = vec![
            Arc::new(e.0.finish()),
            Arc::new(e.1.finish()),
            Arc::new(e.2.finish()),
            Arc::new(e.3.finish()),
            Arc::new(e.4.finish()),
            Arc::new(e.5.finish()),
            Arc::new(e.6.finish()),
            Arc::new(e.7.finish()),
            Arc::new(self.board_tai_s.finish()),
            Arc::new(self.board_tai_ns.finish()),
        ];
        let (ids, v) = (&mut self.ids, &mut self.values);
        let waveforms: Vec<ArrayRef> = vec![
            Arc::new(ids.0.finish()),
            Arc::new(ids.1.finish()),
            Arc::new(ids.2.finish()),
            Arc::new(ids.3.finish()),
            Arc::new(ids.4.finish()),
            Arc::new(ids.5.finish()),
            Arc::new(v.0.finish()),
            Arc::new(v.1.finish()),
            Arc::new(v.2.finish()),
            Arc::new(v.3.finish()),
            Arc::new(v.4.finish()),
            Arc::new(v.5.finish()),
            Arc::new(v.6.finish()),
            Arc::new(self.samples.finish()),
        ];
        (
            RecordBatch::try_new(light_events_schema(), events).expect("light_events columns"),
            RecordBatch::try_new(light_waveforms_schema(), waveforms)
                .expect("light_waveforms columns"),
        )
    }
}

/// Pairs light events with charge triggers by time (|Δt| ≤ `window_ticks` on the 10 MHz clock,
/// the nearest one), both ways: every light event gets a row (charge side empty if unmatched);
/// every charge trigger inside the light data's time span without a light event gets a row
/// (light side empty).
pub struct Matcher {
    /// Charge triggers: (time ticks, event id, the event's charge in ke⁻), sorted by time and
    /// id.
    charge: Vec<(i64, u64, f64)>,
    used: Vec<bool>,
    window_ticks: i64,
    light_span: Option<(i64, i64)>,
}

impl Matcher {
    /// A matcher over the charge triggers of a run.
    pub fn new(mut charge: Vec<(i64, u64, f64)>, window_ticks: i64) -> Self {
        charge.sort_unstable_by_key(|&(time, id, _)| (time, id));
        let used = vec![false; charge.len()];
        Self { charge, used, window_ticks, light_span: None }
    }

    /// The `light_matches` rows of a batch of light events `(event, time ticks)`.
    pub fn match_events(&mut self, light: &[(u64, i64)]) -> RecordBatch {
        let mut rows = MatchRows::default();
        for &(event, time) in light {
            self.light_span =
                Some(self.light_span.map_or((time, time), |(a, b)| (a.min(time), b.max(time))));
            let i = self.charge.partition_point(|&(ct, _, _)| ct < time - self.window_ticks);
            let best = self.charge[i..]
                .iter()
                .enumerate()
                .take_while(|(_, (ct, _, _))| *ct <= time + self.window_ticks)
                .min_by_key(|(_, (ct, _, _))| (ct - time).abs())
                .map(|(k, &(ct, id, q_ke))| (i + k, ct, id, q_ke));
            match best {
                Some((k, ct, id, q_ke)) => {
                    self.used[k] = true;
                    rows.push(Some(event), Some((id, q_ke)), Some(time - ct), time);
                }
                None => rows.push(Some(event), None, None, time),
            }
        }
        rows.finish()
    }

    /// Rows for the charge triggers within the light data's time span that no light event
    /// matched (call once, after the last light event).
    pub fn unmatched_charge(&self) -> RecordBatch {
        let mut rows = MatchRows::default();
        if let Some((first, last)) = self.light_span {
            for (k, &(time, id, q_ke)) in self.charge.iter().enumerate() {
                if !self.used[k]
                    && time >= first - self.window_ticks
                    && time <= last + self.window_ticks
                {
                    rows.push(None, Some((id, q_ke)), None, time);
                }
            }
        }
        rows.finish()
    }
}

/// The columns of `light_matches`, built a row at a time.
#[derive(Default)]
struct MatchRows {
    light_event: UInt64Builder,
    charge_event: UInt64Builder,
    dt_ticks: Int64Builder,
    time_ticks: Int64Builder,
    charge_q_ke: Float64Builder,
}

impl MatchRows {
    /// A row: the light event, the charge trigger (event id, charge in ke⁻), Δt when both
    /// sides are there, and the row's time.
    fn push(
        &mut self,
        light_event: Option<u64>,
        charge: Option<(u64, f64)>,
        dt_ticks: Option<i64>,
        time_ticks: i64,
    ) {
        self.light_event.append_option(light_event);
        self.charge_event.append_option(charge.map(|(id, _)| id));
        self.dt_ticks.append_option(dt_ticks);
        self.time_ticks.append_value(time_ticks);
        self.charge_q_ke.append_option(charge.map(|(_, q_ke)| q_ke));
    }

    fn finish(mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.light_event.finish()),
            Arc::new(self.charge_event.finish()),
            Arc::new(self.dt_ticks.finish()),
            Arc::new(self.time_ticks.finish()),
            Arc::new(self.charge_q_ke.finish()),
        ];
        RecordBatch::try_new(light_matches_schema(), columns).expect("light_matches columns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::light::Waveform;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, UInt32Type, UInt64Type};

    #[test]
    fn events_carry_every_boards_tai_and_waveforms_their_detector() {
        let samples = vec![-28000i16; 8];
        let event = LightEvent {
            event: 7,
            unix_ms: 1_700_000_000_500,
            boards_present: 0b01,
            boards: 2,
            tai_s: [1_700_000_037, 0, 0, 0, 0, 0, 0, 0],
            tai_ns: [500_000_100, 0, 0, 0, 0, 0, 0, 0],
            serial: [1, 2, 0, 0, 0, 0, 0, 0],
            waveforms: vec![Waveform { adc: 0, channel: 4, samples: &samples }],
        };
        let mut builder = LightBatchBuilder::new(ChannelMap::nominal_2x2(), 4);
        builder.add(&event);
        let (events, waveforms) = builder.finish();
        let tai_s = events.column_by_name("board_tai_s").unwrap().as_list::<i32>().value(0);
        assert_eq!(tai_s.as_primitive::<UInt64Type>().values(), &[1_700_000_037, 0]);
        let tai_ns = events.column_by_name("board_tai_ns").unwrap().as_list::<i32>().value(0);
        assert_eq!(tai_ns.as_primitive::<UInt32Type>().values(), &[500_000_100, 0]);
        let ticks = events
            .column_by_name("time_ticks")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(ticks.value(0), 1_700_000_000 * TICKS_PER_S + 5_000_001);
        assert_eq!(
            events
                .column_by_name("boards_missing")
                .unwrap()
                .as_primitive::<arrow::datatypes::UInt8Type>()
                .value(0),
            1
        );
        assert_eq!(waveforms.num_rows(), 1);
        let det_type = waveforms.column_by_name("det_type").unwrap();
        assert_eq!(det_type.len(), 1);
        // Input 4 of board 0: module 0's first ArcLight detector on TPC 0.
        assert_eq!(
            waveforms
                .column_by_name("tpc")
                .unwrap()
                .as_primitive::<arrow::datatypes::UInt8Type>()
                .value(0),
            0
        );
    }

    #[test]
    fn matching_pairs_the_nearest_trigger_and_reports_both_ways() {
        let triggers = vec![(9_000, 3, 30.0), (1_000, 1, 10.0), (5_000, 2, 20.0)];
        let mut m = Matcher::new(triggers, 30);
        let rows = m.match_events(&[(10, 1_010), (11, 7_000)]);
        let charge = rows.column(1).as_primitive::<UInt64Type>();
        assert_eq!((charge.is_valid(0), charge.value(0), charge.is_valid(1)), (true, 1, false));
        // The matched trigger's charge beside it, none for the unmatched light event.
        let q = rows.column_by_name("charge_q_ke").unwrap().as_primitive::<Float64Type>();
        assert_eq!((q.is_valid(0), q.value(0), q.is_valid(1)), (true, 10.0, false));
        // Trigger 2 (5000) lies inside the light span [1010, 7000] and was not matched.
        let unmatched = m.unmatched_charge();
        assert_eq!(unmatched.num_rows(), 1);
        assert_eq!(unmatched.column(1).as_primitive::<UInt64Type>().value(0), 2);
        let q = unmatched.column_by_name("charge_q_ke").unwrap().as_primitive::<Float64Type>();
        assert_eq!(q.value(0), 20.0);
    }
}
