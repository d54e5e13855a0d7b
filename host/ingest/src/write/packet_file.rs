//! Writer of canonical LArPix+HDF5 2.4 packet files: `_header` (version, created, modified),
//! `packets` as the packed 22-member 36-byte compound, empty `messages` and `configs` — the layout
//! larpix-control 3.5–3.7 writes, readable by h5py, larpix-control and HDF5 1.10.
//!
//! Output goes to a hidden temporary file beside the target and is renamed into place by
//! [`PacketFileWriter::finish`]; an interrupted conversion never leaves a partial file under the
//! final name.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use hdf5::dataset::FillTime;
use hdf5::types::{CompoundField, CompoundType, IntSize, TypeDescriptor};
use hdf5::{Dataset, Datatype, File};
use larmon_decode::{CANONICAL_RECORD_SIZE, IntWidth, PACKET_COLUMNS, PacketColumns, PacketRow};

use crate::error::{Hdf5Context, IngestError, Result};
use crate::hdf5_io::{
    create_strong_close, write_chunk_direct, write_f64_attr, write_rows_raw, write_string_attr,
};

/// The format version written.
pub const WRITTEN_VERSION: &str = "2.4";

/// The `packet_types` attribute: a human-readable table of every type larmon writes.
const PACKET_TYPES_ATTR: &str = "\n0: 'data',\n1: 'test',\n2: 'config write',\n3: 'config read',\n\
                                 4: 'timestamp',\n5: 'message',\n6: 'sync',\n7: 'trigger',\n";

/// Options of [`PacketFileWriter::create`].
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Replace an existing file.
    pub overwrite: bool,
    /// gzip level (1–9) for `packets`; `None` writes it uncompressed like larpix-control.
    pub gzip: Option<u8>,
    /// Rows per HDF5 chunk of `packets`.
    pub chunk_rows: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self { overwrite: false, gzip: None, chunk_rows: 32_768 }
    }
}

fn unsigned(width: IntWidth) -> TypeDescriptor {
    TypeDescriptor::Unsigned(match width {
        IntWidth::U8 => IntSize::U1,
        IntWidth::U16 => IntSize::U2,
        IntWidth::U32 => IntSize::U4,
        IntWidth::U64 => IntSize::U8,
    })
}

fn compound(members: &[(&str, TypeDescriptor)]) -> TypeDescriptor {
    let mut offset = 0;
    let fields = members
        .iter()
        .enumerate()
        .map(|(index, (name, ty))| {
            let field = CompoundField { name: (*name).into(), ty: ty.clone(), offset, index };
            offset += ty.size();
            field
        })
        .collect();
    TypeDescriptor::Compound(CompoundType { fields, size: offset })
}

/// The packed 36-byte `packets` record of version 2.4.
pub fn canonical_packet_type() -> TypeDescriptor {
    let members: Vec<_> = PACKET_COLUMNS.iter().map(|c| (c.name, unsigned(c.width))).collect();
    compound(&members)
}

fn now_unix() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Appends packet rows to a new canonical packet file.
pub struct PacketFileWriter {
    final_path: PathBuf,
    temp_path: PathBuf,
    file: Option<File>,
    packets: Option<Dataset>,
    memory_type: Datatype,
    chunk_rows: usize,
    compressed: bool,
    /// Rows already in the file.
    written: u64,
    /// Encoded rows not yet written: writes go out in whole chunks only, so HDF5 never has to
    /// fill or re-read a partially written chunk.
    pending: Vec<u8>,
}

impl PacketFileWriter {
    /// Creates the file (as a temporary beside `path` until [`finish`](Self::finish)).
    pub fn create(path: &Path, options: &WriteOptions) -> Result<Self> {
        if path.exists() && !options.overwrite {
            return Err(IngestError::OutputExists { path: path.into() });
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp_path = path.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        let file = create_strong_close(&temp_path)
            .map_err(|e| IngestError::Open { path: temp_path.clone(), source: e.into() })?;
        let writer = Self::init(path, temp_path.clone(), file, options);
        if writer.is_err() {
            let _ = std::fs::remove_file(&temp_path);
        }
        writer
    }

    fn init(path: &Path, temp_path: PathBuf, file: File, options: &WriteOptions) -> Result<Self> {
        let p = temp_path.as_path();
        let now = now_unix();
        let header = file.create_group("_header").context(p, || "creating `_header`".into())?;
        write_string_attr(&header, "version", WRITTEN_VERSION).context(p, || "header".into())?;
        write_f64_attr(&header, "created", now).context(p, || "header".into())?;
        write_f64_attr(&header, "modified", now).context(p, || "header".into())?;

        let packet_type = canonical_packet_type();
        let mut builder = file.new_dataset_builder();
        builder = builder.packed(true).chunk(options.chunk_rows.max(1)).fill_time(FillTime::Never);
        if let Some(level) = options.gzip {
            builder = builder.deflate(level.clamp(1, 9));
        }
        let packets = builder
            .empty_as(&packet_type)
            .shape(0..)
            .create("packets")
            .context(p, || "creating `packets`".into())?;
        write_string_attr(&packets, "packet_types", PACKET_TYPES_ATTR)
            .context(p, || "writing `packets.packet_types`".into())?;

        let messages = compound(&[
            ("message", TypeDescriptor::FixedAscii(64)),
            ("timestamp", TypeDescriptor::Unsigned(IntSize::U8)),
            ("index", TypeDescriptor::Unsigned(IntSize::U4)),
        ]);
        file.new_dataset_builder()
            .packed(true)
            .chunk(128)
            .empty_as(&messages)
            .shape(0..)
            .create("messages")
            .context(p, || "creating `messages`".into())?;
        let configs = compound(&[
            ("timestamp", TypeDescriptor::Unsigned(IntSize::U8)),
            ("io_group", TypeDescriptor::Unsigned(IntSize::U1)),
            ("io_channel", TypeDescriptor::Unsigned(IntSize::U1)),
            ("chip_id", TypeDescriptor::Unsigned(IntSize::U1)),
            (
                "registers",
                TypeDescriptor::FixedArray(Box::new(TypeDescriptor::Unsigned(IntSize::U1)), 239),
            ),
        ]);
        file.new_dataset_builder()
            .packed(true)
            .chunk(64)
            .empty_as(&configs)
            .shape(0..)
            .create("configs")
            .context(p, || "creating `configs`".into())?;

        let memory_type =
            Datatype::from_descriptor(&packet_type).context(p, || "packet memory type".into())?;
        debug_assert_eq!(memory_type.size(), CANONICAL_RECORD_SIZE);
        Ok(Self {
            final_path: path.to_path_buf(),
            temp_path,
            file: Some(file),
            packets: Some(packets),
            memory_type,
            chunk_rows: options.chunk_rows.max(1),
            compressed: options.gzip.is_some(),
            written: 0,
            pending: Vec::new(),
        })
    }

    /// Rows appended so far.
    pub fn rows(&self) -> u64 {
        self.written + (self.pending.len() / CANONICAL_RECORD_SIZE) as u64
    }

    /// Appends a batch of rows given as columns.
    pub fn append(&mut self, columns: &PacketColumns) -> Result<()> {
        columns.encode_canonical(&mut self.pending);
        self.write_whole_chunks()
    }

    /// Appends rows given row by row (the raw decoder's output).
    pub fn append_rows(&mut self, rows: &[PacketRow]) -> Result<()> {
        self.pending.reserve(rows.len() * CANONICAL_RECORD_SIZE);
        for row in rows {
            self.pending.extend_from_slice(&row.to_canonical_bytes());
        }
        self.write_whole_chunks()
    }

    fn write_whole_chunks(&mut self) -> Result<()> {
        let chunk_bytes = self.chunk_rows * CANONICAL_RECORD_SIZE;
        let whole = self.pending.len() / chunk_bytes * chunk_bytes;
        if whole == 0 {
            return Ok(());
        }
        let start = self.written as usize;
        let rows = whole / CANONICAL_RECORD_SIZE;
        let p = self.temp_path.as_path();
        let packets = self.packets.as_ref().expect("open until finish");
        packets.resize(start + rows).context(p, || "growing `packets`".into())?;
        if self.compressed {
            write_rows_raw(packets, &self.memory_type, start, &self.pending[..whole])
        } else {
            // Whole unfiltered chunks go straight to the file, bypassing the chunk cache.
            self.pending[..whole].chunks_exact(chunk_bytes).enumerate().try_for_each(
                |(k, chunk)| write_chunk_direct(packets, start + k * self.chunk_rows, chunk),
            )
        }
        .context(p, || format!("writing `packets` rows {start}..{}", start + rows))?;
        self.pending.drain(..whole);
        self.written += rows as u64;
        Ok(())
    }

    /// Writes the last, partial chunk.
    fn write_remainder(&mut self) -> Result<()> {
        let start = self.written as usize;
        let rows = self.pending.len() / CANONICAL_RECORD_SIZE;
        if rows == 0 {
            return Ok(());
        }
        let p = self.temp_path.as_path();
        let packets = self.packets.as_ref().expect("open until finish");
        packets.resize(start + rows).context(p, || "growing `packets`".into())?;
        write_rows_raw(packets, &self.memory_type, start, &self.pending)
            .context(p, || format!("writing `packets` rows {start}..{}", start + rows))?;
        self.pending.clear();
        self.written += rows as u64;
        Ok(())
    }

    /// Sets `_header.modified`, closes the file and moves it to its final name.
    pub fn finish(mut self) -> Result<PathBuf> {
        self.write_remainder()?;
        let p = self.temp_path.clone();
        let file = self.file.take().expect("finish is called once");
        let header = file.group("_header").context(&p, || "opening `_header`".into())?;
        write_f64_attr(&header, "modified", now_unix()).context(&p, || "header".into())?;
        drop(header);
        file.flush().context(&p, || "flushing".into())?;
        // Closing the file invalidates the handles still held (the `packets` dataset).
        file.close().context(&p, || "closing".into())?;
        std::fs::rename(&p, &self.final_path)
            .map_err(|source| IngestError::Io { path: self.final_path.clone(), source })?;
        Ok(self.final_path.clone())
    }
}

impl Drop for PacketFileWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            // Not finished: never leave the partial file behind.
            self.packets = None;
            self.file = None;
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}
