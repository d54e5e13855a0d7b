//! The sandbox's own limits, where wasmtime's stock ones fall short:
//! - [`TotalLimiter`]: one memory cap over everything an instance allocates — all its linear
//!   memories together and its tables (a pointer per element) — where wasmtime's `StoreLimits`
//!   caps each linear memory on its own and tables not by size;
//! - [`RunBudget`]: the time a plugin may spend in calls over a whole run, shared by all its
//!   instances of that run (a plugin slow on every batch cannot stretch a run without end);
//! - [`BoundedLog`]: stdout/stderr that keep the first bytes and count the rest, never failing a
//!   write (a chatty plugin is not killed by a broken pipe).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Bytes counted per table element (wasmtime stores a pointer per element).
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// Counts every byte of linear memory and table an instance grows, against one cap.
#[derive(Debug)]
pub(crate) struct TotalLimiter {
    limit_bytes: usize,
    used_bytes: usize,
    max_instances: usize,
    max_tables: usize,
    max_memories: usize,
}

impl TotalLimiter {
    pub(crate) fn new(limit_bytes: usize) -> Self {
        Self { limit_bytes, used_bytes: 0, max_instances: 64, max_tables: 64, max_memories: 16 }
    }

    /// Bytes grown so far.
    pub(crate) fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    fn grow(&mut self, what: &str, from: usize, to: usize) -> wasmtime::Result<bool> {
        let total = self.used_bytes.saturating_add(to.saturating_sub(from));
        if total > self.limit_bytes {
            // An error (not `false`) so the guest traps here and the reason is precise.
            return Err(wasmtime::format_err!(
                "memory limit: growing a {what} would take the instance to {} MiB, over {} MiB",
                total >> 20,
                self.limit_bytes >> 20
            ));
        }
        self.used_bytes = total;
        Ok(true)
    }
}

impl ResourceLimiter for TotalLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow("linear memory", current, desired)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(
            "table",
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }

    fn instances(&self) -> usize {
        self.max_instances
    }
    fn tables(&self) -> usize {
        self.max_tables
    }
    fn memories(&self) -> usize {
        self.max_memories
    }
}

/// Time a plugin may spend in calls (wasm and the host calls it makes) during one run, shared by
/// all its instances of that run.
#[derive(Debug)]
pub struct RunBudget {
    limit: Duration,
    spent: Mutex<Duration>,
}

impl RunBudget {
    /// A budget of `limit`.
    pub fn new(limit: Duration) -> Arc<Self> {
        Arc::new(Self { limit, spent: Mutex::new(Duration::ZERO) })
    }
    /// The budget.
    pub fn limit(&self) -> Duration {
        self.limit
    }
    /// Time spent so far.
    pub fn spent(&self) -> Duration {
        *self.spent.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Time left.
    pub fn remaining(&self) -> Duration {
        self.limit.saturating_sub(self.spent())
    }
    pub(crate) fn charge(&self, used: Duration) {
        *self.spent.lock().unwrap_or_else(|e| e.into_inner()) += used;
    }
}

#[derive(Debug, Default)]
struct LogBuffer {
    bytes: Vec<u8>,
    dropped: u64,
    /// Bytes handed out by [`BoundedLog::take`]: they still count against the capacity.
    taken: usize,
}

/// A guest's stdout or stderr: keeps the first `capacity` bytes, counts what comes after, and
/// always accepts a write.
#[derive(Clone, Debug)]
pub(crate) struct BoundedLog {
    buffer: Arc<Mutex<LogBuffer>>,
    capacity: usize,
}

impl BoundedLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { buffer: Arc::default(), capacity }
    }

    fn accept(&self, bytes: &[u8]) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.capacity.saturating_sub(buffer.taken + buffer.bytes.len());
        let kept = bytes.len().min(room);
        buffer.bytes.extend_from_slice(&bytes[..kept]);
        buffer.dropped += (bytes.len() - kept) as u64;
    }

    /// What was kept and how many bytes were dropped after it, emptied (the capacity left
    /// stays what it was).
    pub(crate) fn take(&self) -> (Vec<u8>, u64) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        buffer.taken += buffer.bytes.len();
        (std::mem::take(&mut buffer.bytes), std::mem::take(&mut buffer.dropped))
    }

    /// What was kept, and how many bytes were dropped after it.
    pub(crate) fn contents(&self) -> (Vec<u8>, u64) {
        let buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        (buffer.bytes.clone(), buffer.dropped)
    }
}

impl OutputStream for BoundedLog {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.accept(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 << 10)
    }
}

#[async_trait::async_trait]
impl Pollable for BoundedLog {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for BoundedLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.accept(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for BoundedLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for BoundedLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_and_tables_share_one_cap() {
        let mut limiter = TotalLimiter::new(64 << 20);
        // Eight memories of 8 MiB each fit exactly; a ninth byte page does not.
        for _ in 0..8 {
            assert!(limiter.memory_growing(0, 8 << 20, None).unwrap());
        }
        assert_eq!(limiter.used_bytes(), 64 << 20);
        let err = limiter.memory_growing(0, 64 << 10, None).unwrap_err().to_string();
        assert!(err.contains("memory limit") && err.contains("64 MiB"), "{err}");
        // Tables count toward the same cap.
        let mut limiter = TotalLimiter::new(64 << 20);
        assert!(limiter.table_growing(0, 1 << 20, None).unwrap()); // 8 MiB of pointers
        assert!(limiter.table_growing(1 << 20, 9 << 20, None).is_err());
        assert_eq!(limiter.used_bytes(), 8 << 20);
    }

    #[test]
    fn the_log_keeps_its_first_bytes_and_never_refuses() {
        let mut log = BoundedLog::new(10);
        for _ in 0..100 {
            OutputStream::write(&mut log, bytes::Bytes::from_static(b"abcdef")).unwrap();
        }
        let (kept, dropped) = log.contents();
        assert_eq!((kept, dropped), (b"abcdefabcd".to_vec(), 590));
    }
}
