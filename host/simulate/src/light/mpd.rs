//! Writer of the 2x2 light DAQ's MPD run files (`mpd_run_*.data`), the format larmon's reader
//! (`larmon_ingest::light::mpd`) and ndlar_flow's (adc64format `MPDReader`) read: a run start
//! block, one event block per trigger holding a device block per ADC64 board, a run stop block.
//! Layout: ../shared/fixtures/README.md ("PREFIX-light.data") and docs/data-model.md.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use larmon_ingest::light::mpd::{EVENT_MAGIC, RUN_START_MAGIC, RUN_STOP_MAGIC};

/// Device id of an ADC64 board.
pub const ADC64_DEVICE_ID: u32 = 0xDF;

/// One board's part of an event.
pub struct BoardData<'a> {
    /// Serial number.
    pub serial: u32,
    /// TAI seconds and nanoseconds of the trigger.
    pub tai: (u32, u32),
    /// Waveforms `(input, samples)` in ascending input order; empty for a board that sent
    /// nothing (a 20-byte payload: the time block with channel mask 0).
    pub waveforms: Vec<(u8, &'a [i16])>,
}

/// Streams an MPD file.
pub struct MpdWriter {
    path: PathBuf,
    file: BufWriter<File>,
    run: u32,
    block: Vec<u8>,
}

fn push(out: &mut Vec<u8>, words: &[u32]) {
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// `'Run#'` and `'Indx'` records, then `'JSON'` if any (space-padded to whole words).
fn run_records(run: u32, json: Option<&str>) -> Vec<u8> {
    let mut records = Vec::new();
    push(&mut records, &[u32::from_le_bytes(*b"Run#"), 4, run]);
    push(&mut records, &[u32::from_le_bytes(*b"Indx"), 4, 0]);
    if let Some(text) = json {
        let mut bytes = text.as_bytes().to_vec();
        bytes.resize(bytes.len().div_ceil(4) * 4, b' ');
        push(&mut records, &[u32::from_le_bytes(*b"JSON"), bytes.len() as u32]);
        records.extend(bytes);
    }
    records
}

impl MpdWriter {
    /// Creates the file and writes the run start block (run number, file index 0, `json`).
    pub fn create(path: &Path, run: u32, json: &str) -> std::io::Result<Self> {
        let mut writer = Self {
            path: path.into(),
            file: BufWriter::with_capacity(1 << 20, File::create(path)?),
            run,
            block: Vec::new(),
        };
        writer.write_block(RUN_START_MAGIC, &run_records(run, Some(json)))?;
        Ok(writer)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_block(&mut self, magic: u32, payload: &[u8]) -> std::io::Result<()> {
        self.file.write_all(&magic.to_le_bytes())?;
        self.file.write_all(&(payload.len() as u32).to_le_bytes())?;
        self.file.write_all(payload)
    }

    /// Writes one event: its number, Unix time in ms and every board in file order.
    pub fn write_event(
        &mut self,
        event_number: u32,
        unix_ms: u64,
        boards: &[BoardData<'_>],
    ) -> std::io::Result<()> {
        let mut block = std::mem::take(&mut self.block);
        block.clear();
        push(&mut block, &[event_number, unix_ms as u32, (unix_ms >> 32) as u32]);
        for board in boards {
            let (tai_s, tai_ns) = board.tai;
            let mask = board.waveforms.iter().fold(0u64, |m, (c, _)| m | 1u64 << c);
            let payload_bytes: usize =
                20 + board.waveforms.iter().map(|(_, s)| 12 + 2 * s.len()).sum::<usize>();
            push(&mut block, &[board.serial, ADC64_DEVICE_ID << 24 | payload_bytes as u32]);
            push(&mut block, &[4 << 2, tai_s, tai_ns << 2, mask as u32, (mask >> 32) as u32]);
            for &(channel, samples) in &board.waveforms {
                let words = samples.len().div_ceil(2) as u32;
                push(&mut block, &[u32::from(channel) << 24 | (2 + words) << 2 | 1]);
                push(&mut block, &[tai_s, tai_ns << 2]);
                for pair in samples.chunks(2) {
                    let high = pair[0] as u16 as u32;
                    let low = pair.get(1).map_or(0, |&s| s as u16 as u32);
                    push(&mut block, &[high << 16 | low]);
                }
            }
        }
        let result = self.write_block(EVENT_MAGIC, &block);
        self.block = block;
        result
    }

    /// Hands what was written to the OS (a reader sees whole events).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }

    /// Writes the run stop block and flushes the file to disk.
    pub fn finish(mut self) -> std::io::Result<PathBuf> {
        let records = run_records(self.run, None);
        self.write_block(RUN_STOP_MAGIC, &records)?;
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use larmon_ingest::light::LightFile;

    /// What is written reads back sample for sample through larmon's reader, with a missing
    /// board, the run blocks and the TAI times.
    #[test]
    fn written_events_read_back_exactly() {
        let dir = std::env::temp_dir().join(format!("larmon-mpd-write-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mpd_run_t_rctl_9_p0.data");
        let a: Vec<i16> = vec![-28000, -27996, 32764, -32768, 4, -4];
        let b: Vec<i16> = vec![-100, 100, 0, 8, 12, 16];
        let mut writer = MpdWriter::create(&path, 9, "{\"x\": 1}").unwrap();
        let boards = [
            BoardData { serial: 11, tai: (1_700_000_037, 500), waveforms: vec![(4, &a), (63, &b)] },
            BoardData { serial: 12, tai: (1_700_000_037, 500), waveforms: vec![] },
        ];
        writer.write_event(0, 1_700_000_000_000, &boards).unwrap();
        writer.write_event(1, 1_700_000_000_001, &boards[..1]).unwrap();
        writer.finish().unwrap();

        let mut file = LightFile::open(&path).unwrap();
        let mut seen = Vec::new();
        file.for_each_event(|event| {
            let waveforms: Vec<(u8, u8, Vec<i16>)> =
                event.waveforms.iter().map(|w| (w.adc, w.channel, w.samples.to_vec())).collect();
            seen.push((
                event.event,
                event.unix_ms,
                event.boards_present,
                event.tai_ns[0],
                waveforms,
            ));
        })
        .unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!((seen[0].0, seen[0].1, seen[0].2, seen[0].3), (0, 1_700_000_000_000, 0b01, 500));
        assert_eq!(seen[0].4, vec![(0, 4, a.clone()), (0, 63, b.clone())]);
        assert_eq!(seen[1].4.len(), 2);
        let LightFile::Mpd(reader) = file else { panic!("an MPD file") };
        assert_eq!(reader.run_start().unwrap().run, Some(9));
        assert_eq!(reader.run_start().unwrap().json.as_deref(), Some("{\"x\": 1}"));
        assert!(reader.run_stop().is_some());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
