//! Read-ahead for packet files: a thread reads the next blocks of packed records from HDF5 (and
//! inflates them when the file is compressed) while the caller decodes the current one. HDF5
//! calls stay serialised by hdf5-metno's global lock; only decoding runs in parallel. At most
//! `DEPTH` blocks wait in the channel, so memory stays bounded.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use hdf5::{Dataset, Datatype};

use crate::error::{IngestError, Result};
use crate::hdf5_io::read_rows_raw;

const DEPTH: usize = 2;

/// Rows `start..end` as packed records.
pub(crate) struct Block {
    pub start: u64,
    pub end: u64,
    pub bytes: Vec<u8>,
}

/// A running read-ahead thread over rows `start..end` of a dataset.
pub(crate) struct ReadAhead {
    blocks: Option<Receiver<Result<Block>>>,
    recycle: Sender<Vec<u8>>,
    thread: Option<JoinHandle<()>>,
}

impl ReadAhead {
    /// Starts reading rows `start..end` in blocks of `block_rows`.
    pub fn start(
        path: PathBuf,
        dataset: Dataset,
        memory_type: Datatype,
        start: u64,
        end: u64,
        block_rows: u64,
    ) -> Self {
        let (block_tx, block_rx): (SyncSender<Result<Block>>, _) = sync_channel(DEPTH);
        let (recycle_tx, recycle_rx) = channel::<Vec<u8>>();
        let thread = std::thread::Builder::new()
            .name("larmon-read-ahead".into())
            .spawn(move || {
                let mut at = start;
                while at < end {
                    let stop = (at + block_rows).min(end);
                    let mut bytes = recycle_rx.try_recv().unwrap_or_default();
                    let read = read_rows_raw(
                        &dataset,
                        &memory_type,
                        at as usize,
                        stop as usize,
                        &mut bytes,
                    )
                    .map(|()| Block { start: at, end: stop, bytes })
                    .map_err(|source| IngestError::Read {
                        path: path.clone(),
                        dataset: "packets".into(),
                        start: at,
                        end: stop,
                        source: source.into(),
                    });
                    let failed = read.is_err();
                    if block_tx.send(read).is_err() || failed {
                        return; // the reader was dropped, or the error has been handed over
                    }
                    at = stop;
                }
            })
            .expect("spawning the read-ahead thread");
        Self { blocks: Some(block_rx), recycle: recycle_tx, thread: Some(thread) }
    }

    /// The next block, or `None` once every block of the range has been handed out.
    pub fn next(&mut self) -> Option<Result<Block>> {
        self.blocks.as_ref()?.recv().ok()
    }

    /// Gives a decoded block's buffer back for reuse.
    pub fn recycle(&self, bytes: Vec<u8>) {
        let _ = self.recycle.send(bytes);
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Closing the channel makes a thread blocked on `send` return; then wait for it.
        self.blocks = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
