//! Fuzzes the PACMAN message decoder with arbitrary bytes: it must never panic, must append
//! nothing on error, and on success must append one timestamp row plus one row per D/T/S word.
#![no_main]

use larmon_decode::{DecodeStats, decode_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&io_group, msg)) = data.split_first() else { return };
    let mut rows = Vec::new();
    let mut stats = DecodeStats::default();
    match decode_message(msg, io_group, 0, &mut rows, &mut stats) {
        Err(_) => assert!(rows.is_empty() && stats.messages == 0),
        Ok(()) => {
            let words = (msg.len() - 8) / 16;
            let known = if msg[0] == b'D' {
                msg[8..].chunks_exact(16).filter(|w| matches!(w[0], b'D' | b'T' | b'S')).count()
            } else {
                0
            };
            assert_eq!(msg.len(), 8 + 16 * words);
            assert_eq!(rows.len(), 1 + known);
            assert_eq!(rows[0].packet_type, 4);
            assert!(rows.iter().all(|r| r.io_group == io_group));
            assert_eq!(stats.data_words + stats.trigger_words + stats.sync_words, known as u64);
        }
    }
});
