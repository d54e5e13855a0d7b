//! The charge hits of an ndlar_flow (proto_nd_flow) output file, `charge/calib_prompt_hits/data`:
//! each hit's full channel address, its position as ndlar_flow computed it (cm; drift axis x,
//! beam axis z) and its drift time. larmon uses them to check its own geometry against
//! ndlar_flow's (`larmon detector check`) — the Run-2 sample of `../shared/real/flow` is read
//! this way. Members are bound by name, so other members may come and go between flow versions.

use std::path::Path;

use hdf5::H5Type;

use crate::error::{Hdf5Context, IngestError, Result};
use crate::hdf5_io::open_readonly;

/// The dataset of ndlar_flow's calibrated prompt hits.
pub const FLOW_HITS_DATASET: &str = "charge/calib_prompt_hits/data";

/// One calibrated prompt hit of an ndlar_flow file (the members larmon reads).
#[derive(H5Type, Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct FlowHit {
    /// IO group.
    pub io_group: u64,
    /// UART the packet was read on.
    pub io_channel: u64,
    /// Chip id.
    pub chip_id: u64,
    /// Channel id.
    pub channel_id: u64,
    /// Drift coordinate, cm (ndlar_flow's x).
    pub x: f64,
    /// Vertical position, cm.
    pub y: f64,
    /// Beam-axis position, cm (ndlar_flow's z).
    pub z: f64,
    /// Drift time, clock ticks.
    pub t_drift: f64,
}

/// True when `path` holds ndlar_flow charge hits.
pub fn is_flow_file(path: &Path) -> bool {
    open_readonly(path).is_ok_and(|f| f.dataset(FLOW_HITS_DATASET).is_ok())
}

/// Reads every calibrated prompt hit of an ndlar_flow file.
pub fn read_flow_hits(path: &Path) -> Result<Vec<FlowHit>> {
    let file = open_readonly(path)?;
    let dataset = file.dataset(FLOW_HITS_DATASET).map_err(|_| IngestError::NotLarpix {
        path: path.into(),
        reason: format!("no `{FLOW_HITS_DATASET}`: not an ndlar_flow charge file"),
    })?;
    dataset.read_raw::<FlowHit>().context(path, || format!("reading `{FLOW_HITS_DATASET}`"))
}
