//! Reader of ndlar_flow light files (`/light/events/data` + `/light/wvfm/data`, the MPD
//! generator's layout; fixtures README): fields bound by name, read in blocks of events so
//! memory stays flat in file size. The records are read in the file's own layout converted to
//! native (HDF5's multi-dimensional array members have no Rust type to bind to).

use std::ffi::CString;
use std::path::{Path, PathBuf};

use hdf5::{Dataset, Dataspace, File};
use hdf5_sys::h5d::H5Dread;
use hdf5_sys::h5i::hid_t;
use hdf5_sys::h5p::H5P_DEFAULT;
use hdf5_sys::h5t::{
    H5T_direction_t, H5Tclose, H5Tget_member_index, H5Tget_member_offset, H5Tget_member_type,
    H5Tget_native_type, H5Tget_size,
};

use crate::error::{Hdf5Context, IngestError, Result};
use crate::hdf5_io::open_readonly;

/// A native compound type of a dataset and where its members are.
struct NativeType {
    id: hid_t,
    size: usize,
}

impl Drop for NativeType {
    fn drop(&mut self) {
        // SAFETY: `id` was returned by H5Tget_native_type, is owned by this value and closed once.
        hdf5::sync::sync(|| unsafe { H5Tclose(self.id) });
    }
}

impl NativeType {
    fn of(dataset: &Dataset, path: &Path, name: &str) -> Result<Self> {
        let file_type = dataset.dtype().context(path, || format!("type of `{name}`"))?;
        // SAFETY: a valid datatype id; the returned id is owned and closed on drop.
        let id = hdf5::sync::sync(|| unsafe {
            H5Tget_native_type(file_type.id(), H5T_direction_t::H5T_DIR_ASCEND)
        });
        if id < 0 {
            return Err(layout(path, name, "its record type has no native equivalent".into()));
        }
        // SAFETY: `id` is a valid (checked above) datatype id owned by us.
        let size = hdf5::sync::sync(|| unsafe { H5Tget_size(id) });
        Ok(Self { id, size })
    }

    /// Byte offset and size of member `name`.
    fn member(&self, path: &Path, dataset: &str, name: &str) -> Result<(usize, usize)> {
        let c_name = CString::new(name).expect("no NUL in member names");
        // SAFETY: a valid compound type id and a NUL-terminated name that outlives the call.
        let index = hdf5::sync::sync(|| unsafe { H5Tget_member_index(self.id, c_name.as_ptr()) });
        if index < 0 {
            return Err(layout(path, dataset, format!("no member `{name}`")));
        }
        // SAFETY: `index` is a member of the compound type (checked above); the member's type id
        // is closed before leaving the block.
        let (offset, size) = hdf5::sync::sync(|| unsafe {
            let offset = H5Tget_member_offset(self.id, index as u32);
            let member = H5Tget_member_type(self.id, index as u32);
            let size = H5Tget_size(member);
            H5Tclose(member);
            (offset, size)
        });
        Ok((offset, size))
    }

    /// Reads rows `start..end` into `buf` as native records.
    fn read(
        &self,
        dataset: &Dataset,
        start: usize,
        end: usize,
        buf: &mut Vec<u8>,
    ) -> hdf5::Result<()> {
        let rows = end - start;
        buf.clear();
        buf.resize(rows * self.size, 0);
        if rows == 0 {
            return Ok(());
        }
        let file_space = dataset.space()?.select(start..end)?;
        let memory_space = Dataspace::try_new(rows)?;
        hdf5::sync::sync(|| unsafe {
            // SAFETY: `buf` holds `rows` records of this type; both spaces select `rows` elements.
            hdf5::h5check(H5Dread(
                dataset.id(),
                self.id,
                memory_space.id(),
                file_space.id(),
                H5P_DEFAULT,
                buf.as_mut_ptr().cast(),
            ))
        })?;
        Ok(())
    }
}

fn layout(path: &Path, dataset: &str, reason: String) -> IngestError {
    IngestError::Layout { path: path.into(), dataset: dataset.into(), reason }
}

/// One event of a flow light file.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowEvent {
    /// Event number.
    pub event: i64,
    /// Serial number per board (0 = board missing).
    pub serial: [u32; 8],
    /// Unix ms per board.
    pub unix_ms: [u64; 8],
    /// Absolute TAI ns per board (float64 arithmetic of the generator: ±128 ns).
    pub tai_ns: [u64; 8],
    /// Waveform valid per board and input.
    pub valid: [[bool; 64]; 8],
}

const EVENTS: &str = "light/events/data";
const WAVEFORMS: &str = "light/wvfm/data";

/// Streams events and their waveforms from a flow light file.
pub struct FlowReader {
    path: PathBuf,
    _file: File,
    events: Dataset,
    waveforms: Dataset,
    event_type: NativeType,
    wvfm_type: NativeType,
    fields: [(usize, usize); 5],
    samples_at: (usize, usize),
    /// Samples per waveform.
    pub samples_per_waveform: usize,
    rows: usize,
    next: usize,
    block: usize,
    event_buf: Vec<u8>,
    wvfm_buf: Vec<u8>,
    samples: Vec<i16>,
    buffered: std::ops::Range<usize>,
}

fn array<const N: usize, T: Copy + Default>(
    bytes: &[u8],
    width: usize,
    read: impl Fn(&[u8]) -> T,
) -> [T; N] {
    let mut out = [T::default(); N];
    for (i, chunk) in bytes.chunks_exact(width).take(N).enumerate() {
        out[i] = read(chunk);
    }
    out
}

impl FlowReader {
    /// Opens a flow light file.
    pub fn open(path: &Path) -> Result<Self> {
        let _busy = crate::stall::busy(path, "opening the light datasets");
        let file = open_readonly(path)?;
        let events = file.dataset(EVENTS).map_err(|_| {
            let found = file.member_names().unwrap_or_default();
            IngestError::NotLight {
                path: path.into(),
                reason: format!(
                    "no `{EVENTS}` (an ndlar_flow light file has it; an MPD file is not HDF5); found {}",
                    if found.is_empty() { "nothing".into() } else { found.join(", ") }
                ),
            }
        })?;
        let waveforms = file.dataset(WAVEFORMS).map_err(|_| IngestError::NotLight {
            path: path.into(),
            reason: format!("no `{WAVEFORMS}`"),
        })?;
        let event_type = NativeType::of(&events, path, EVENTS)?;
        let wvfm_type = NativeType::of(&waveforms, path, WAVEFORMS)?;
        let mut fields = [(0, 0); 5];
        for (k, name) in ["event", "sn", "utime_ms", "tai_ns", "wvfm_valid"].iter().enumerate() {
            fields[k] = event_type.member(path, EVENTS, name)?;
        }
        let samples_at = wvfm_type.member(path, WAVEFORMS, "samples")?;
        let expected =
            [(4, "event"), (32, "sn"), (64, "utime_ms"), (64, "tai_ns"), (512, "wvfm_valid")];
        for ((_, size), (want, name)) in fields.iter().zip(expected) {
            if *size != want {
                return Err(layout(
                    path,
                    EVENTS,
                    format!("member `{name}` is {size} bytes, expected {want} (8 boards)"),
                ));
            }
        }
        if samples_at.1 % (8 * 64 * 2) != 0 || samples_at.1 == 0 {
            return Err(layout(
                path,
                WAVEFORMS,
                format!("`samples` is {} bytes, not 8 × 64 × n int16", samples_at.1),
            ));
        }
        let rows = events.size();
        if waveforms.size() < rows {
            return Err(layout(
                path,
                WAVEFORMS,
                format!("{} rows for {rows} events", waveforms.size()),
            ));
        }
        Ok(Self {
            path: path.into(),
            _file: file,
            events,
            waveforms,
            event_type,
            wvfm_type,
            fields,
            samples_at,
            samples_per_waveform: samples_at.1 / (8 * 64 * 2),
            rows,
            next: 0,
            block: 16,
            event_buf: Vec::new(),
            wvfm_buf: Vec::new(),
            samples: Vec::new(),
            buffered: 0..0,
        })
    }

    /// Events in the file.
    pub fn events(&self) -> usize {
        self.rows
    }

    /// Events already returned.
    pub fn position(&self) -> u64 {
        self.next as u64
    }

    /// Continues at event `event`.
    pub fn seek(&mut self, event: u64) {
        self.next = (event as usize).min(self.rows);
    }

    /// The next event and its samples (`[board][input][sample]`, raw int16).
    pub fn next_event(&mut self) -> Result<Option<(FlowEvent, &[i16])>> {
        let path = self.path.clone();
        let _busy = crate::stall::busy(&path, "reading light/wvfm");
        if self.next >= self.rows {
            return Ok(None);
        }
        if !self.buffered.contains(&self.next) {
            let end = (self.next + self.block).min(self.rows);
            let (start, path) = (self.next, self.path.clone());
            let read_error = |dataset: &str, source: hdf5::Error| IngestError::Read {
                path: path.clone(),
                dataset: dataset.into(),
                start: start as u64,
                end: end as u64,
                source: source.into(),
            };
            self.event_type
                .read(&self.events, start, end, &mut self.event_buf)
                .map_err(|e| read_error(EVENTS, e))?;
            self.wvfm_type
                .read(&self.waveforms, start, end, &mut self.wvfm_buf)
                .map_err(|e| read_error(WAVEFORMS, e))?;
            self.buffered = start..end;
        }
        let k = self.next - self.buffered.start;
        self.next += 1;
        let record = &self.event_buf[k * self.event_type.size..(k + 1) * self.event_type.size];
        let field = |i: usize| &record[self.fields[i].0..self.fields[i].0 + self.fields[i].1];
        let le4 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let le8 = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
        let valid_bytes = field(4);
        let mut valid = [[false; 64]; 8];
        for (board, row) in valid.iter_mut().enumerate() {
            for (input, v) in row.iter_mut().enumerate() {
                *v = valid_bytes[board * 64 + input] != 0;
            }
        }
        let event = FlowEvent {
            event: i64::from(le4(field(0)) as i32),
            serial: array(field(1), 4, le4),
            unix_ms: array(field(2), 8, le8),
            tai_ns: array(field(3), 8, le8),
            valid,
        };
        let wvfm = &self.wvfm_buf[k * self.wvfm_type.size..(k + 1) * self.wvfm_type.size];
        let bytes = &wvfm[self.samples_at.0..self.samples_at.0 + self.samples_at.1];
        // Native int16 (HDF5 converted the file's type to the host's).
        self.samples.clear();
        self.samples.extend(bytes.chunks_exact(2).map(|b| i16::from_ne_bytes([b[0], b[1]])));
        Ok(Some((event, &self.samples)))
    }
}
