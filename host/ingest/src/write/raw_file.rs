//! Writer of raw PACMAN HDF5 files in larpix-control's `rawhdf5format` 0.0 layout: `meta` attrs,
//! `msgs` (VLEN of u8, gzip 4, chunks of 1024) and `msg_headers.io_groups`, appended the way the
//! DAQ does it (`msgs` grown first, then `msg_headers`). Used by tests and the simulator; in
//! live mode the file is written like the DAQ writes it (latest format, SWMR, flushed after
//! every append) so that readers can follow it while it grows.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenArray;
use hdf5::{Dataset, File, H5Type};

use crate::error::{Hdf5Context, IngestError, Result};
use crate::hdf5_io::{create_strong_close, write_f64_attr, write_string_attr};

#[derive(H5Type, Clone, Copy, Debug, Default)]
#[repr(C)]
struct MessageHeaderRecord {
    io_groups: u8,
}

/// Appends PACMAN messages to a new raw file.
pub struct RawFileWriter {
    path: PathBuf,
    file: File,
    msgs: Dataset,
    headers: Dataset,
    messages: usize,
    live: bool,
}

impl RawFileWriter {
    /// Creates `path` (replacing it if `overwrite`), with `meta.created` = `created` (Unix s).
    pub fn create(path: &Path, created: f64, overwrite: bool) -> Result<Self> {
        Self::create_with(path, created, overwrite, false)
    }

    /// Like [`create`](Self::create), but written the way the DAQ writes a file during a run:
    /// latest file format, single-writer/multiple-reader mode once the datasets exist, and
    /// every append flushed, so `larmon watch` (or any SWMR reader) sees whole messages only.
    pub fn create_live(path: &Path, created: f64, overwrite: bool) -> Result<Self> {
        Self::create_with(path, created, overwrite, true)
    }

    fn create_with(path: &Path, created: f64, overwrite: bool, live: bool) -> Result<Self> {
        if path.exists() && !overwrite {
            return Err(IngestError::OutputExists { path: path.into() });
        }
        let open_error = |source: hdf5::Error| IngestError::Open {
            path: path.to_path_buf(),
            source: source.into(),
        };
        let file = if live {
            File::with_options()
                .with_fapl(|p| p.libver_latest().fclose_degree(hdf5::file::FileCloseDegree::Strong))
                .create(path)
                .map_err(open_error)?
        } else {
            create_strong_close(path).map_err(open_error)?
        };
        let meta = file.create_group("meta").context(path, || "creating `meta`".into())?;
        for (name, value) in [("version", "0.0"), ("io_version", "0.0")] {
            write_string_attr(&meta, name, value).context(path, || "meta".into())?;
        }
        for name in ["created", "modified"] {
            write_f64_attr(&meta, name, created).context(path, || "meta".into())?;
        }
        let msgs = file
            .new_dataset_builder()
            .chunk(1024)
            .deflate(4)
            .empty::<VarLenArray<u8>>()
            .shape(0..)
            .create("msgs")
            .context(path, || "creating `msgs`".into())?;
        let headers = file
            .new_dataset_builder()
            .chunk(1024)
            .deflate(4)
            .empty::<MessageHeaderRecord>()
            .shape(0..)
            .create("msg_headers")
            .context(path, || "creating `msg_headers`".into())?;
        if live {
            hdf5::sync::sync(|| unsafe {
                // SAFETY: a valid open file id; HDF5 calls are serialised by `sync`.
                hdf5::h5check(hdf5_sys::h5f::H5Fstart_swmr_write(file.id()))
            })
            .context(path, || "starting SWMR writing".into())?;
        }
        Ok(Self { path: path.to_path_buf(), file, msgs, headers, messages: 0, live })
    }

    /// Messages written so far.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// Appends messages, each with the io_group it was read from.
    pub fn append<'a>(&mut self, messages: impl IntoIterator<Item = (u8, &'a [u8])>) -> Result<()> {
        let (groups, msgs): (Vec<_>, Vec<_>) = messages
            .into_iter()
            .map(|(g, m)| (MessageHeaderRecord { io_groups: g }, VarLenArray::from_slice(m)))
            .unzip();
        if msgs.is_empty() {
            return Ok(());
        }
        let (start, end) = (self.messages, self.messages + msgs.len());
        let p = self.path.as_path();
        self.msgs.resize(end).context(p, || "growing `msgs`".into())?;
        self.msgs.write_slice(&msgs, start..end).context(p, || "writing `msgs`".into())?;
        self.headers.resize(end).context(p, || "growing `msg_headers`".into())?;
        self.headers
            .write_slice(&groups, start..end)
            .context(p, || "writing `msg_headers`".into())?;
        self.messages = end;
        if self.live {
            // The whole file, not only the datasets: the messages (variable-length) live in
            // the global heap, which a dataset flush leaves in memory.
            self.file.flush().context(p, || "flushing".into())?;
        }
        Ok(())
    }

    /// Sets `meta.modified` and closes the file (a live file is closed first and reopened for
    /// the attribute: SWMR writing allows no attribute changes).
    pub fn finish(self, modified: f64) -> Result<()> {
        let p = self.path.clone();
        if self.live {
            let Self { file, msgs, headers, .. } = self;
            drop((msgs, headers));
            file.close().context(&p, || "closing".into())?;
            let file =
                File::open_rw(&p).context(&p, || "reopening to set `meta.modified`".into())?;
            let meta = file.group("meta").context(&p, || "opening `meta`".into())?;
            write_f64_attr(&meta, "modified", modified).context(&p, || "meta".into())?;
            drop(meta);
            return file.close().context(&p, || "closing".into());
        }
        let meta = self.file.group("meta").context(&p, || "opening `meta`".into())?;
        write_f64_attr(&meta, "modified", modified).context(&p, || "meta".into())?;
        drop(meta);
        self.file.flush().context(&p, || "flushing".into())?;
        self.file.close().context(&p, || "closing".into())
    }
}
