//! Reading LArPix files: detect the kind, then stream packet rows in bounded batches.

mod decode_ahead;
mod flow_file;
mod packet_file;
mod raw_file;
mod read_ahead;

use std::path::Path;

pub use decode_ahead::DecodeAhead;
pub use flow_file::{
    FLOW_EVENTS_DATASET, FLOW_HITS_DATASET, FlowChargeHit, FlowEvent, FlowFileReader, FlowHits,
    is_flow_file, read_flow_hits,
};
pub use packet_file::{PacketFileReader, PacketLayout, StoredMember};
pub use raw_file::RawFileReader;

use crate::error::{IngestError, Result};
use crate::hdf5_io::open_readonly;
use larmon_decode::PacketColumns;

/// How much a reader holds in memory at once.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Target rows per batch (raw files: whole messages, so a batch can exceed it by one message).
    pub batch_rows: usize,
    /// Raw files: messages read from HDF5 per call (one `msgs` chunk is 1024 in DAQ files).
    pub messages_per_read: usize,
    /// Packet files: read the next blocks in a background thread while the current one is
    /// decoded (uses a second core; memory bounded to two extra blocks).
    pub read_ahead: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self { batch_rows: 1 << 15, messages_per_read: 1024, read_ahead: true }
    }
}

/// The two kinds of LArPix charge file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// Raw PACMAN messages (`msgs`, `msg_headers`).
    Raw,
    /// Decoded packets (`packets`).
    Packets,
}

/// A reader of either kind, giving the same packet rows.
pub enum LarpixReader {
    /// A raw file.
    Raw(RawFileReader),
    /// A packet file.
    Packets(PacketFileReader),
}

impl LarpixReader {
    /// Opens `path`, deciding its kind from the datasets it holds.
    pub fn open(path: &Path, options: &ReadOptions) -> Result<Self> {
        let _busy = crate::stall::busy(path, "opening the file");
        let file = open_readonly(path)?;
        if file.link_exists("msgs") {
            Ok(Self::Raw(RawFileReader::from_file(path, file, options)?))
        } else if file.link_exists("packets") {
            Ok(Self::Packets(PacketFileReader::from_file(path, file, options)?))
        } else {
            let found = file.member_names().unwrap_or_default();
            Err(IngestError::NotLarpix {
                path: path.into(),
                reason: format!(
                    "expected `msgs` + `msg_headers` (raw) or `packets` (packet file); found {}",
                    if found.is_empty() { "nothing".into() } else { found.join(", ") }
                ),
            })
        }
    }

    /// Which kind of file this is.
    pub fn kind(&self) -> FileKind {
        match self {
            Self::Raw(_) => FileKind::Raw,
            Self::Packets(_) => FileKind::Packets,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            Self::Raw(r) => r.path(),
            Self::Packets(r) => r.path(),
        }
    }

    /// Units of progress available now (messages for raw files, rows for packet files).
    pub fn progress_total(&self) -> u64 {
        match self {
            Self::Raw(r) => r.messages(),
            Self::Packets(r) => r.rows(),
        }
    }

    /// Units of progress consumed.
    pub fn progress_done(&self) -> u64 {
        match self {
            Self::Raw(r) => r.messages_read(),
            Self::Packets(r) => r.rows_read(),
        }
    }

    /// Continues from a position given by [`progress_done`](Self::progress_done) (messages of a
    /// raw file, rows of a packet file), e.g. after a restart or on reopening a growing file.
    pub fn seek(&mut self, position: u64) {
        match self {
            Self::Raw(r) => r.seek(position),
            Self::Packets(r) => r.seek(position),
        }
    }

    /// Picks up data appended since opening (files still being written).
    pub fn refresh(&mut self) -> Result<u64> {
        match self {
            Self::Raw(r) => r.refresh(),
            Self::Packets(r) => r.refresh(),
        }
    }

    /// The next batch of packet rows, or `None` when everything readable has been returned.
    pub fn next_batch(&mut self) -> Result<Option<PacketColumns>> {
        match self {
            Self::Raw(r) => r.next_batch(),
            Self::Packets(r) => r.next_batch(),
        }
    }
}

impl LarpixReader {
    /// Like [`next_batch`](Self::next_batch), but fills `out` (cleared first) and reuses its
    /// allocations — for consumers that do not keep the batch. Returns false at the end.
    pub fn read_batch_into(&mut self, out: &mut PacketColumns) -> Result<bool> {
        match self {
            Self::Raw(r) => r.read_batch_into(out),
            Self::Packets(r) => r.read_batch_into(out),
        }
    }
}

impl Iterator for LarpixReader {
    type Item = Result<PacketColumns>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}
