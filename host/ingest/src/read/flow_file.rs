//! ndlar_flow (proto_nd_flow) charge output as input: its events (`charge/events`), their t0
//! (`combined/t0`), their calibrated hits (`charge/calib_final_hits` when the file has them,
//! else `charge/calib_prompt_hits`: full channel address, x/y/z in cm — drift axis x, beam
//! axis z —, drift time, Q_raw/Q/E in ke⁻/MeV) and, for prompt hits, the raw ADC of the same
//! hit (`charge/raw_hits`, one raw hit per prompt hit, same `id`). The Run-2 sample of
//! `../shared/real/flow` is the reference layout.
//!
//! Events are read in blocks through flow's own references (`charge/events/ref/…/ref` and
//! `ref_region`), so memory stays bounded by the block, not the file. Members are bound by name
//! and converted by HDF5, so other members may come and go (and integer widths change) between
//! flow versions.

use std::ops::Range;
use std::path::{Path, PathBuf};

use hdf5::{Dataset, File, H5Type};

use crate::error::{Hdf5Context, IngestError, Result};
use crate::hdf5_io::open_readonly;

/// The dataset of ndlar_flow's calibrated prompt hits.
pub const FLOW_HITS_DATASET: &str = "charge/calib_prompt_hits/data";
/// ndlar_flow's events.
pub const FLOW_EVENTS_DATASET: &str = "charge/events/data";

/// Which of ndlar_flow's hit products a flow file's hits come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowHits {
    /// `charge/calib_prompt_hits`: one hit per packet, with its raw ADC in `charge/raw_hits`.
    Prompt,
    /// `charge/calib_final_hits`: prompt hits merged by flow (no single ADC per hit).
    Final,
}

impl FlowHits {
    /// The group of the product (`charge/calib_…_hits`).
    pub fn group(self) -> &'static str {
        match self {
            Self::Prompt => "charge/calib_prompt_hits",
            Self::Final => "charge/calib_final_hits",
        }
    }
}

/// A calibrated hit of an ndlar_flow file, as larmon reads it (its streams, `larmon detector
/// check`).
#[derive(H5Type, Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct FlowChargeHit {
    /// Flow's hit id (row of the hit dataset).
    pub id: u64,
    /// IO group.
    pub io_group: u64,
    /// UART the packet was read on.
    pub io_channel: u64,
    /// Chip id.
    pub chip_id: u64,
    /// Channel id.
    pub channel_id: u64,
    /// Drift coordinate, cm.
    pub x: f64,
    /// Vertical position, cm.
    pub y: f64,
    /// Beam-axis position, cm.
    pub z: f64,
    /// Drift time, ticks (hit time − t0).
    pub t_drift: f64,
    /// Hit time, ticks since the last PPS.
    pub ts_pps: u64,
    /// Charge above flow's pedestal, ke⁻ (no further corrections).
    #[hdf5(rename = "Q_raw")]
    pub q_raw: f64,
    /// Charge after flow's corrections, ke⁻.
    #[hdf5(rename = "Q")]
    pub q: f64,
    /// Energy, MeV.
    #[hdf5(rename = "E")]
    pub e: f64,
}

/// The member of `charge/raw_hits` larmon reads: the ADC of the packet behind a prompt hit.
#[derive(H5Type, Clone, Copy, Debug, Default)]
#[repr(C)]
struct RawHitAdc {
    id: u64,
    #[hdf5(rename = "ADC")]
    adc: u8,
}

#[derive(H5Type, Clone, Copy, Debug, Default)]
#[repr(C)]
struct EventRecord {
    id: u64,
    n_ext_trigs: u32,
    unix_ts: u64,
    ts_start: f64,
    ts_end: f64,
}

#[derive(H5Type, Clone, Copy, Debug, Default)]
#[repr(C)]
struct T0Record {
    ts: f64,
    #[hdf5(rename = "type")]
    kind: u8,
}

#[derive(H5Type, Clone, Copy, Debug, Default)]
#[repr(C)]
struct Region {
    start: i64,
    stop: i64,
}

/// One event of a flow file with its hits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlowEvent {
    /// Flow's event id.
    pub id: u64,
    /// External triggers flow associated with the event (0: a self-triggered event).
    pub n_ext_trigs: u32,
    /// Unix second of the event.
    pub unix_ts: u64,
    /// First hit time, ticks since the PPS.
    pub ts_start: f64,
    /// Last hit time, ticks since the PPS.
    pub ts_end: f64,
    /// The event's t0 (`combined/t0`), ticks since the PPS, and its type (1: external trigger).
    pub t0: Option<(f64, u8)>,
    /// Its hits, in file order.
    pub hits: Vec<FlowChargeHit>,
    /// The raw ADC of each hit (prompt hits with `charge/raw_hits`), same order.
    pub adc: Option<Vec<u8>>,
}

/// An open ndlar_flow file, read event block by event block.
pub struct FlowFileReader {
    path: PathBuf,
    file: File,
    hits_kind: FlowHits,
    events: Vec<EventRecord>,
    t0: Vec<Option<(f64, u8)>>,
    has_raw_adc: bool,
    next_event: usize,
    hit_rows: u64,
}

/// True when `path` is an ndlar_flow file with charge events and calibrated hits.
pub fn is_flow_file(path: &Path) -> bool {
    open_readonly(path).is_ok_and(|f| {
        f.dataset(FLOW_EVENTS_DATASET).is_ok()
            && [FlowHits::Final, FlowHits::Prompt]
                .iter()
                .any(|k| f.dataset(&format!("{}/data", k.group())).is_ok())
    })
}

/// Reads every calibrated prompt hit of an ndlar_flow file, the whole dataset at once.
pub fn read_flow_hits(path: &Path) -> Result<Vec<FlowChargeHit>> {
    let file = open_readonly(path)?;
    let dataset = file.dataset(FLOW_HITS_DATASET).map_err(|_| IngestError::NotLarpix {
        path: path.into(),
        reason: format!("no `{FLOW_HITS_DATASET}`: not an ndlar_flow charge file"),
    })?;
    dataset.read_raw::<FlowChargeHit>().context(path, || format!("reading `{FLOW_HITS_DATASET}`"))
}

fn layout(path: &Path, dataset: &str, reason: impl Into<String>) -> IngestError {
    IngestError::Layout { path: path.into(), dataset: dataset.into(), reason: reason.into() }
}

fn read_rows<T: H5Type + Clone>(
    path: &Path,
    dataset: &Dataset,
    name: &str,
    rows: Range<usize>,
) -> Result<Vec<T>> {
    let (start, end) = (rows.start as u64, rows.end as u64);
    dataset.read_slice_1d::<T, _>(rows).map(|a| a.to_vec()).map_err(|source| IngestError::Read {
        path: path.into(),
        dataset: name.into(),
        start,
        end,
        source: source.into(),
    })
}

impl FlowFileReader {
    /// Opens an ndlar_flow file: reads its events and their t0, and decides which hits to use.
    pub fn open(path: &Path) -> Result<Self> {
        let file = open_readonly(path)?;
        let _busy = crate::stall::busy(path, "opening the flow datasets");
        let not_flow = |reason: String| IngestError::NotLarpix { path: path.into(), reason };
        let events_ds = file.dataset(FLOW_EVENTS_DATASET).map_err(|_| {
            not_flow(format!("no `{FLOW_EVENTS_DATASET}`: not an ndlar_flow charge file"))
        })?;
        let hits_kind = [FlowHits::Final, FlowHits::Prompt]
            .into_iter()
            .find(|k| file.dataset(&format!("{}/data", k.group())).is_ok())
            .ok_or_else(|| {
                not_flow("an ndlar_flow file without calibrated hits (`charge/calib_final_hits` or `charge/calib_prompt_hits`)".into())
            })?;
        let events: Vec<EventRecord> =
            events_ds.read_raw().context(path, || format!("reading `{FLOW_EVENTS_DATASET}`"))?;
        // t0 of each event through flow's reference (one t0 per event in flow's t0 builder).
        let mut t0 = vec![None; events.len()];
        if let (Ok(t0_ds), Ok(ref_ds)) =
            (file.dataset("combined/t0/data"), file.dataset("charge/events/ref/combined/t0/ref"))
        {
            let records: Vec<T0Record> =
                t0_ds.read_raw().context(path, || "reading `combined/t0/data`".into())?;
            let refs = read_pairs(path, &ref_ds, "charge/events/ref/combined/t0/ref")?;
            for (event, t) in refs {
                match (t0.get_mut(event), records.get(t)) {
                    (Some(slot), Some(r)) => *slot = Some((r.ts, r.kind)),
                    _ => {
                        return Err(layout(
                            path,
                            "charge/events/ref/combined/t0/ref",
                            format!(
                                "reference ({event}, {t}) outside {} events and {} t0 rows",
                                events.len(),
                                records.len()
                            ),
                        ));
                    }
                }
            }
        }
        let hits_rows = file
            .dataset(&format!("{}/data", hits_kind.group()))
            .map(|d| d.size() as u64)
            .unwrap_or(0);
        let has_raw_adc = hits_kind == FlowHits::Prompt
            && file.dataset("charge/raw_hits/data").is_ok_and(|d| d.size() as u64 == hits_rows);
        Ok(Self {
            path: path.into(),
            file,
            hits_kind,
            events,
            t0,
            has_raw_adc,
            next_event: 0,
            hit_rows: hits_rows,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Which hit product the hits come from.
    pub fn hits_kind(&self) -> FlowHits {
        self.hits_kind
    }

    /// True when each hit's raw ADC is read too (prompt hits with `charge/raw_hits`).
    pub fn has_raw_adc(&self) -> bool {
        self.has_raw_adc
    }

    /// Events in the file.
    pub fn events(&self) -> usize {
        self.events.len()
    }

    /// Rows of the hit dataset.
    pub fn hit_rows(&self) -> u64 {
        self.hit_rows
    }

    /// The earliest Unix second of the file's events.
    pub fn first_unix_ts(&self) -> Option<u64> {
        self.events.iter().map(|e| e.unix_ts).min()
    }

    /// The first and last Unix second of the file's events.
    pub fn unix_span(&self) -> Option<(u64, u64)> {
        let first = self.first_unix_ts()?;
        Some((first, self.events.iter().map(|e| e.unix_ts).max().unwrap_or(first)))
    }

    /// Events returned so far.
    pub fn events_read(&self) -> usize {
        self.next_event
    }

    /// The next `count` events with their hits, or `None` at the end.
    pub fn next_events(&mut self, count: usize) -> Result<Option<Vec<FlowEvent>>> {
        let path = self.path.clone();
        let _busy = crate::stall::busy(&path, "reading flow events");
        let range = self.next_event..(self.next_event + count.max(1)).min(self.events.len());
        if range.is_empty() {
            return Ok(None);
        }
        self.next_event = range.end;
        let group = self.hits_kind.group();
        let hits_name = format!("{group}/data");
        let region_name = format!("charge/events/ref/{group}/ref_region");
        let ref_name = format!("charge/events/ref/{group}/ref");
        let open =
            |name: &str| self.file.dataset(name).map_err(|_| layout(&self.path, name, "missing"));
        let (hits_ds, region_ds, ref_ds) =
            (open(&hits_name)?, open(&region_name)?, open(&ref_name)?);
        let regions: Vec<Region> = read_rows(&self.path, &region_ds, &region_name, range.clone())?;
        let mut out: Vec<FlowEvent> = range
            .clone()
            .map(|i| {
                let e = &self.events[i];
                FlowEvent {
                    id: e.id,
                    n_ext_trigs: e.n_ext_trigs,
                    unix_ts: e.unix_ts,
                    ts_start: e.ts_start,
                    ts_end: e.ts_end,
                    t0: self.t0[i],
                    hits: Vec::new(),
                    adc: self.has_raw_adc.then(Vec::new),
                }
            })
            .collect();
        // The reference rows of these events (flow writes an event's references together).
        let spans = regions.iter().filter(|r| r.stop > r.start);
        let (first, last) =
            spans.fold((i64::MAX, i64::MIN), |(a, b), r| (a.min(r.start), b.max(r.stop)));
        if first >= last {
            return Ok(Some(out));
        }
        let ref_rows = ref_ds.shape().first().copied().unwrap_or(0);
        if first < 0 || last as usize > ref_rows {
            return Err(layout(
                &self.path,
                &region_name,
                format!(
                    "events {}..{} point at reference rows {first}..{last} of {ref_rows}",
                    range.start, range.end
                ),
            ));
        }
        let pairs = read_pair_rows(&self.path, &ref_ds, &ref_name, first as usize..last as usize)?;
        let (lo, hi) =
            pairs.iter().fold((usize::MAX, 0), |(a, b), &(_, h)| (a.min(h), b.max(h + 1)));
        if lo >= hi {
            return Ok(Some(out));
        }
        if hi as u64 > self.hit_rows {
            return Err(layout(
                &self.path,
                &ref_name,
                format!("hit {} referenced, the file has {}", hi - 1, self.hit_rows),
            ));
        }
        let hits: Vec<FlowChargeHit> = read_rows(&self.path, &hits_ds, &hits_name, lo..hi)?;
        let raw: Option<Vec<RawHitAdc>> = if self.has_raw_adc {
            let name = "charge/raw_hits/data";
            let ds = open(name)?;
            Some(read_rows(&self.path, &ds, name, lo..hi)?)
        } else {
            None
        };
        for (event, hit) in pairs {
            let Some(slot) = event.checked_sub(range.start).and_then(|k| out.get_mut(k)) else {
                return Err(layout(
                    &self.path,
                    &ref_name,
                    format!(
                        "event {event} referenced outside events {}..{}",
                        range.start, range.end
                    ),
                ));
            };
            let h = hits[hit - lo];
            slot.hits.push(h);
            if let (Some(adc), Some(raw)) = (slot.adc.as_mut(), raw.as_ref()) {
                let r = raw[hit - lo];
                if r.id != h.id {
                    return Err(layout(
                        &self.path,
                        "charge/raw_hits/data",
                        format!(
                            "row {hit}: raw hit id {} beside prompt hit id {}: not one raw hit per prompt hit",
                            r.id, h.id
                        ),
                    ));
                }
                adc.push(r.adc);
            }
        }
        Ok(Some(out))
    }
}

/// Reads a whole `(n, 2)` reference dataset as (parent row, child row) pairs.
fn read_pairs(path: &Path, dataset: &Dataset, name: &str) -> Result<Vec<(usize, usize)>> {
    let rows = dataset.shape().first().copied().unwrap_or(0);
    read_pair_rows(path, dataset, name, 0..rows)
}

/// Rows `rows` of an `(n, 2)` reference dataset as (parent row, child row) pairs.
fn read_pair_rows(
    path: &Path,
    dataset: &Dataset,
    name: &str,
    rows: Range<usize>,
) -> Result<Vec<(usize, usize)>> {
    if dataset.ndim() != 2 || dataset.shape()[1] != 2 {
        return Err(layout(path, name, format!("shape {:?}, expected (n, 2)", dataset.shape())));
    }
    let (start, end) = (rows.start as u64, rows.end as u64);
    let array =
        dataset.read_slice_2d::<u64, _>((rows, ..)).map_err(|source| IngestError::Read {
            path: path.into(),
            dataset: name.into(),
            start,
            end,
            source: source.into(),
        })?;
    Ok(array.rows().into_iter().map(|r| (r[0] as usize, r[1] as usize)).collect())
}
