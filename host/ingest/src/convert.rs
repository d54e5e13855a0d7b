//! Conversion of a raw file (or any 2.x packet file) into a canonical 2.4 packet file — what
//! `larmon convert` runs. Two stages overlap on two cores: a thread reads and decodes batches
//! while the caller's thread encodes and writes the previous one. HDF5 calls stay serialised by
//! hdf5-metno's lock; decoding and encoding run in parallel with them. At most two batches are
//! in flight, so memory stays bounded.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel};

use larmon_decode::{PacketColumns, PacketRow};

use crate::error::Result;
use crate::read::{LarpixReader, ReadOptions};
use crate::write::{PacketFileWriter, WriteOptions};

/// What a conversion did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvertSummary {
    /// The packet file written.
    pub output: PathBuf,
    /// Rows written.
    pub rows: u64,
    /// Raw input: decoding counts (unknown words, non-data messages); `None` for packet input.
    pub decode_stats: Option<larmon_decode::DecodeStats>,
}

/// A batch in flight, in the shape its reader produces.
enum Batch {
    Rows(Vec<PacketRow>),
    Columns(Box<PacketColumns>),
}

/// Converts `input` into the packet file `output`. `progress(done, total)` is called after each
/// batch with messages (raw input) or rows (packet input). On any error the output is not left
/// behind.
pub fn convert(
    input: &Path,
    output: &Path,
    read: &ReadOptions,
    write: &WriteOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<ConvertSummary> {
    let mut reader = LarpixReader::open(input, read)?;
    let mut writer = PacketFileWriter::create(output, write)?;
    let (full_tx, full_rx) = sync_channel::<Result<(Batch, u64, u64)>>(1);
    let (empty_tx, empty_rx) = channel::<Batch>();
    let decode_stats = std::thread::scope(|scope| {
        let decoder = scope.spawn(move || {
            loop {
                let recycled = empty_rx.try_recv().ok();
                let next = match &mut reader {
                    LarpixReader::Raw(raw) => {
                        let mut rows = match recycled {
                            Some(Batch::Rows(rows)) => rows,
                            _ => Vec::new(),
                        };
                        raw.read_rows_into(&mut rows).map(|more| more.then_some(Batch::Rows(rows)))
                    }
                    LarpixReader::Packets(packets) => {
                        let mut columns = match recycled {
                            Some(Batch::Columns(columns)) => columns,
                            _ => Box::default(),
                        };
                        packets
                            .read_batch_into(&mut columns)
                            .map(|more| more.then_some(Batch::Columns(columns)))
                    }
                };
                let message = match next {
                    Ok(None) => break,
                    Ok(Some(batch)) => Ok((batch, reader.progress_done(), reader.progress_total())),
                    Err(e) => Err(e),
                };
                let failed = message.is_err();
                if full_tx.send(message).is_err() || failed {
                    break;
                }
            }
            match &reader {
                LarpixReader::Raw(raw) => Some(raw.stats().clone()),
                LarpixReader::Packets(_) => None,
            }
        });
        for message in full_rx {
            let (batch, done, total) = message?;
            match &batch {
                Batch::Rows(rows) => writer.append_rows(rows)?,
                Batch::Columns(columns) => writer.append(columns)?,
            }
            progress(done, total);
            let _ = empty_tx.send(batch);
        }
        Ok(decoder.join().expect("the decoding thread does not panic"))
    })?;
    let rows = writer.rows();
    let output = writer.finish()?;
    Ok(ConvertSummary { output, rows, decode_stats })
}
