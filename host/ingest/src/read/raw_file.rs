//! Reader of raw PACMAN HDF5 files (`meta`, `msgs` = VLEN of u8, `msg_headers.io_groups`), as the
//! 2x2 DAQ writes them with larpix-control's `rawhdf5format` (larpix-formats.md §1.2).
//!
//! Files may still be open for SWMR writing: the writer resizes `msgs` and `msg_headers` one
//! after the other, so the two can briefly differ in length. The reader only consumes their
//! common prefix and [`RawFileReader::refresh`] picks up the rest later.

use std::path::{Path, PathBuf};

use hdf5::types::{IntSize, TypeDescriptor, VarLenArray};
use hdf5::{Dataset, File, H5Type};
use larmon_decode::{DecodeStats, PacketColumns, PacketRow, decode_message};

use crate::error::{Hdf5Context, IngestError, Result};
use crate::hdf5_io::{f64_attr, open_readonly, string_attr};
use crate::read::ReadOptions;

/// The `msg_headers` record; HDF5 matches the member by name, whatever else the file holds.
#[derive(H5Type, Clone, Copy, Debug, Default)]
#[repr(C)]
struct MessageHeaderRecord {
    io_groups: u8,
}

/// Streams the packets decoded from the messages of a raw file.
pub struct RawFileReader {
    path: PathBuf,
    _file: File,
    msgs: Dataset,
    headers: Dataset,
    version: Option<String>,
    io_version: Option<String>,
    created: Option<f64>,
    modified: Option<f64>,
    msgs_len: u64,
    headers_len: u64,
    next_message: u64,
    messages_per_read: usize,
    batch_rows: usize,
    stats: DecodeStats,
    pending: Vec<PacketRow>,
    block: MessageBlock,
}

/// Messages read from HDF5 (one read covers many) and not yet decoded.
#[derive(Default)]
struct MessageBlock {
    first_row: u64,
    messages: Vec<VarLenArray<u8>>,
    io_groups: Vec<u8>,
    decoded: usize,
}

impl MessageBlock {
    fn remaining(&self) -> usize {
        self.messages.len() - self.decoded
    }
}

impl RawFileReader {
    /// Opens a raw file.
    pub fn open(path: &Path, options: &ReadOptions) -> Result<Self> {
        let _busy = crate::stall::busy(path, "opening the file");
        let file = open_readonly(path)?;
        Self::from_file(path, file, options)
    }

    pub(crate) fn from_file(path: &Path, file: File, options: &ReadOptions) -> Result<Self> {
        let layout_error =
            |dataset: &str, reason: String| IngestError::layout(path, dataset, reason);
        let open_dataset = |name: &str| {
            file.dataset(name).map_err(|_| IngestError::NotLarpix {
                path: path.into(),
                reason: format!("raw file without a `{name}` dataset"),
            })
        };
        let msgs = open_dataset("msgs")?;
        let headers = open_dataset("msg_headers")?;
        for (name, ds) in [("msgs", &msgs), ("msg_headers", &headers)] {
            if ds.ndim() != 1 {
                return Err(layout_error(name, format!("{} dimensions, expected 1", ds.ndim())));
            }
        }
        let msgs_type = msgs
            .dtype()
            .and_then(|t| t.to_descriptor())
            .context(path, || "type of `msgs`".into())?;
        match &msgs_type {
            TypeDescriptor::VarLenArray(inner)
                if matches!(**inner, TypeDescriptor::Unsigned(IntSize::U1)) => {}
            other => {
                return Err(layout_error(
                    "msgs",
                    format!("type {other}; expected a variable-length sequence of uint8"),
                ));
            }
        }
        let header_type = headers
            .dtype()
            .and_then(|t| t.to_descriptor())
            .context(path, || "type of `msg_headers`".into())?;
        let has_io_groups = matches!(&header_type, TypeDescriptor::Compound(c)
            if c.fields.iter().any(|f| f.name == "io_groups" && matches!(f.ty, TypeDescriptor::Unsigned(_) | TypeDescriptor::Integer(_))));
        if !has_io_groups {
            return Err(layout_error(
                "msg_headers",
                format!("type {header_type}; expected a compound with an integer `io_groups`"),
            ));
        }
        let (version, io_version, created, modified) = match file.group("meta") {
            Ok(m) => (
                string_attr(&m, "version"),
                string_attr(&m, "io_version"),
                f64_attr(&m, "created"),
                f64_attr(&m, "modified"),
            ),
            Err(_) => (None, None, None, None),
        };
        let msgs_len = msgs.size() as u64;
        let headers_len = headers.size() as u64;
        Ok(Self {
            path: path.to_path_buf(),
            _file: file,
            msgs,
            headers,
            version,
            io_version,
            created,
            modified,
            msgs_len,
            headers_len,
            next_message: 0,
            messages_per_read: options.messages_per_read.max(1),
            batch_rows: options.batch_rows.max(1),
            stats: DecodeStats::default(),
            pending: Vec::new(),
            block: MessageBlock::default(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// `meta.version` and `meta.io_version`.
    pub fn versions(&self) -> (Option<&str>, Option<&str>) {
        (self.version.as_deref(), self.io_version.as_deref())
    }
    /// `meta.created` and `meta.modified` (Unix s).
    pub fn header_times(&self) -> (Option<f64>, Option<f64>) {
        (self.created, self.modified)
    }
    /// Messages readable now: the common length of `msgs` and `msg_headers`.
    pub fn messages(&self) -> u64 {
        self.msgs_len.min(self.headers_len)
    }
    /// Lengths of `msgs` and `msg_headers` (they differ while a writer is between two resizes).
    pub fn dataset_lengths(&self) -> (u64, u64) {
        (self.msgs_len, self.headers_len)
    }
    /// Messages already decoded.
    pub fn messages_read(&self) -> u64 {
        self.next_message
    }
    /// Counts of words seen and skipped so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }
    /// Continues from message `message` (e.g. after a restart).
    pub fn seek(&mut self, message: u64) {
        self.next_message = message.min(self.messages());
        self.pending.clear();
        self.block = MessageBlock::default();
    }

    /// Re-reads the dataset lengths of a file still being written; returns the readable messages.
    pub fn refresh(&mut self) -> Result<u64> {
        let _busy = crate::stall::busy(&self.path, "refreshing the raw datasets");
        for ds in [&self.msgs, &self.headers] {
            ds.refresh().context(&self.path, || "refreshing the raw datasets".into())?;
        }
        self.msgs_len = self.msgs.size() as u64;
        self.headers_len = self.headers.size() as u64;
        Ok(self.messages())
    }

    /// Decodes messages until a batch of at least `batch_rows` rows is ready (whole messages only,
    /// so it exceeds `batch_rows` by less than one message), or returns what is left; `None` once
    /// every readable message has been returned.
    pub fn next_batch(&mut self) -> Result<Option<PacketColumns>> {
        let mut columns = PacketColumns::default();
        Ok(self.read_batch_into(&mut columns)?.then_some(columns))
    }

    /// Like [`next_batch`](Self::next_batch), but fills `out` (cleared first) and reuses its
    /// allocations; returns false at the end.
    pub fn read_batch_into(&mut self, out: &mut PacketColumns) -> Result<bool> {
        out.clear();
        self.decode_batch()?;
        out.extend_from_rows(&self.pending);
        self.pending.clear();
        Ok(!out.is_empty())
    }

    /// The same rows as [`read_batch_into`](Self::read_batch_into), row by row, as the decoder
    /// produces them: for row-oriented consumers (conversion to a packet file) that gain nothing
    /// from columns. `out` is cleared first; returns false at the end.
    pub fn read_rows_into(&mut self, out: &mut Vec<PacketRow>) -> Result<bool> {
        out.clear();
        std::mem::swap(out, &mut self.pending);
        let done = self.decode_batch();
        std::mem::swap(out, &mut self.pending);
        done?;
        Ok(!out.is_empty())
    }

    /// Decodes whole messages into `pending` until it holds at least `batch_rows` rows.
    fn decode_batch(&mut self) -> Result<()> {
        let path = self.path.clone();
        let _busy = crate::stall::busy(&path, "reading msgs");
        while self.pending.len() < self.batch_rows {
            if self.block.remaining() == 0 && !self.read_block()? {
                break;
            }
            self.decode_next_message()?;
        }
        Ok(())
    }

    /// Reads the next `messages_per_read` messages from HDF5; false when none are readable.
    fn read_block(&mut self) -> Result<bool> {
        let start = self.next_message;
        let end = (start + self.messages_per_read as u64).min(self.messages());
        if start >= end {
            return Ok(false);
        }
        let read_error = |dataset: &str, source| IngestError::Read {
            path: self.path.clone(),
            dataset: dataset.into(),
            start,
            end,
            source: hdf5::Error::into(source),
        };
        let range = start as usize..end as usize;
        let messages = self
            .msgs
            .as_reader()
            .read_slice_1d::<VarLenArray<u8>, _>(range.clone())
            .map_err(|e| read_error("msgs", e))?;
        let headers = self
            .headers
            .as_reader()
            .read_slice_1d::<MessageHeaderRecord, _>(range)
            .map_err(|e| read_error("msg_headers", e))?;
        self.block = MessageBlock {
            first_row: start,
            messages: messages.into_raw_vec_and_offset().0,
            io_groups: headers.iter().map(|h| h.io_groups).collect(),
            decoded: 0,
        };
        Ok(true)
    }

    fn decode_next_message(&mut self) -> Result<()> {
        let i = self.block.decoded;
        let row = self.block.first_row + i as u64;
        let (msg, io_group) = (&self.block.messages[i], self.block.io_groups[i]);
        decode_message(msg.as_slice(), io_group, row, &mut self.pending, &mut self.stats)
            .map_err(|source| IngestError::Message { path: self.path.clone(), row, source })?;
        self.block.decoded += 1;
        self.next_message = row + 1;
        Ok(())
    }
}
