//! Reader of the 2x2 light system's MPD run files (`mpd_run_*.data`: all 8 ADC64 boards in one
//! file; layout in ../shared/fixtures/README.md and calibration-dq.md §4).
//!
//! Blocks are walked by their own lengths — never by the size of the first event — so events of
//! any size, boards missing from an event (a 20-byte device payload with channel mask 0), and
//! run start/stop blocks are all handled. A block cut short at the end of the file (a file still
//! being written) ends the stream without error; the reader stays at that block's start, so a
//! later call picks it up once it is complete. Memory is one event's payload, whatever the file
//! size; nothing is copied per waveform (views into the payload).

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{IngestError, Result};

/// Magic of an event block.
pub const EVENT_MAGIC: u32 = 0x2A50_D5AF;
/// Magic of the run start block (`'Star'`).
pub const RUN_START_MAGIC: u32 = u32::from_le_bytes(*b"Star");
/// Magic of the run stop block (`'Stop'`).
pub const RUN_STOP_MAGIC: u32 = u32::from_le_bytes(*b"Stop");
/// A device payload of at most this many bytes holds no data (adc64format's rule).
const EMPTY_DEVICE_PAYLOAD: usize = 20;
/// Largest block accepted (a corrupt length must not allocate gigabytes).
const MAX_BLOCK_BYTES: usize = 256 << 20;

/// Records of the run start or stop block.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunRecords {
    /// `'Run#'`.
    pub run: Option<u32>,
    /// `'Indx'`: file index of the run part.
    pub index: Option<u32>,
    /// `'JSON'`: DAQ metadata text, if any.
    pub json: Option<String>,
}

/// One event, as a view into the reader's buffer.
#[derive(Clone, Copy, Debug)]
pub struct EventView<'a> {
    /// Event number.
    pub event_number: u32,
    /// Unix time, ms.
    pub unix_ms: u64,
    /// Byte offset of the event block in the file.
    pub offset: u64,
    devices: &'a [u8],
}

/// One board (ADC64 device) of an event.
#[derive(Clone, Copy, Debug)]
pub struct BoardView<'a> {
    /// Serial number.
    pub serial: u32,
    /// Device id (0xDF for ADC64).
    pub device_id: u8,
    /// TAI seconds of the trigger.
    pub tai_s: u32,
    /// TAI nanoseconds within the second.
    pub tai_ns: u32,
    /// Time flags.
    pub flags: u8,
    /// Bit c set: input c has a waveform.
    pub channel_mask: u64,
    /// False for a board that sent nothing in this event.
    pub present: bool,
    data: &'a [u8],
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

impl<'a> EventView<'a> {
    /// The boards in file order (ADC index 0, 1, …), each checked for consistent lengths.
    pub fn boards(&self) -> impl Iterator<Item = std::result::Result<BoardView<'a>, String>> + 'a {
        let devices = self.devices;
        let mut at = 0usize;
        std::iter::from_fn(move || {
            if at >= devices.len() {
                return None;
            }
            if at + 8 > devices.len() {
                at = devices.len();
                return Some(Err("device header runs past the event".to_string()));
            }
            let serial = u32_at(devices, at);
            let word = u32_at(devices, at + 4);
            let (device_id, length) = ((word >> 24) as u8, (word & 0x00FF_FFFF) as usize);
            let start = at + 8;
            if start + length > devices.len() {
                at = devices.len();
                return Some(Err(format!(
                    "device {serial:#010x}: {length} bytes run past the event"
                )));
            }
            at = start + length;
            Some(parse_board(serial, device_id, &devices[start..start + length]))
        })
    }
}

fn parse_board(
    serial: u32,
    device_id: u8,
    payload: &[u8],
) -> std::result::Result<BoardView<'_>, String> {
    let empty = BoardView {
        serial,
        device_id,
        tai_s: 0,
        tai_ns: 0,
        flags: 0,
        channel_mask: 0,
        present: false,
        data: &[],
    };
    if payload.len() < EMPTY_DEVICE_PAYLOAD {
        return if payload.is_empty() {
            Ok(empty)
        } else {
            Err(format!(
                "device {serial:#010x}: {}-byte payload is shorter than a time block",
                payload.len()
            ))
        };
    }
    let header = u32_at(payload, 0);
    if header & 3 != 0 || (header >> 2) & 0x3F_FFFF != 4 {
        return Err(format!(
            "device {serial:#010x}: first block is not a time block ({header:#010x})"
        ));
    }
    let time = u32_at(payload, 8);
    let mask = u64::from(u32_at(payload, 12)) | u64::from(u32_at(payload, 16)) << 32;
    let board = BoardView {
        tai_s: u32_at(payload, 4),
        tai_ns: time >> 2,
        flags: (time & 3) as u8,
        channel_mask: mask,
        present: payload.len() > EMPTY_DEVICE_PAYLOAD,
        data: &payload[EMPTY_DEVICE_PAYLOAD..],
        ..empty
    };
    Ok(board)
}

impl<'a> BoardView<'a> {
    /// The waveforms: (input channel, sample words); each u32 word holds two samples, see
    /// [`samples`].
    pub fn waveforms(
        &self,
    ) -> impl Iterator<Item = std::result::Result<(u8, &'a [u8]), String>> + 'a {
        let (data, serial) = (self.data, self.serial);
        let mut at = 0usize;
        std::iter::from_fn(move || {
            if at >= data.len() {
                return None;
            }
            if at + 4 > data.len() {
                at = data.len();
                return Some(Err(format!("device {serial:#010x}: truncated data block header")));
            }
            let header = u32_at(data, at);
            let (subtype, words, channel) =
                (header & 3, ((header >> 2) & 0x3F_FFFF) as usize, (header >> 24) as u8);
            let start = at + 4;
            let end = start + 4 * words;
            if end > data.len() || words < 2 {
                at = data.len();
                return Some(Err(format!(
                    "device {serial:#010x}: data block of channel {channel} ({words} words) runs past the device"
                )));
            }
            at = end;
            if subtype != 1 {
                return Some(Err(format!(
                    "device {serial:#010x}: block subtype {subtype}, expected 1 (data)"
                )));
            }
            Some(Ok((channel, &data[start + 8..end])))
        })
    }
}

/// The samples of a waveform's words as raw int16 ("ADC16" = 4 × the 14-bit value): word k
/// holds sample 2k in its high half and sample 2k+1 in its low half.
#[inline]
pub fn samples(words: &[u8]) -> impl Iterator<Item = i16> + '_ {
    words.chunks_exact(4).flat_map(|w| {
        let word = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        [(word >> 16) as i16, word as u16 as i16]
    })
}

/// Streams the events of an MPD file.
pub struct MpdReader {
    path: PathBuf,
    file: BufReader<File>,
    offset: u64,
    payload: Vec<u8>,
    run_start: Option<RunRecords>,
    run_stop: Option<RunRecords>,
    incomplete_tail: bool,
}

impl MpdReader {
    /// Opens a file.
    pub fn open(path: &Path) -> Result<Self> {
        let file =
            File::open(path).map_err(|source| IngestError::Io { path: path.into(), source })?;
        Ok(Self {
            path: path.into(),
            file: BufReader::with_capacity(4 << 20, file),
            offset: 0,
            payload: Vec::new(),
            run_start: None,
            run_stop: None,
            incomplete_tail: false,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Bytes consumed (the start of the next block): where to resume after a restart.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// The run start block, once read.
    pub fn run_start(&self) -> Option<&RunRecords> {
        self.run_start.as_ref()
    }
    /// The run stop block, once read (the file is complete).
    pub fn run_stop(&self) -> Option<&RunRecords> {
        self.run_stop.as_ref()
    }
    /// Whether the stream ended on a block cut short (a file still being written).
    pub fn incomplete_tail(&self) -> bool {
        self.incomplete_tail
    }

    /// Continues at a block boundary returned by [`offset`](Self::offset).
    pub fn seek(&mut self, offset: u64) -> Result<()> {
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(|source| IngestError::Io { path: self.path.clone(), source })?;
        self.offset = offset;
        self.incomplete_tail = false;
        Ok(())
    }

    fn error(&self, offset: u64, reason: String) -> IngestError {
        IngestError::Mpd { path: self.path.clone(), offset, reason }
    }

    /// Reads up to `len` bytes into the payload buffer; returns how many (fewer at the end).
    fn read_fully(&mut self, len: usize) -> Result<usize> {
        self.payload.resize(len, 0);
        let mut filled = 0;
        while filled < len {
            match self.file.read(&mut self.payload[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => return Err(IngestError::Io { path: self.path.clone(), source }),
            }
        }
        Ok(filled)
    }

    /// The next event, or `None` at the end (check [`incomplete_tail`](Self::incomplete_tail)).
    pub fn next_event(&mut self) -> Result<Option<EventView<'_>>> {
        loop {
            let start = self.offset;
            let got = self.read_fully(8)?;
            if got < 8 {
                return self.end_at(start, got > 0);
            }
            let magic = u32_at(&self.payload, 0);
            let length = u32_at(&self.payload, 4) as usize;
            if length > MAX_BLOCK_BYTES {
                return Err(self.error(start, format!("block of {length} bytes (corrupt length?)")));
            }
            if self.read_fully(length)? < length {
                return self.end_at(start, true);
            }
            self.offset = start + 8 + length as u64;
            match magic {
                EVENT_MAGIC => {
                    if length < 12 {
                        return Err(self.error(start, format!("event block of {length} bytes")));
                    }
                    let p = &self.payload;
                    let event_number = u32_at(p, 0);
                    let unix_ms = u64::from(u32_at(p, 4)) | u64::from(u32_at(p, 8)) << 32;
                    return Ok(Some(EventView {
                        event_number,
                        unix_ms,
                        offset: start,
                        devices: &self.payload[12..],
                    }));
                }
                RUN_START_MAGIC => self.run_start = Some(parse_records(&self.payload)),
                RUN_STOP_MAGIC => self.run_stop = Some(parse_records(&self.payload)),
                other => {
                    return Err(self.error(
                        start,
                        format!("unknown block magic {other:#010x} (not an MPD file, or corrupt)"),
                    ));
                }
            }
        }
    }

    /// Ends the stream at `start`; a partial block is left for a later call.
    fn end_at(&mut self, start: u64, partial: bool) -> Result<Option<EventView<'_>>> {
        self.seek(start)?;
        self.incomplete_tail = partial;
        Ok(None)
    }
}

/// `'Run#'`, `'Indx'`, `'JSON'` records: tag, length, value.
fn parse_records(payload: &[u8]) -> RunRecords {
    let mut records = RunRecords::default();
    let mut at = 0;
    while at + 8 <= payload.len() {
        let tag = &payload[at..at + 4];
        let len = u32_at(payload, at + 4) as usize;
        let value = &payload[at + 8..(at + 8 + len).min(payload.len())];
        match tag {
            b"Run#" if len == 4 => records.run = Some(u32_at(value, 0)),
            b"Indx" if len == 4 => records.index = Some(u32_at(value, 0)),
            b"JSON" => records.json = Some(String::from_utf8_lossy(value).trim_end().to_string()),
            _ => {}
        }
        at += 8 + len.div_ceil(4) * 4;
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_words_unpack_high_half_first() {
        let word = ((-28000i16 as u16 as u32) << 16) | (32764u16 as u32);
        let bytes = word.to_le_bytes();
        assert_eq!(samples(&bytes).collect::<Vec<_>>(), vec![-28000, 32764]);
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;
    use std::io::Write;

    fn block(magic: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = magic.to_le_bytes().to_vec();
        b.extend((payload.len() as u32).to_le_bytes());
        b.extend(payload);
        b
    }

    fn words(values: &[u32]) -> Vec<u8> {
        values.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// A device: time block (+ one data block of 4 samples on `channel` unless `missing`).
    fn device(serial: u32, tai_s: u32, tai_ns: u32, channel: Option<u32>) -> Vec<u8> {
        let mask = channel.map_or(0u64, |c| 1 << c);
        let mut payload = words(&[4 << 2, tai_s, tai_ns << 2, mask as u32, (mask >> 32) as u32]);
        if let Some(c) = channel {
            let s = |v: i16| v as u16 as u32;
            payload.extend(words(&[c << 24 | (2 + 2) << 2 | 1, tai_s, tai_ns << 2]));
            payload.extend(words(&[s(-28000) << 16 | s(-27996), s(-27000) << 16 | s(32764)]));
        }
        let mut d = words(&[serial, 0xDF << 24 | payload.len() as u32]);
        d.extend(payload);
        d
    }

    fn event(number: u32, unix_ms: u64, devices: &[Vec<u8>]) -> Vec<u8> {
        let mut payload = words(&[number, unix_ms as u32, (unix_ms >> 32) as u32]);
        for d in devices {
            payload.extend(d);
        }
        block(EVENT_MAGIC, &payload)
    }

    #[test]
    fn events_of_any_size_missing_boards_and_a_growing_file() {
        let mut run = words(&[u32::from_le_bytes(*b"Run#"), 4, 42]);
        run.extend(words(&[u32::from_le_bytes(*b"Indx"), 4, 0]));
        let start = block(RUN_START_MAGIC, &run);
        // Event 0: two boards with data; event 1: board 1 missing (20-byte payload) — a
        // different size, which a reader estimating counts from the first event gets wrong.
        let e0 = event(
            0,
            1_700_000_000_123,
            &[device(7, 1_700_000_037, 5, Some(4)), device(8, 1_700_000_037, 5, Some(63))],
        );
        let e1 = event(
            1,
            1_700_000_000_456,
            &[device(7, 1_700_000_037, 9, Some(5)), device(8, 0, 0, None)],
        );
        let stop = block(RUN_STOP_MAGIC, &run);
        let dir = std::env::temp_dir().join(format!("larmon-mpd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("growing.data");
        // The file as a DAQ has written it so far: start, event 0 and half of event 1.
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&start).unwrap();
        f.write_all(&e0).unwrap();
        f.write_all(&e1[..e1.len() / 2]).unwrap();
        f.flush().unwrap();

        let mut reader = MpdReader::open(&path).unwrap();
        let first = reader.next_event().unwrap().unwrap();
        assert_eq!((first.event_number, first.unix_ms), (0, 1_700_000_000_123));
        let boards: Vec<BoardView<'_>> = first.boards().map(Result::unwrap).collect();
        assert_eq!(boards.len(), 2);
        assert_eq!(
            (boards[1].serial, boards[1].tai_s, boards[1].tai_ns, boards[1].present),
            (8, 1_700_000_037, 5, true)
        );
        let (channel, w) = boards[1].waveforms().next().unwrap().unwrap();
        assert_eq!(channel, 63);
        assert_eq!(samples(w).collect::<Vec<_>>(), vec![-28000, -27996, -27000, 32764]);
        assert!(reader.next_event().unwrap().is_none());
        assert!(reader.incomplete_tail());
        assert_eq!(reader.offset(), (start.len() + e0.len()) as u64);
        assert_eq!(reader.run_start().unwrap().run, Some(42));

        // The DAQ finishes the event and the run: the same reader continues.
        f.write_all(&e1[e1.len() / 2..]).unwrap();
        f.write_all(&stop).unwrap();
        f.flush().unwrap();
        let second = reader.next_event().unwrap().unwrap();
        assert_eq!(second.event_number, 1);
        let boards: Vec<BoardView<'_>> = second.boards().map(Result::unwrap).collect();
        assert!(boards[0].present && !boards[1].present);
        assert_eq!(boards[1].waveforms().count(), 0);
        assert!(reader.next_event().unwrap().is_none());
        assert!(!reader.incomplete_tail());
        assert!(reader.run_stop().is_some());

        // Garbage is an error with the byte offset, not a panic.
        std::fs::write(&path, [start.clone(), vec![1, 2, 3, 4, 0, 0, 0, 0]].concat()).unwrap();
        let mut reader = MpdReader::open(&path).unwrap();
        let err = reader.next_event().unwrap_err().to_string();
        assert!(
            err.contains(&format!("byte {}", start.len())) && err.contains("unknown block magic"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
