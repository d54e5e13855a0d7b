//! Light readout (LRS) files: MPD run files (the 2x2 light DAQ's binary format) and ndlar_flow
//! light files, read into one event/waveform view; per-waveform reduction; per-run scans with
//! the light health rules.
//!
//! ```no_run
//! use larmon_ingest::light::{LightFile, scan::LightScan};
//! let mut file = LightFile::open("mpd_run_1_p0.data".as_ref())?;
//! let mut scan = LightScan::new(80);
//! file.for_each_event(|event| scan.add_event(event))?;
//! # Ok::<(), larmon_ingest::IngestError>(())
//! ```

pub mod channel_map;
pub mod flow;
pub mod mpd;
pub mod pulses;
pub mod reduce;
pub mod scan;
pub mod streams;

use std::path::Path;

use crate::error::{IngestError, Result};
use flow::FlowReader;
use mpd::{MpdReader, samples};

/// TAI − UTC, seconds (since 2017).
pub const TAI_MINUS_UTC_S: u64 = 37;

/// One waveform of an event.
#[derive(Clone, Copy, Debug)]
pub struct Waveform<'a> {
    /// ADC board index (0–7, file order).
    pub adc: u8,
    /// Input channel (0–63).
    pub channel: u8,
    /// Raw int16 samples (4 × the 14-bit value).
    pub samples: &'a [i16],
}

/// One light event with its waveforms.
#[derive(Clone, Debug, Default)]
pub struct LightEvent<'a> {
    /// Event number.
    pub event: u64,
    /// Unix time, ms (the first board present).
    pub unix_ms: u64,
    /// Bit b set: board b sent data in this event.
    pub boards_present: u8,
    /// Boards in the event (present or not).
    pub boards: u8,
    /// TAI seconds per board (0 for a missing board).
    pub tai_s: [u64; 8],
    /// TAI nanoseconds within the second per board.
    pub tai_ns: [u32; 8],
    /// Serial number per board (0 when the file does not say).
    pub serial: [u32; 8],
    /// Every waveform.
    pub waveforms: Vec<Waveform<'a>>,
}

impl LightEvent<'_> {
    /// Boards of the event that sent no data.
    pub fn missing_boards(&self) -> u8 {
        self.boards.saturating_sub(self.boards_present.count_ones() as u8)
    }
}

/// Whether a file is light readout: an MPD run file (`.data`) or an ndlar_flow light file.
pub fn is_light_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "data")
        || matches!(LightFile::open(path), Ok(LightFile::Flow(_)))
}

/// Either kind of light file.
pub enum LightFile {
    /// MPD binary.
    Mpd(MpdReader),
    /// ndlar_flow HDF5.
    Flow(FlowReader),
}

impl LightFile {
    /// Opens a light file, deciding its kind from its first bytes (HDF5 signature or not).
    pub fn open(path: &Path) -> Result<Self> {
        let mut head = [0u8; 8];
        let io = |source| IngestError::Io { path: path.into(), source };
        let n = std::io::Read::read(&mut std::fs::File::open(path).map_err(io)?, &mut head)
            .map_err(io)?;
        if n == 8 && head == [0x89, b'H', b'D', b'F', b'\r', b'\n', 0x1a, b'\n'] {
            Ok(Self::Flow(FlowReader::open(path)?))
        } else {
            Ok(Self::Mpd(MpdReader::open(path)?))
        }
    }

    /// Where the next event starts: the byte offset of an MPD file, the event index of a flow
    /// file. Pass it to [`seek`](Self::seek) to continue later (a file that grew, a restart).
    pub fn position(&self) -> u64 {
        match self {
            Self::Mpd(reader) => reader.offset(),
            Self::Flow(reader) => reader.position(),
        }
    }

    /// Continues at a [`position`](Self::position).
    pub fn seek(&mut self, position: u64) -> Result<()> {
        match self {
            Self::Mpd(reader) => reader.seek(position),
            Self::Flow(reader) => {
                reader.seek(position);
                Ok(())
            }
        }
    }

    /// The Unix time (ms) of the first event, reading only that event; `None` for a file
    /// without events (yet). Leaves the reader after that event.
    pub fn first_unix_ms(&mut self) -> Result<Option<u64>> {
        match self {
            Self::Mpd(reader) => Ok(reader.next_event()?.map(|view| view.unix_ms)),
            Self::Flow(reader) => Ok(reader
                .next_event()?
                .map(|(e, _)| e.unix_ms.iter().copied().find(|t| *t != 0).unwrap_or(0))),
        }
    }

    /// Calls `f` for every event, in file order. MPD files stop quietly at a block still being
    /// written (see [`MpdReader::incomplete_tail`]).
    pub fn for_each_event(&mut self, mut f: impl FnMut(&LightEvent<'_>)) -> Result<()> {
        let mut buffers: Vec<Vec<i16>> = Vec::new();
        match self {
            Self::Mpd(reader) => loop {
                let path = reader.path().to_path_buf();
                let Some(view) = reader.next_event()? else { return Ok(()) };
                let malformed = |reason: String| IngestError::Mpd {
                    path: path.clone(),
                    offset: view.offset,
                    reason: format!("event {}: {reason}", view.event_number),
                };
                let mut event =
                    LightEvent { event: u64::from(view.event_number), ..LightEvent::default() };
                let mut slots: Vec<(u8, u8)> = Vec::new();
                let mut used = 0;
                for (adc, board) in view.boards().enumerate() {
                    let board = board.map_err(malformed)?;
                    if adc >= 8 {
                        return Err(malformed("more than 8 boards".into()));
                    }
                    event.boards += 1;
                    event.serial[adc] = board.serial;
                    if !board.present {
                        continue;
                    }
                    event.boards_present |= 1 << adc;
                    event.tai_s[adc] = u64::from(board.tai_s);
                    event.tai_ns[adc] = board.tai_ns;
                    for waveform in board.waveforms() {
                        let (channel, words) = waveform.map_err(malformed)?;
                        if used == buffers.len() {
                            buffers.push(Vec::new());
                        }
                        let buffer = &mut buffers[used];
                        buffer.clear();
                        buffer.extend(samples(words));
                        slots.push((adc as u8, channel));
                        used += 1;
                    }
                }
                event.unix_ms = view.unix_ms;
                event.waveforms = slots
                    .iter()
                    .zip(&buffers)
                    .map(|(&(adc, channel), s)| Waveform { adc, channel, samples: s })
                    .collect();
                f(&event);
            },
            Self::Flow(reader) => {
                let n = reader.samples_per_waveform;
                while let Some((e, all)) = reader.next_event()? {
                    let mut event =
                        LightEvent { event: e.event as u64, boards: 8, ..LightEvent::default() };
                    for adc in 0..8 {
                        if e.serial[adc] == 0 && e.unix_ms[adc] == 0 {
                            continue; // missing board: zeros
                        }
                        event.boards_present |= 1 << adc;
                        event.serial[adc] = e.serial[adc];
                        event.tai_s[adc] = e.tai_ns[adc] / 1_000_000_000;
                        event.tai_ns[adc] = (e.tai_ns[adc] % 1_000_000_000) as u32;
                        if event.unix_ms == 0 {
                            event.unix_ms = e.unix_ms[adc];
                        }
                        for channel in 0..64 {
                            if e.valid[adc][channel] {
                                let at = (adc * 64 + channel) * n;
                                event.waveforms.push(Waveform {
                                    adc: adc as u8,
                                    channel: channel as u8,
                                    samples: &all[at..at + n],
                                });
                            }
                        }
                    }
                    f(&event);
                }
                Ok(())
            }
        }
    }
}
