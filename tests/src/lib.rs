//! Helpers shared by larmon's cross-crate tests: where the fixtures are, and writers of synthetic
//! files in any packet layout (for the layouts no committed file has) and of broken files.

use std::path::{Path, PathBuf};

use hdf5::types::{CompoundField, CompoundType, IntSize, TypeDescriptor};
use larmon_decode::PacketColumns;
use larmon_ingest::read::{LarpixReader, ReadOptions};

/// A file committed under `tests/data/`.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(name)
}

/// A file of `../shared/fixtures`, or `None` (with a note on stderr) when that folder is absent.
pub fn shared_fixture(name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    let path = dir.join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {} not found (large cross-check needs ../shared/fixtures)",
            path.display()
        );
        None
    }
}

/// A fresh scratch directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("larmon-test-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Reads every row of a LArPix file into one column set.
pub fn read_all(path: &Path, options: &ReadOptions) -> PacketColumns {
    let mut all = PacketColumns::default();
    let reader = LarpixReader::open(path, options).unwrap_or_else(|e| panic!("{e}"));
    for batch in reader {
        let batch = batch.unwrap_or_else(|e| panic!("{e}"));
        for i in 0..batch.len() {
            all.push(&batch.row(i).unwrap());
        }
    }
    all
}

/// An unsigned member of `bytes` bytes.
pub fn uint(bytes: usize) -> TypeDescriptor {
    TypeDescriptor::Unsigned(match bytes {
        1 => IntSize::U1,
        2 => IntSize::U2,
        4 => IntSize::U4,
        _ => IntSize::U8,
    })
}

/// Writes `rows` as a `packets` table with the given member order and types (packed), so any
/// historical layout can be produced. Values are truncated to each member's width.
pub fn write_packet_table(
    path: &Path,
    version: Option<&str>,
    members: &[(&str, TypeDescriptor)],
    rows: &PacketColumns,
    chunk: usize,
    gzip: Option<u8>,
) {
    let mut offset = 0;
    let fields: Vec<CompoundField> = members
        .iter()
        .enumerate()
        .map(|(index, (name, ty))| {
            let f = CompoundField { name: (*name).into(), ty: ty.clone(), offset, index };
            offset += ty.size();
            f
        })
        .collect();
    let size = offset;
    let desc = TypeDescriptor::Compound(CompoundType { fields: fields.clone(), size });
    let mut bytes = vec![0u8; size * rows.len()];
    for i in 0..rows.len() {
        for f in &fields {
            let v = rows.value(&f.name, i).unwrap_or(0).to_le_bytes();
            let w = f.ty.size();
            bytes[i * size + f.offset..i * size + f.offset + w].copy_from_slice(&v[..w]);
        }
    }
    let file = hdf5::File::create(path).unwrap();
    if let Some(v) = version {
        let g = file.create_group("_header").unwrap();
        let v: hdf5::types::VarLenUnicode = v.parse().unwrap();
        g.new_attr::<hdf5::types::VarLenUnicode>()
            .create("version")
            .unwrap()
            .write_scalar(&v)
            .unwrap();
    }
    let mut b = file.new_dataset_builder().packed(true).chunk(chunk);
    if let Some(level) = gzip {
        b = b.deflate(level);
    }
    let ds = b.empty_as(&desc).shape(0..).create("packets").unwrap();
    ds.resize(rows.len()).unwrap();
    let mem = hdf5::Datatype::from_descriptor(&desc).unwrap();
    let space = ds.space().unwrap();
    hdf5::sync::sync(|| unsafe {
        // SAFETY: `bytes` holds `rows.len()` packed records of `mem`; the space covers them all.
        hdf5::h5check(hdf5_sys::h5d::H5Dwrite(
            ds.id(),
            mem.id(),
            space.id(),
            space.id(),
            hdf5_sys::h5p::H5P_DEFAULT,
            bytes.as_ptr().cast(),
        ))
    })
    .unwrap();
}
