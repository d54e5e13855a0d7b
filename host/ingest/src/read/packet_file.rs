//! Reader of LArPix+HDF5 packet files (`packets` compound, every 2.x layout).
//!
//! Columns are bound by compound member *name* and converted from the member's stored integer
//! type, because the version string does not fix the byte layout: 2.x files exist with 20, 21 and
//! 22 members, 31/35/36-byte records, `first_packet` at index 9 or last and `shared_fifo_events`
//! stored as u1 or u2 (larpix-formats.md §1.1.2). Rows are read in bounded blocks, so memory
//! stays flat whatever the file size.

use std::path::{Path, PathBuf};

use hdf5::types::{IntSize, TypeDescriptor};
use hdf5::{Dataset, Datatype, File};
use larmon_decode::{CANONICAL_RECORD_SIZE, ColumnInt, ColumnMut, PACKET_COLUMNS, PacketColumns};

use crate::error::{Hdf5Context, IngestError, Result};
use crate::hdf5_io::{f64_attr, memory_type_like, open_readonly, read_rows_raw, string_attr};
use crate::read::ReadOptions;
use crate::read::read_ahead::{Block, ReadAhead};

/// How one compound member is stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoredMember {
    /// Member name.
    pub name: String,
    /// Byte offset in the record.
    pub offset: usize,
    /// Type as numpy would print it (`u1`, `<u8`, `S64`, ...).
    pub dtype: String,
}

/// The record layout of a `packets` dataset and how larmon binds it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PacketLayout {
    /// Bytes per record in the file.
    pub record_size: usize,
    /// Every member, in file order.
    pub members: Vec<StoredMember>,
    /// Canonical columns absent from the file (read as 0).
    pub missing: Vec<&'static str>,
    /// File members larmon does not use.
    pub ignored: Vec<String>,
    /// True for the canonical 2.4 layout (read through a fixed-offset fast path).
    pub canonical: bool,
    #[serde(skip)]
    bound: Vec<BoundColumn>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BoundColumn {
    column: &'static str,
    offset: usize,
    bytes: usize,
    signed: bool,
}

fn int_bytes(size: IntSize) -> usize {
    match size {
        IntSize::U1 => 1,
        IntSize::U2 => 2,
        IntSize::U4 => 4,
        IntSize::U8 => 8,
    }
}

fn numpy_name(ty: &TypeDescriptor) -> String {
    match ty {
        TypeDescriptor::Unsigned(s) if int_bytes(*s) == 1 => "u1".into(),
        TypeDescriptor::Unsigned(s) => format!("<u{}", int_bytes(*s)),
        TypeDescriptor::Integer(s) if int_bytes(*s) == 1 => "i1".into(),
        TypeDescriptor::Integer(s) => format!("<i{}", int_bytes(*s)),
        TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) => format!("S{n}"),
        other => other.to_string(),
    }
}

impl PacketLayout {
    /// Binds the members of a `packets` compound type to larmon's canonical columns.
    pub fn bind(desc: &TypeDescriptor) -> Result<Self, String> {
        let TypeDescriptor::Compound(compound) = desc else {
            return Err(format!("expected a compound type, found {desc}"));
        };
        let mut layout = PacketLayout {
            record_size: compound.size,
            members: Vec::new(),
            missing: Vec::new(),
            ignored: Vec::new(),
            canonical: false,
            bound: Vec::new(),
        };
        for field in &compound.fields {
            layout.members.push(StoredMember {
                name: field.name.clone(),
                offset: field.offset,
                dtype: numpy_name(&field.ty),
            });
            let Some(spec) = PACKET_COLUMNS.iter().find(|c| c.name == field.name) else {
                layout.ignored.push(field.name.clone());
                continue;
            };
            let (bytes, signed) = match field.ty {
                TypeDescriptor::Unsigned(s) => (int_bytes(s), false),
                TypeDescriptor::Integer(s) => (int_bytes(s), true),
                TypeDescriptor::Boolean => (1, false),
                ref other => {
                    return Err(format!(
                        "member `{}` has type {other}; an integer was expected",
                        field.name
                    ));
                }
            };
            if field.offset + bytes > compound.size {
                return Err(format!("member `{}` lies outside the record", field.name));
            }
            layout.bound.push(BoundColumn {
                column: spec.name,
                offset: field.offset,
                bytes,
                signed,
            });
        }
        layout.missing = PACKET_COLUMNS
            .iter()
            .map(|c| c.name)
            .filter(|name| !layout.bound.iter().any(|b| b.column == *name))
            .collect();
        let mut canonical_offset = 0;
        layout.canonical = compound.size == CANONICAL_RECORD_SIZE
            && layout.bound.len() == PACKET_COLUMNS.len()
            && PACKET_COLUMNS.iter().zip(&layout.bound).all(|(spec, b)| {
                let same = b.column == spec.name
                    && b.offset == canonical_offset
                    && b.bytes == spec.width.bytes()
                    && !b.signed;
                canonical_offset += spec.width.bytes();
                same
            });
        for required in ["packet_type", "timestamp"] {
            if layout.missing.contains(&required) {
                return Err(format!("no `{required}` member: not a LArPix v2 packet table"));
            }
        }
        Ok(layout)
    }

    /// Decodes `rows` packed records into `out`, replacing its content.
    pub fn decode_records(&self, records: &[u8], out: &mut PacketColumns) {
        if self.canonical && cfg!(target_endian = "little") {
            out.decode_canonical(records.as_chunks::<CANONICAL_RECORD_SIZE>().0);
            return;
        }
        let rows = records.len() / self.record_size.max(1);
        out.clear();
        for bound in &self.bound {
            let Some(column) = out.column_mut(bound.column) else {
                continue;
            };
            match column {
                ColumnMut::U8(v) => extract(records, self.record_size, *bound, rows, v),
                ColumnMut::U16(v) => extract(records, self.record_size, *bound, rows, v),
                ColumnMut::U32(v) => extract(records, self.record_size, *bound, rows, v),
                ColumnMut::U64(v) => extract(records, self.record_size, *bound, rows, v),
            }
        }
        out.resize_file_columns(rows);
    }
}

/// Copies one member out of packed records, widening or truncating to the column's type.
fn extract<D: ColumnInt>(
    records: &[u8],
    record_size: usize,
    bound: BoundColumn,
    rows: usize,
    dst: &mut Vec<D>,
) {
    dst.clear();
    dst.reserve(rows);
    let off = bound.offset;
    let records = records.chunks_exact(record_size);
    macro_rules! copy {
        ($n:literal, $u:ty, $i:ty) => {
            if bound.signed {
                dst.extend(records.map(|r| {
                    let v = <$i>::from_ne_bytes(r[off..off + $n].try_into().unwrap());
                    D::from_u64_truncating(v as i64 as u64)
                }))
            } else {
                dst.extend(records.map(|r| {
                    let v = <$u>::from_ne_bytes(r[off..off + $n].try_into().unwrap());
                    D::from_u64_truncating(v as u64)
                }))
            }
        };
    }
    match bound.bytes {
        1 => copy!(1, u8, i8),
        2 => copy!(2, u16, i16),
        4 => copy!(4, u32, i32),
        _ => copy!(8, u64, i64),
    }
}

/// Streams the `packets` table of a packet file as column batches.
pub struct PacketFileReader {
    path: PathBuf,
    _file: File,
    dataset: Dataset,
    memory_type: Datatype,
    layout: PacketLayout,
    version: Option<String>,
    created: Option<f64>,
    modified: Option<f64>,
    rows: u64,
    next_row: u64,
    batch_rows: usize,
    records: Vec<u8>,
    last_unix_time: Option<u64>,
    use_read_ahead: bool,
    read_ahead: Option<ReadAhead>,
}

impl PacketFileReader {
    /// Opens a packet file.
    pub fn open(path: &Path, options: &ReadOptions) -> Result<Self> {
        let _busy = crate::stall::busy(path, "opening the file");
        let file = open_readonly(path)?;
        Self::from_file(path, file, options)
    }

    pub(crate) fn from_file(path: &Path, file: File, options: &ReadOptions) -> Result<Self> {
        let layout_error =
            |dataset: &str, reason: String| IngestError::layout(path, dataset, reason);
        let (version, created, modified) = match file.group("_header") {
            Ok(h) => {
                (string_attr(&h, "version"), f64_attr(&h, "created"), f64_attr(&h, "modified"))
            }
            Err(_) => (None, None, None),
        };
        if let Some(v) = &version {
            if v.starts_with("0.") || v.starts_with("1.") {
                return Err(layout_error(
                    "packets",
                    format!(
                        "format version {v} holds LArPix v1 packets, which larmon does not read"
                    ),
                ));
            }
        }
        let dataset = file.dataset("packets").map_err(|_| IngestError::NotLarpix {
            path: path.into(),
            reason: "no `packets` dataset".into(),
        })?;
        if dataset.ndim() != 1 {
            return Err(layout_error(
                "packets",
                format!("{} dimensions, expected 1", dataset.ndim()),
            ));
        }
        let desc = dataset
            .dtype()
            .and_then(|t| t.to_descriptor())
            .context(path, || "reading the type of `packets`".into())?;
        let layout = PacketLayout::bind(&desc).map_err(|r| layout_error("packets", r))?;
        let memory_type = memory_type_like(&desc)
            .context(path, || "building the memory type of `packets`".into())?;
        let rows = dataset.size() as u64;
        // Whole chunks are read straight into our buffer; a block that cuts a chunk goes through
        // HDF5's chunk cache and costs a copy. Round the block up to whole chunks.
        let chunk = dataset.chunk().and_then(|c| c.first().copied()).unwrap_or(1).max(1);
        let batch_rows = options.batch_rows.max(1).div_ceil(chunk) * chunk;
        Ok(Self {
            path: path.to_path_buf(),
            _file: file,
            dataset,
            memory_type,
            layout,
            version,
            created,
            modified,
            rows,
            next_row: 0,
            batch_rows,
            records: Vec::new(),
            last_unix_time: None,
            use_read_ahead: options.read_ahead,
            read_ahead: None,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// `_header.version`, if the file has one.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
    /// `_header.created` and `_header.modified` (Unix s).
    pub fn header_times(&self) -> (Option<f64>, Option<f64>) {
        (self.created, self.modified)
    }
    /// How the records are laid out and bound.
    pub fn layout(&self) -> &PacketLayout {
        &self.layout
    }
    /// Rows in the table (as of opening or the last [`refresh`](Self::refresh)).
    pub fn rows(&self) -> u64 {
        self.rows
    }
    /// Rows already returned.
    pub fn rows_read(&self) -> u64 {
        self.next_row
    }
    /// Continues from row `row` (e.g. after a restart); the Unix time of the rows before it is
    /// unknown until the next type-4 row.
    pub fn seek(&mut self, row: u64) {
        self.read_ahead = None;
        self.next_row = row.min(self.rows);
        self.last_unix_time = None;
    }

    /// Re-reads the table length of a file still being written; returns the new row count.
    pub fn refresh(&mut self) -> Result<u64> {
        let _busy = crate::stall::busy(&self.path, "refreshing `packets`");
        self.dataset.refresh().context(&self.path, || "refreshing `packets`".into())?;
        self.rows = self.dataset.size() as u64;
        Ok(self.rows)
    }

    /// Reads the next batch of rows, or `None` at the end of the table.
    pub fn next_batch(&mut self) -> Result<Option<PacketColumns>> {
        let mut columns = PacketColumns::default();
        Ok(self.read_batch_into(&mut columns)?.then_some(columns))
    }

    /// Like [`next_batch`](Self::next_batch), but fills `out` (cleared first) and reuses its
    /// allocations; returns false at the end.
    pub fn read_batch_into(&mut self, out: &mut PacketColumns) -> Result<bool> {
        out.clear();
        if self.next_row >= self.rows {
            return Ok(false);
        }
        let path = self.path.clone();
        let _busy = crate::stall::busy(&path, "reading `packets`");
        let block_rows = self.batch_rows as u64;
        let block = if self.use_read_ahead && self.rows - self.next_row > block_rows {
            self.next_block_read_ahead(block_rows)?
        } else {
            self.read_ahead = None;
            let start = self.next_row;
            let end = (start + block_rows).min(self.rows);
            let mut bytes = std::mem::take(&mut self.records);
            read_rows_raw(
                &self.dataset,
                &self.memory_type,
                start as usize,
                end as usize,
                &mut bytes,
            )
            .map_err(|source| IngestError::Read {
                path: self.path.clone(),
                dataset: "packets".into(),
                start,
                end,
                source: source.into(),
            })?;
            Block { start, end, bytes }
        };
        debug_assert_eq!(block.start, self.next_row);
        self.layout.decode_records(&block.bytes, out);
        out.fill_unix_time(&mut self.last_unix_time);
        self.next_row = block.end;
        match &self.read_ahead {
            Some(read_ahead) => read_ahead.recycle(block.bytes),
            None => self.records = block.bytes,
        }
        Ok(true)
    }

    /// The next block from the read-ahead thread, (re)starting it when needed — at the first
    /// read and after the file grew past the range it was started for.
    fn next_block_read_ahead(&mut self, block_rows: u64) -> Result<Block> {
        for _ in 0..2 {
            if self.read_ahead.is_none() {
                self.read_ahead = Some(ReadAhead::start(
                    self.path.clone(),
                    self.dataset.clone(),
                    self.memory_type.clone(),
                    self.next_row,
                    self.rows,
                    block_rows,
                ));
            }
            match self.read_ahead.as_mut().and_then(ReadAhead::next) {
                Some(block) => return block,
                None => self.read_ahead = None, // range exhausted: restart from next_row
            }
        }
        unreachable!("a freshly started read-ahead over a non-empty range yields a block")
    }
}
