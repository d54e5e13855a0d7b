//! Decode-ahead for raw and packet files: a thread owns the [`LarpixReader`], reads and decodes
//! the next batches of packet columns while the caller calibrates the current one — the ingest
//! stage of the pipeline ingest → calibrate → plugins. At most [`DEPTH`] decoded batches wait,
//! so memory stays bounded; batches, errors and the end arrive in file order.

use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use larmon_decode::PacketColumns;

use super::{FileKind, LarpixReader};
use crate::error::Result;

/// Decoded batches waiting for the caller.
const DEPTH: usize = 2;

/// What the reader's thread hands over: a batch, an error or the end, with the reader's
/// progress after it.
type Step = (Result<Option<PacketColumns>>, u64);

/// A [`LarpixReader`] read and decoded on its own thread, one batch ahead of the caller.
pub struct DecodeAhead {
    kind: FileKind,
    progress_total: u64,
    /// The reader's progress after the last step handed over.
    progress_done: u64,
    /// The reader's steps, in order; `None` after the end or an error, and once dropped.
    steps: Option<Receiver<Step>>,
    thread: Option<JoinHandle<()>>,
}

impl DecodeAhead {
    /// Starts reading `reader` from where it is.
    pub fn start(mut reader: LarpixReader) -> Self {
        let (kind, progress_total) = (reader.kind(), reader.progress_total());
        let progress_done = reader.progress_done();
        let (sender, steps) = sync_channel::<Step>(DEPTH);
        let thread = std::thread::Builder::new()
            .name("larmon-decode-ahead".into())
            .spawn(move || {
                loop {
                    let batch = reader.next_batch();
                    let more = matches!(batch, Ok(Some(_)));
                    // A send fails when the caller hung up: nothing more to do.
                    if sender.send((batch, reader.progress_done())).is_err() || !more {
                        break;
                    }
                }
            })
            .expect("spawning a thread");
        Self { kind, progress_total, progress_done, steps: Some(steps), thread: Some(thread) }
    }

    /// The next batch of packet columns, in file order, or `None` at the end; a reading error
    /// is returned once, and the end follows it.
    pub fn next_batch(&mut self) -> Result<Option<PacketColumns>> {
        let Some(steps) = &self.steps else { return Ok(None) };
        match steps.recv() {
            Ok((batch, done)) => {
                self.progress_done = done;
                if !matches!(batch, Ok(Some(_))) {
                    self.steps = None;
                }
                batch
            }
            Err(_) => {
                // The thread ended without handing over the end: it panicked, raised here.
                self.steps = None;
                if let Some(Err(panic)) = self.thread.take().map(JoinHandle::join) {
                    std::panic::resume_unwind(panic);
                }
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
        self.steps.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
