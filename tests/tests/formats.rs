//! The readers and the converter on real-format files: larmon's conversion equals larpix-control's
//! row for row, every 2.x packet layout reads to the same values, raw and packet files give the
//! same Arrow stream, and counts equal the simulation truth.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::UInt64Type;
use hdf5::types::TypeDescriptor;
use larmon_decode::{PACKET_COLUMNS, PacketColumns};
use larmon_ingest::arrow::{packets_record_batch, packets_schema};
use larmon_ingest::read::{DecodeAhead, FileKind, LarpixReader, PacketFileReader, ReadOptions};
use larmon_ingest::write::{PacketFileWriter, WriteOptions};
use larmon_tests::{data, read_all, scratch, shared_fixture, uint, write_packet_table};
use std::path::Path;

fn convert(input: &Path, output: &Path) {
    let mut reader = LarpixReader::open(input, &ReadOptions::default()).unwrap();
    let mut writer = PacketFileWriter::create(output, &WriteOptions::default()).unwrap();
    while let Some(batch) = reader.next_batch().unwrap() {
        writer.append(&batch).unwrap();
    }
    writer.finish().unwrap();
}

fn packets_type(path: &Path) -> TypeDescriptor {
    hdf5::File::open(path)
        .unwrap()
        .dataset("packets")
        .unwrap()
        .dtype()
        .unwrap()
        .to_descriptor()
        .unwrap()
}

fn assert_same_rows(ours: &PacketColumns, reference: &PacketColumns, what: &str) {
    assert_eq!(ours.len(), reference.len(), "{what}: row count");
    for spec in PACKET_COLUMNS {
        for i in 0..ours.len() {
            let (a, b) = (ours.value(spec.name, i), reference.value(spec.name, i));
            assert_eq!(a, b, "{what}: column {} differs first at row {i}", spec.name);
        }
    }
}

fn check_conversion(raw: &Path, reference: &Path, name: &str) {
    let out = scratch(name).join("converted.h5");
    convert(raw, &out);
    assert_eq!(packets_type(&out), packets_type(reference), "{name}: record layout");
    let ours = read_all(&out, &ReadOptions::default());
    let theirs = read_all(reference, &ReadOptions::default());
    assert_same_rows(&ours, &theirs, name);
    assert_eq!(ours.unix_time, theirs.unix_time);
}

#[test]
fn convert_equals_larpix_control_on_small_raw() {
    check_conversion(&data("small-raw.h5"), &data("small-packets.h5"), "small");
}

#[test]
fn convert_reads_libver_latest_raw_written_by_hdf5_2() {
    check_conversion(&data("small-raw-libver-latest.h5"), &data("small-packets.h5"), "latest");
}

#[test]
fn convert_equals_larpix_control_on_cosmics_raw() {
    let (Some(raw), Some(reference)) =
        (shared_fixture("cosmics-raw.h5"), shared_fixture("cosmics-packets.h5"))
    else {
        return;
    };
    check_conversion(&raw, &reference, "cosmics");
}

fn concat(path: &Path, options: &ReadOptions) -> RecordBatch {
    let batches: Vec<RecordBatch> = LarpixReader::open(path, options)
        .unwrap()
        .map(|b| packets_record_batch(b.unwrap()))
        .collect();
    concat_batches(&packets_schema(), &batches).unwrap()
}

#[test]
fn raw_and_packet_files_give_the_same_arrow_stream() {
    let raw = concat(&data("small-raw.h5"), &ReadOptions::default());
    let packets = concat(&data("small-packets.h5"), &ReadOptions::default());
    assert_eq!(raw.num_rows(), 36_730);
    assert_eq!(raw, packets);
    assert_eq!(raw.schema().fields().len(), 23);
    assert_eq!(raw.schema().metadata()["larmon.stream"], "packets");
}

/// Decoding ahead on its own thread hands over the reader's batches, in order, with the
/// reader's progress after each, and the end once.
#[test]
fn decoding_ahead_gives_the_readers_batches_in_order() {
    let small = ReadOptions { batch_rows: 1000, messages_per_read: 7, read_ahead: true };
    for name in ["small-raw.h5", "small-packets.h5"] {
        let mut direct = LarpixReader::open(&data(name), &small).unwrap();
        let mut ahead = DecodeAhead::start(LarpixReader::open(&data(name), &small).unwrap());
        assert_eq!(
            (ahead.kind(), ahead.progress_total()),
            (direct.kind(), direct.progress_total())
        );
        assert_eq!(ahead.progress_done(), 0);
        let mut batches = 0;
        while let Some(expected) = direct.next_batch().unwrap() {
            let batch = ahead.next_batch().unwrap().expect("as many batches as the reader");
            assert_eq!(batch, expected, "{name}: batch {batches}");
            assert_eq!(ahead.progress_done(), direct.progress_done(), "{name}: batch {batches}");
            batches += 1;
        }
        assert!(batches > 10, "{name}: {batches} batches");
        assert!(ahead.next_batch().unwrap().is_none() && ahead.next_batch().unwrap().is_none());
        assert_eq!(ahead.progress_done(), ahead.progress_total());
        // Dropped half-way: the thread ends (and the file is closed) without a hang.
        let mut partial = DecodeAhead::start(LarpixReader::open(&data(name), &small).unwrap());
        assert!(partial.next_batch().unwrap().is_some());
        drop(partial);
    }
}

#[test]
fn batches_are_bounded_and_do_not_change_the_result() {
    let reference = concat(&data("small-packets.h5"), &ReadOptions::default());
    for read_ahead in [false, true] {
        let small = ReadOptions { batch_rows: 1000, messages_per_read: 7, read_ahead };
        for name in ["small-raw.h5", "small-packets.h5"] {
            let reader = LarpixReader::open(&data(name), &small).unwrap();
            // Raw batches end on a message boundary: at most one message (<= 257 rows) over.
            // Packet-file batches are whole HDF5 chunks (574 rows in this file): 2 chunks.
            let limit = match reader.kind() {
                FileKind::Raw => 1000 + 257,
                FileKind::Packets => 1000usize.div_ceil(574) * 574,
            };
            let mut batches = 0;
            for batch in reader {
                let batch = batch.unwrap();
                batches += 1;
                assert!(batch.len() <= limit, "{name}: batch of {} rows", batch.len());
            }
            assert!(batches >= 32, "{name}: {batches} batches");
            assert_eq!(concat(&data(name), &small), reference, "{name}, read_ahead {read_ahead}");
        }
    }
}

#[test]
fn unix_time_is_inherited_from_the_preceding_timestamp_row() {
    let rows = read_all(&data("small-packets.h5"), &ReadOptions::default());
    let mut last = None;
    for i in 0..rows.len() {
        if rows.packet_type[i] == 4 {
            last = Some(rows.timestamp[i]);
        }
        assert_eq!(Some(rows.unix_time[i]), last, "row {i}");
    }
    assert_eq!(rows.unix_time[0], 1_678_848_001);
    assert_eq!(*rows.unix_time.last().unwrap(), 1_678_848_005);

    // Resuming mid-file: rows before the next type-4 row have no Unix time (null in Arrow).
    let mut reader =
        PacketFileReader::open(&data("small-packets.h5"), &ReadOptions::default()).unwrap();
    reader.seek(5);
    let batch = packets_record_batch(reader.next_batch().unwrap().unwrap());
    let unix = batch.column_by_name("unix_time").unwrap().as_primitive::<UInt64Type>();
    let first_type4 = (5..).position(|i| rows.packet_type[i] == 4).unwrap();
    assert!(first_type4 > 0);
    assert_eq!(unix.null_count(), first_type4);
    assert!(unix.is_valid(first_type4));
}

#[test]
fn counts_equal_the_simulation_truth() {
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("small-truth.json")).unwrap()).unwrap();
    let counts = &truth["counts"];
    let rows = read_all(&data("small-raw.h5"), &ReadOptions::default());
    assert_eq!(rows.len() as u64, counts["packet_rows_total"].as_u64().unwrap());
    for (kind, n) in counts["packet_rows_by_type"].as_object().unwrap() {
        let kind: u8 = kind.parse().unwrap();
        let ours = rows.packet_type.iter().filter(|t| **t == kind).count() as u64;
        assert_eq!(ours, n.as_u64().unwrap(), "packet_type {kind}");
    }
    let parity_errors = (0..rows.len())
        .filter(|&i| rows.packet_type[i] <= 3 && rows.valid_parity[i] == 0)
        .count() as u64;
    assert_eq!(parity_errors, counts["invalid_parity_rows"].as_u64().unwrap());
    let late = (0..rows.len())
        .filter(|&i| {
            rows.packet_type[i] == 0 && u64::from(rows.receipt_timestamp[i]) < rows.timestamp[i]
        })
        .count() as u64;
    assert_eq!(late, counts["receipt_before_timestamp_data_rows"].as_u64().unwrap());
}

#[test]
fn legacy_35_byte_layout_reads_like_the_canonical_file() {
    let legacy =
        PacketFileReader::open(&data("small-legacy-v3_4.h5"), &Default::default()).unwrap();
    assert_eq!(legacy.layout().record_size, 35);
    assert_eq!(legacy.version(), Some("2.3"));
    let legacy = read_all(&data("small-legacy-v3_4.h5"), &ReadOptions::default());
    let canonical = read_all(&data("small-packets.h5"), &ReadOptions::default());
    let mut first = PacketColumns::default();
    for i in 0..2000 {
        first.push(&canonical.row(i).unwrap());
    }
    assert_same_rows(&legacy, &first, "legacy 2.3");
}

/// Member lists of the historical 2.x layouts (larpix-formats.md §1.1.2).
fn historical_layout(name: &str) -> Vec<(&'static str, TypeDescriptor)> {
    let canonical: Vec<(&'static str, TypeDescriptor)> =
        PACKET_COLUMNS.iter().map(|c| (c.name, uint(c.width.bytes()))).collect();
    let without = |names: &[&str]| -> Vec<_> {
        canonical.iter().filter(|(n, _)| !names.contains(n)).cloned().collect()
    };
    let with_sfe_u1 = |mut v: Vec<(&'static str, TypeDescriptor)>| {
        for m in &mut v {
            if m.0 == "shared_fifo_events" {
                m.1 = uint(1);
            }
        }
        v
    };
    match name {
        // v3.1.0 "2.0": 20 members, 31 bytes
        "2.0-v3.1" => without(&["first_packet", "receipt_timestamp"]),
        // v3.1.0 "2.1": first_packet right after timestamp, shared_fifo_events u1, 31 bytes
        "2.1-v3.1" => {
            let mut v = with_sfe_u1(without(&["first_packet", "receipt_timestamp"]));
            v.insert(9, ("first_packet", uint(1)));
            v
        }
        // v3.2-3.4 "2.2": first_packet last, shared_fifo_events u1, 31 bytes
        "2.2-v3.4" => with_sfe_u1(without(&["receipt_timestamp"])),
        _ => canonical,
    }
}

#[test]
fn every_historical_2x_layout_reads_by_member_name() {
    let source = read_all(&data("small-packets.h5"), &ReadOptions::default());
    let mut rows = PacketColumns::default();
    for i in 0..3000 {
        let mut row = source.row(i).unwrap();
        row.shared_fifo_events = (i % 200) as u16; // exercise the u1/u2 member
        rows.push(&row);
    }
    let dir = scratch("layouts");
    let cases = [
        ("2.0-v3.1", "2.0", 31, 9, None),
        ("2.1-v3.1", "2.1", 31, 9, None),
        ("2.2-v3.4", "2.2", 31, 250, None),
        ("2.4", "2.4", 36, 7, Some(6)), // odd chunking + gzip
    ];
    for (name, version, size, chunk, gzip) in cases {
        let members = historical_layout(name);
        let path = dir.join(format!("{name}.h5"));
        write_packet_table(&path, Some(version), &members, &rows, chunk, gzip);
        let reader =
            PacketFileReader::open(&path, &ReadOptions { batch_rows: 1024, ..Default::default() })
                .unwrap();
        assert_eq!(reader.layout().record_size, size, "{name}");
        let first_packet_at = reader.layout().members.iter().position(|m| m.name == "first_packet");
        let read = read_all(&path, &ReadOptions { batch_rows: 1024, ..Default::default() });
        assert_eq!(read.len(), rows.len());
        for spec in PACKET_COLUMNS {
            let stored = members.iter().find(|(n, _)| *n == spec.name);
            for i in 0..rows.len() {
                let expected = match stored {
                    None => 0,
                    Some((_, ty)) if ty.size() == 1 => rows.value(spec.name, i).unwrap() & 0xff,
                    Some(_) => rows.value(spec.name, i).unwrap(),
                };
                assert_eq!(
                    read.value(spec.name, i),
                    Some(expected),
                    "{name}: {} row {i}",
                    spec.name
                );
            }
        }
        if name == "2.1-v3.1" {
            assert_eq!(first_packet_at, Some(9));
        }
    }
}
