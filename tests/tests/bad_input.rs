//! Bad input never panics: each broken file gives one error that names the file and, where it
//! applies, the dataset and the row. Every test builds its broken file itself.

use std::path::Path;

use larmon_ingest::IngestError;
use larmon_ingest::read::{DecodeAhead, LarpixReader, RawFileReader, ReadOptions};
use larmon_ingest::write::RawFileWriter;
use larmon_tests::{data, scratch};

fn read_everything(path: &Path) -> Result<u64, IngestError> {
    let mut reader = LarpixReader::open(path, &ReadOptions::default())?;
    let mut rows = 0;
    while let Some(batch) = reader.next_batch()? {
        rows += batch.len() as u64;
    }
    Ok(rows)
}

fn expect_error(path: &Path) -> String {
    let err = read_everything(path).expect_err("broken input must be an error");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "error does not name the file: {text}");
    text
}

/// A data message with `words` copies of a valid data word.
fn data_message(unix: u32, words: u16) -> Vec<u8> {
    let mut msg = vec![b'D'];
    msg.extend_from_slice(&unix.to_le_bytes());
    msg.push(0);
    msg.extend_from_slice(&words.to_le_bytes());
    for _ in 0..words {
        msg.extend_from_slice(&[b'D', 17, 0xe2, 0x69, 0x5a, 0, 0, 0]);
        msg.extend_from_slice(&[0x50, 0x04, 0xbc, 0x5e, 0x5a, 0x80, 0x23, 0xc0]);
    }
    msg
}

fn write_raw(path: &Path, messages: &[Vec<u8>]) {
    let mut writer = RawFileWriter::create(path, 1.7e9, true).unwrap();
    writer.append(messages.iter().map(|m| (1u8, m.as_slice()))).unwrap();
    writer.finish(1.7e9).unwrap();
}

#[test]
fn empty_and_random_files_are_not_hdf5() {
    let dir = scratch("random");
    let empty = dir.join("empty.h5");
    std::fs::write(&empty, b"").unwrap();
    assert!(expect_error(&empty).contains("empty"));
    let random = dir.join("random.h5");
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&random, &bytes).unwrap();
    assert!(expect_error(&random).contains("not an HDF5 file"));
    assert!(expect_error(&dir.join("missing.h5")).contains("No such file"));
}

#[test]
fn truncated_files_are_refused_when_opened() {
    let dir = scratch("truncated");
    for name in ["small-packets.h5", "small-raw.h5"] {
        let bytes = std::fs::read(data(name)).unwrap();
        let cut = dir.join(name);
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let text = expect_error(&cut);
        assert!(text.contains("HDF5 cannot open") || text.contains("rows"), "{text}");
    }
}

#[test]
fn hdf5_files_of_another_kind_are_named_as_such() {
    let dir = scratch("kind");
    let other = dir.join("other.h5");
    let f = hdf5::File::create(&other).unwrap();
    f.new_dataset::<f32>().shape(4).create("waveforms").unwrap();
    drop(f);
    let text = expect_error(&other);
    assert!(text.contains("not a LArPix file") && text.contains("waveforms"), "{text}");

    let no_headers = dir.join("no_headers.h5");
    let f = hdf5::File::create(&no_headers).unwrap();
    f.new_dataset::<hdf5::types::VarLenArray<u8>>().shape(0..).chunk(8).create("msgs").unwrap();
    drop(f);
    assert!(expect_error(&no_headers).contains("without a `msg_headers`"));

    let wrong_type = dir.join("wrong_type.h5");
    let f = hdf5::File::create(&wrong_type).unwrap();
    f.new_dataset::<f64>().shape(10).create("packets").unwrap();
    drop(f);
    let text = expect_error(&wrong_type);
    assert!(text.contains("dataset `packets`") && text.contains("compound"), "{text}");
}

#[test]
fn message_shorter_than_its_header_names_the_row() {
    let dir = scratch("short-message");
    let path = dir.join("raw.h5");
    let mut messages: Vec<Vec<u8>> = (0..5).map(|i| data_message(1_700_000_000 + i, 3)).collect();
    messages[3].truncate(8 + 16 * 2 + 5);
    write_raw(&path, &messages);
    let text = expect_error(&path);
    assert!(text.contains("dataset `msgs`, row 3") && text.contains("truncated"), "{text}");
    // Decoded on its own thread: the rows before it, then the same error, then the end.
    let options = ReadOptions { batch_rows: 3, messages_per_read: 1, ..ReadOptions::default() };
    let rows_then_error = |next: &mut dyn FnMut() -> Result<Option<usize>, IngestError>| {
        let mut rows = 0;
        loop {
            match next() {
                Ok(Some(n)) => rows += n,
                Ok(None) => panic!("the broken message must be an error"),
                Err(error) => return (rows, error.to_string()),
            }
        }
    };
    let mut direct = LarpixReader::open(&path, &options).unwrap();
    let expected = rows_then_error(&mut || Ok(direct.next_batch()?.map(|b| b.len())));
    let mut ahead = DecodeAhead::start(LarpixReader::open(&path, &options).unwrap());
    let (rows, error) = rows_then_error(&mut || Ok(ahead.next_batch()?.map(|b| b.len())));
    assert_eq!((rows, &error), (expected.0, &expected.1));
    assert!(rows > 0 && error == text, "{rows} rows before {error}");
    assert!(ahead.next_batch().unwrap().is_none(), "the end follows the error");
}

#[test]
fn unknown_word_types_are_counted_not_fatal() {
    let dir = scratch("unknown-word");
    let path = dir.join("raw.h5");
    let mut msg = data_message(1_700_000_000, 2);
    msg[8 + 16] = b'X';
    write_raw(&path, &[data_message(1_700_000_000, 1), msg]);
    let mut reader = RawFileReader::open(&path, &ReadOptions::default()).unwrap();
    let rows = reader.next_batch().unwrap().unwrap();
    assert_eq!(rows.len(), 2 + 2); // two timestamp rows, two good data words
    assert_eq!(reader.stats().unknown_words, 1);
    assert_eq!(reader.stats().first_unknown_word, Some((1, 1, b'X')));
}

#[test]
fn msgs_longer_than_msg_headers_reads_the_common_prefix() {
    let dir = scratch("growing");
    let path = dir.join("raw.h5");
    let messages: Vec<Vec<u8>> = (0..10).map(|i| data_message(1_700_000_000 + i, 2)).collect();
    write_raw(&path, &messages);
    // What a reader sees between the writer's two resizes: msgs already longer.
    let f = hdf5::File::open_rw(&path).unwrap();
    f.dataset("msg_headers").unwrap().resize(8).unwrap();
    drop(f);
    let mut reader = RawFileReader::open(&path, &ReadOptions::default()).unwrap();
    assert_eq!(reader.dataset_lengths(), (10, 8));
    assert_eq!(reader.messages(), 8);
    let rows = reader.next_batch().unwrap().unwrap();
    assert_eq!(rows.len(), 8 * 3);
    assert!(reader.next_batch().unwrap().is_none());
    assert_eq!(reader.messages_read(), 8);
}

#[test]
fn corrupted_bytes_give_errors_or_data_never_a_panic() {
    let dir = scratch("corrupt");
    for name in ["small-raw.h5", "small-packets.h5"] {
        let original = std::fs::read(data(name)).unwrap();
        for k in 1..24 {
            let mut bytes = original.clone();
            let at = bytes.len() * k / 24;
            for b in &mut bytes[at..(at + 64).min(original.len())] {
                *b = !*b;
            }
            let path = dir.join(format!("{k}-{name}"));
            std::fs::write(&path, &bytes).unwrap();
            if let Err(e) = read_everything(&path) {
                assert!(e.to_string().contains(&path.display().to_string()), "{e}");
            }
        }
    }
}
