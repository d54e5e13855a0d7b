//! A stall watchdog for calls into HDF5. HDF5 is a C library: some damaged files make it loop
//! forever (a zeroed global heap collection sends `H5HG__cache_heap_deserialize` into an endless
//! loop; found by the corrupt-file campaign), and a thread stuck in C cannot be stopped. Readers
//! mark the HDF5 work they do with [`busy`]; a program that must never hang starts
//! [`spawn_watchdog`], which calls its handler (e.g. print the error naming the file, exit) once
//! one piece of such work has lasted longer than the limit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// One thread's HDF5 work: the file, what it does, since when.
type Work = (PathBuf, &'static str, Instant);

/// What each thread is doing in HDF5.
static BUSY: Mutex<Option<HashMap<ThreadId, Work>>> = Mutex::new(None);

/// Marks HDF5 work on `path` until dropped.
pub struct Busy {
    thread: ThreadId,
    previous: Option<Work>,
}

/// Marks the calling thread as working in HDF5 on `path` (`what`: e.g. "reading msgs") until the
/// guard is dropped. Nested marks restore the outer one.
pub fn busy(path: &Path, what: &'static str) -> Busy {
    let thread = std::thread::current().id();
    let mut map = BUSY.lock().unwrap_or_else(|e| e.into_inner());
    let previous =
        map.get_or_insert_with(HashMap::new).insert(thread, (path.into(), what, Instant::now()));
    Busy { thread, previous }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut map = BUSY.lock().unwrap_or_else(|e| e.into_inner());
        let map = map.get_or_insert_with(HashMap::new);
        match self.previous.take() {
            Some(outer) => {
                map.insert(self.thread, outer);
            }
            None => {
                map.remove(&self.thread);
            }
        }
    }
}

/// The longest-running HDF5 work, if it has lasted more than `limit`: (file, what, duration).
pub fn stalled(limit: Duration) -> Option<(PathBuf, &'static str, Duration)> {
    let map = BUSY.lock().unwrap_or_else(|e| e.into_inner());
    map.as_ref()?
        .values()
        .map(|(path, what, since)| (path.clone(), *what, since.elapsed()))
        .filter(|(_, _, elapsed)| *elapsed > limit)
        .max_by_key(|(_, _, elapsed)| *elapsed)
}

/// Starts a thread that calls `on_stall(file, what, duration)` when HDF5 work has lasted more
/// than `limit` (checked every quarter of it, at most every second). The handler is expected to
/// end the process: the stuck thread cannot be stopped.
pub fn spawn_watchdog(
    limit: Duration,
    on_stall: impl Fn(&Path, &str, Duration) + Send + 'static,
) -> std::io::Result<()> {
    let period = (limit / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    std::thread::Builder::new().name("larmon-hdf5-watchdog".into()).spawn(move || {
        loop {
            std::thread::sleep(period);
            if let Some((path, what, elapsed)) = stalled(limit) {
                on_stall(&path, what, elapsed);
            }
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test's own entry (other tests' threads read files at the same time).
    fn work_on(path: &Path, limit: Duration) -> Option<(&'static str, Duration)> {
        let map = BUSY.lock().unwrap_or_else(|e| e.into_inner());
        map.as_ref()?
            .values()
            .filter(|(p, _, since)| p == path && since.elapsed() > limit)
            .map(|(_, what, since)| (*what, since.elapsed()))
            .next()
    }

    #[test]
    fn busy_work_is_seen_once_it_lasts_and_forgotten_when_done() {
        let path = Path::new("/data/stuck.h5");
        {
            let _outer = busy(path, "opening");
            std::thread::sleep(Duration::from_millis(30));
            {
                let _inner = busy(path, "reading msgs");
                assert!(
                    work_on(path, Duration::from_millis(20)).is_none(),
                    "the inner work is new"
                );
                std::thread::sleep(Duration::from_millis(30));
                let (what, _) = work_on(path, Duration::from_millis(20)).unwrap();
                assert_eq!(what, "reading msgs");
                assert!(stalled(Duration::from_millis(20)).is_some());
            }
            // Back to the outer work, with its own start time.
            let (what, elapsed) = work_on(path, Duration::from_millis(20)).unwrap();
            assert_eq!(what, "opening");
            assert!(elapsed >= Duration::from_millis(60));
        }
        assert!(work_on(path, Duration::ZERO).is_none());
    }
}
