//! Decode-ahead for raw and packet files: a thread owns the [`LarpixReader`], reads and decodes
//! the next batches of packet columns while the caller calibrates the current one — the ingest
//! stage of the pipeline ingest → calibrate → plugins. At most [`DEPTH`] decoded batches wait,
//! so memory stays bounded; batches, errors and the end arrive in file order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use larmon_decode::PacketColumns;

use super::{FileKind, LarpixReader};
use crate::error::Result;

/// Decoded batches waiting for the caller.
const DEPTH: usize = 2;

/// A [`LarpixReader`] read and decoded on its own thread, one batch ahead of the caller.
pub struct DecodeAhead {
    kind: FileKind,
    progress_total: u64,
    /// The reader's progress after the last batch handed over.
    progress_done: u64,
    /// The reader's progress after each batch it decoded, in order.
    progress: Arc<AtomicU64>,
    /// Batches with the reader's progress after each; `None` once dropped.
    batches: Option<Receiver<(Result<PacketColumns>, u64)>>,
    thread: Option<JoinHandle<()>>,
}

impl DecodeAhead {
    /// Starts reading `reader` from where it is.
    pub fn start(mut reader: LarpixReader) -> Self {
        let (kind, progress_total) = (reader.kind(), reader.progress_total());
        let progress_done = reader.progress_done();
        let progress = Arc::new(AtomicU64::new(progress_done));
        let (sender, batches) = sync_channel(DEPTH);
        let decoded = Arc::clone(&progress);
        let thread = std::thread::Builder::new()
            .name("larmon-decode-ahead".into())
            .spawn(move || {
                loop {
                    let batch = reader.next_batch();
                    let done = reader.progress_done();
                    decoded.store(done, Ordering::Relaxed);
                    let (batch, last) = match batch {
                        Ok(Some(columns)) => (Ok(columns), false),
                        Ok(None) => break,
                        Err(error) => (Err(error), true),
                    };
                    // A send fails when the caller hung up: nothing more to do.
                    if sender.send((batch, done)).is_err() || last {
                        break;
                    }
                }
            })
            .expect("spawning a thread");
        Self {
            kind,
            progress_total,
            progress_done,
            progress,
            batches: Some(batches),
            thread: Some(thread),
        }
    }

    /// The next batch of packet columns, in file order, or `None` at the end; a reading error
    /// is returned once, and the end follows it.
    pub fn next_batch(&mut self) -> Result<Option<PacketColumns>> {
        let Some(batches) = &self.batches else { return Ok(None) };
        match batches.recv() {
            Ok((batch, done)) => {
                self.progress_done = done;
                batch.map(Some)
            }
            Err(_) => {
                // The thread ended: at the end of the file, or by a panic, raised here.
                if let Some(Err(panic)) = self.thread.take().map(JoinHandle::join) {
                    std::panic::resume_unwind(panic);
                }
                self.progress_done = self.progress.load(Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    /// Raw or packet file.
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    /// Units of progress in the file (messages of a raw file, rows of a packet file).
    pub fn progress_total(&self) -> u64 {
        self.progress_total
    }

    /// Units of progress in the batches handed over so far.
    pub fn progress_done(&self) -> u64 {
        self.progress_done
    }
}

impl Drop for DecodeAhead {
    fn drop(&mut self) {
        // Hanging up ends the thread once its batch in progress is decoded; waiting for it
        // closes the file before the reader is gone, as a reader on this thread would.
        self.batches.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
