//! Thin helpers over HDF5 shared by the readers and the writer: opening files that may still be
//! written, checking the signature before HDF5 sees the bytes, raw row reads/writes with an
//! explicit memory type, and string/float attributes.
//!
//! The raw reads use `H5Dread` with a memory type built from the file's own compound layout, so
//! HDF5 copies bytes without converting them (the same path h5py takes), and the readers bind
//! columns by name afterwards. hdf5-metno's typed readers need a compile-time Rust type, which a
//! file-defined layout cannot have.

use std::io::Read;
use std::path::Path;

use hdf5::types::{TypeDescriptor, VarLenUnicode};
use hdf5::{Dataset, Dataspace, Datatype, File, OpenMode};
use hdf5_sys::h5d::{H5Dread, H5Dwrite};
use hdf5_sys::h5p::H5P_DEFAULT;

use crate::error::{IngestError, Result};

/// The 8-byte HDF5 format signature.
const HDF5_SIGNATURE: [u8; 8] = [0x89, b'H', b'D', b'F', b'\r', b'\n', 0x1a, b'\n'];

/// Checks that `path` is a readable HDF5 file before handing it to the C library, so that random
/// bytes or a text file get a plain answer instead of an HDF5 error stack.
pub(crate) fn check_signature(path: &Path) -> Result<()> {
    let io_err = |source| IngestError::Io { path: path.to_path_buf(), source };
    let mut file = std::fs::File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    if len == 0 {
        return Err(IngestError::NotHdf5 { path: path.into(), reason: "the file is empty".into() });
    }
    // HDF5 looks for the signature at 0, 512, 1024, 2048, ... (user block sizes).
    let mut offset = 0u64;
    let mut head = vec![0u8; 8];
    while offset + 8 <= len {
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(offset)).map_err(io_err)?;
        file.read_exact(&mut head).map_err(io_err)?;
        if head == HDF5_SIGNATURE {
            return Ok(());
        }
        offset = if offset == 0 { 512 } else { offset * 2 };
    }
    Err(IngestError::NotHdf5 {
        path: path.into(),
        reason: format!("no HDF5 signature in its {len} bytes"),
    })
}

/// Opens a file read-only. Files a DAQ is still writing (SWMR) are opened for SWMR reading, so
/// their datasets can be refreshed; others are opened plainly. File locking is off, as in
/// larpix-control, so a live writer is never blocked by the monitor. HDF5 retries a metadata
/// read whose checksum fails up to 100 times when reading SWMR (a writer caught mid-flush); on a
/// damaged file that takes minutes, which the stall watchdog ([`crate::stall`]) cuts short.
pub(crate) fn open_readonly(path: &Path) -> Result<File> {
    check_signature(path)?;
    let _busy = crate::stall::busy(path, "opening the file");
    let open = |mode| File::with_options().with_fapl(|p| p.file_locking(false)).open_as(path, mode);
    open(OpenMode::ReadSWMR)
        .or_else(|_| open(OpenMode::Read))
        .map_err(|source| IngestError::Open { path: path.to_path_buf(), source: source.into() })
}

/// Creates (truncates) a file whose `close()` closes every object still open in it at once, so a
/// file is complete on disk when `close()` returns (HDF5's default "weak" degree defers it).
pub(crate) fn create_strong_close(path: &Path) -> hdf5::Result<File> {
    File::with_options()
        .with_fapl(|p| p.fclose_degree(hdf5::file::FileCloseDegree::Strong))
        .create(path)
}

/// Builds a native memory type with the same member names, offsets and size as a file compound.
pub(crate) fn memory_type_like(desc: &TypeDescriptor) -> hdf5::Result<Datatype> {
    Datatype::from_descriptor(desc)
}

/// Reads rows `start..end` of a 1-D dataset into `buf` as packed records of `mem_type`.
pub(crate) fn read_rows_raw(
    dataset: &Dataset,
    mem_type: &Datatype,
    start: usize,
    end: usize,
    buf: &mut Vec<u8>,
) -> hdf5::Result<()> {
    let rows = end - start;
    let bytes = rows * mem_type.size();
    buf.clear();
    if rows == 0 {
        return Ok(());
    }
    buf.reserve(bytes);
    let file_space = dataset.space()?.select(start..end)?;
    let mem_space = Dataspace::try_new(rows)?;
    hdf5::sync::sync(|| unsafe {
        // SAFETY: `buf` has capacity for `rows` records of `mem_type`, the memory space has exactly
        // `rows` elements and the file selection as many; ids stay alive for the call.
        hdf5::h5check(H5Dread(
            dataset.id(),
            mem_type.id(),
            mem_space.id(),
            file_space.id(),
            H5P_DEFAULT,
            buf.as_mut_ptr().cast(),
        ))
    })?;
    // SAFETY: H5Dread succeeded and filled all `bytes` bytes.
    unsafe { buf.set_len(bytes) };
    Ok(())
}

/// Writes packed records of `mem_type` from `data` into rows `start..` of a 1-D dataset.
pub(crate) fn write_rows_raw(
    dataset: &Dataset,
    mem_type: &Datatype,
    start: usize,
    data: &[u8],
) -> hdf5::Result<()> {
    let size = mem_type.size();
    assert_eq!(data.len() % size, 0, "whole records only");
    let rows = data.len() / size;
    if rows == 0 {
        return Ok(());
    }
    let file_space = dataset.space()?.select(start..start + rows)?;
    let mem_space = Dataspace::try_new(rows)?;
    hdf5::sync::sync(|| unsafe {
        // SAFETY: `data` holds exactly `rows` records of `mem_type`; both spaces have `rows` elements.
        hdf5::h5check(H5Dwrite(
            dataset.id(),
            mem_type.id(),
            mem_space.id(),
            file_space.id(),
            H5P_DEFAULT,
            data.as_ptr().cast(),
        ))
    })?;
    Ok(())
}

/// Writes one whole, unfiltered chunk of a 1-D chunked dataset whose first row is `first_row`,
/// as the file bytes they are (`H5Dwrite_chunk`): no chunk cache, no type conversion, no fill.
pub(crate) fn write_chunk_direct(
    dataset: &Dataset,
    first_row: usize,
    bytes: &[u8],
) -> hdf5::Result<()> {
    let offset = [first_row as hdf5_sys::h5::hsize_t];
    hdf5::sync::sync(|| unsafe {
        // SAFETY: `bytes` is one whole chunk of the dataset's file type; `offset` has one element
        // per dimension (1) and is a multiple of the chunk size (the caller writes whole chunks).
        hdf5::h5check(hdf5_sys::h5d::H5Dwrite_chunk(
            dataset.id(),
            H5P_DEFAULT,
            0,
            offset.as_ptr(),
            bytes.len(),
            bytes.as_ptr().cast(),
        ))
    })?;
    Ok(())
}

/// Reads a string attribute (variable or fixed length), if present and a string.
pub(crate) fn string_attr(loc: &hdf5::Location, name: &str) -> Option<String> {
    let attr = loc.attr(name).ok()?;
    if let Ok(s) = attr.read_scalar::<VarLenUnicode>() {
        return Some(s.as_str().to_owned());
    }
    if let Ok(s) = attr.read_scalar::<hdf5::types::VarLenAscii>() {
        return Some(s.as_str().to_owned());
    }
    let desc = attr.dtype().ok()?.to_descriptor().ok()?;
    match desc {
        TypeDescriptor::FixedAscii(_) | TypeDescriptor::FixedUnicode(_) => {
            let bytes = attr.as_byte_reader().ok().and_then(|mut r| {
                let mut v = Vec::new();
                r.read_to_end(&mut v).ok().map(|_| v)
            })?;
            Some(String::from_utf8_lossy(&bytes).trim_end_matches('\0').to_owned())
        }
        _ => None,
    }
}

/// Reads a numeric scalar attribute as f64, if present.
pub(crate) fn f64_attr(loc: &hdf5::Location, name: &str) -> Option<f64> {
    loc.attr(name).ok()?.read_scalar::<f64>().ok()
}

/// Writes (or replaces) a variable-length UTF-8 string attribute.
pub(crate) fn write_string_attr(loc: &hdf5::Location, name: &str, value: &str) -> hdf5::Result<()> {
    let value: VarLenUnicode =
        value.parse().map_err(|e| hdf5::Error::from(format!("attribute {name}: {e}")))?;
    if loc.attr(name).is_ok() {
        loc.delete_attr(name)?;
    }
    loc.new_attr::<VarLenUnicode>().create(name)?.write_scalar(&value)
}

/// Writes (or replaces) a float attribute.
pub(crate) fn write_f64_attr(loc: &hdf5::Location, name: &str, value: f64) -> hdf5::Result<()> {
    if loc.attr(name).is_ok() {
        loc.delete_attr(name)?;
    }
    loc.new_attr::<f64>().create(name)?.write_scalar(&value)
}
