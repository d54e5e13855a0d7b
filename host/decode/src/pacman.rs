//! PACMAN raw messages: the 8-byte header and the 16-byte data, trigger and sync words, and their
//! conversion into packet rows in larpix-control's order (larpix-formats.md §1.3, §1.5):
//! one type-4 row per message carrying its Unix time, then one row per word.

use crate::columns::PacketRow;
use crate::packet::LArPixPacket;

/// Bytes in a message header.
pub const HEADER_LEN: usize = 8;
/// Bytes in one message word.
pub const WORD_LEN: usize = 16;

/// Message type byte of data messages (`'D'`).
pub const MSG_TYPE_DATA: u8 = b'D';
/// Word type byte of LArPix data words (`'D'`).
pub const WORD_TYPE_DATA: u8 = b'D';
/// Word type byte of trigger words (`'T'`).
pub const WORD_TYPE_TRIGGER: u8 = b'T';
/// Word type byte of sync words (`'S'`).
pub const WORD_TYPE_SYNC: u8 = b'S';

/// Packet-table type of the per-message Unix time row (defined with the rows).
pub use crate::columns::TIMESTAMP_ROW;
/// Packet-table type of sync rows.
pub const SYNC_ROW: u8 = 6;
/// Packet-table type of trigger rows.
pub const TRIGGER_ROW: u8 = 7;

/// Why one message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The message is shorter than a header.
    #[error("message is {len} bytes, shorter than the {HEADER_LEN}-byte PACMAN header")]
    TooShortForHeader {
        /// Its length in bytes.
        len: usize,
    },
    /// The header's word count does not match the message length.
    #[error(
        "message is {len} bytes but its header declares {declared_words} words \
         ({expected} bytes): {}",
        if len < expected { "truncated message" } else { "trailing bytes after the last word" }
    )]
    LengthMismatch {
        /// Its length in bytes.
        len: usize,
        /// Words declared in bytes 6–7 of the header.
        declared_words: u16,
        /// The length those words imply.
        expected: usize,
    },
}

/// The decoded 8-byte message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageHeader {
    /// `b'D'` data, `b'?'` request, `b'!'` reply.
    pub msg_type: u8,
    /// PACMAN wall-clock time, Unix seconds.
    pub unix_time: u32,
    /// Number of 16-byte words that follow.
    pub words: u16,
}

impl MessageHeader {
    /// Parses the header and checks the message length against its word count.
    pub fn parse(msg: &[u8]) -> Result<Self, MessageError> {
        if msg.len() < HEADER_LEN {
            return Err(MessageError::TooShortForHeader { len: msg.len() });
        }
        let header = MessageHeader {
            msg_type: msg[0],
            unix_time: u32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]),
            words: u16::from_le_bytes([msg[6], msg[7]]),
        };
        let expected = HEADER_LEN + WORD_LEN * header.words as usize;
        if msg.len() != expected {
            return Err(MessageError::LengthMismatch {
                len: msg.len(),
                declared_words: header.words,
                expected,
            });
        }
        Ok(header)
    }
}

/// Counts kept while decoding a stream of messages: what was seen and what was skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Messages decoded.
    pub messages: u64,
    /// LArPix data words.
    pub data_words: u64,
    /// Trigger words.
    pub trigger_words: u64,
    /// Sync words (PPS, heartbeat, clock switch).
    pub sync_words: u64,
    /// Words with a type byte other than D/T/S; they produce no row.
    pub unknown_words: u64,
    /// Messages whose type is not `'D'`; their words produce no rows.
    pub non_data_messages: u64,
    /// The first unknown word seen: (message index in the stream, word index, type byte).
    pub first_unknown_word: Option<(u64, u16, u8)>,
}

impl DecodeStats {
    /// Adds another set of counts (e.g. from another file) to this one.
    pub fn merge(&mut self, other: &DecodeStats) {
        self.messages += other.messages;
        self.data_words += other.data_words;
        self.trigger_words += other.trigger_words;
        self.sync_words += other.sync_words;
        self.unknown_words += other.unknown_words;
        self.non_data_messages += other.non_data_messages;
        if self.first_unknown_word.is_none() {
            self.first_unknown_word = other.first_unknown_word;
        }
    }
}

#[inline(always)]
fn u32_at(word: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([word[at], word[at + 1], word[at + 2], word[at + 3]])
}

/// Decodes one PACMAN message read from `io_group` and appends its rows to `out`.
///
/// Rows are produced row by row (one push each, the fast path); callers turn them into columns
/// with [`PacketColumns::extend_from_rows`](crate::PacketColumns::extend_from_rows).
/// `message_index` only labels unknown words in `stats`. On error nothing is appended.
pub fn decode_message(
    msg: &[u8],
    io_group: u8,
    message_index: u64,
    out: &mut Vec<PacketRow>,
    stats: &mut DecodeStats,
) -> Result<(), MessageError> {
    let header = MessageHeader::parse(msg)?;
    stats.messages += 1;
    let unix_time = u64::from(header.unix_time);
    out.reserve(header.words as usize + 1);
    out.push(PacketRow {
        io_group,
        packet_type: TIMESTAMP_ROW,
        timestamp: unix_time,
        unix_time,
        ..PacketRow::default()
    });
    if header.msg_type != MSG_TYPE_DATA {
        stats.non_data_messages += 1;
        return Ok(());
    }
    for (word_index, word) in msg[HEADER_LEN..].chunks_exact(WORD_LEN).enumerate() {
        let row = match word[0] {
            WORD_TYPE_DATA => {
                stats.data_words += 1;
                let p = LArPixPacket::from_bytes(word[8..16].try_into().expect("8 bytes"));
                PacketRow {
                    io_group,
                    io_channel: word[1],
                    chip_id: p.chip_id(),
                    packet_type: p.packet_type(),
                    downstream_marker: p.downstream_marker(),
                    parity: p.parity(),
                    valid_parity: u8::from(p.has_valid_parity()),
                    channel_id: p.channel_id(),
                    timestamp: u64::from(p.timestamp()),
                    dataword: p.dataword(),
                    trigger_type: p.trigger_type(),
                    local_fifo: p.local_fifo(),
                    shared_fifo: p.shared_fifo(),
                    register_address: p.register_address(),
                    register_data: p.register_data(),
                    first_packet: p.first_packet(),
                    receipt_timestamp: u32_at(word, 2),
                    unix_time,
                    ..PacketRow::default()
                }
            }
            WORD_TYPE_TRIGGER => {
                stats.trigger_words += 1;
                PacketRow {
                    io_group,
                    packet_type: TRIGGER_ROW,
                    trigger_type: word[1],
                    timestamp: u64::from(u32_at(word, 4)),
                    unix_time,
                    ..PacketRow::default()
                }
            }
            WORD_TYPE_SYNC => {
                stats.sync_words += 1;
                PacketRow {
                    io_group,
                    packet_type: SYNC_ROW,
                    trigger_type: word[1],
                    dataword: word[2] & 1,
                    timestamp: u64::from(u32_at(word, 4)),
                    unix_time,
                    ..PacketRow::default()
                }
            }
            other => {
                stats.unknown_words += 1;
                if stats.first_unknown_word.is_none() {
                    stats.first_unknown_word = Some((message_index, word_index as u16, other));
                }
                continue;
            }
        };
        out.push(row);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// Message 0 of the 2x2 golden vectors (larpix-formats.md §1.6).
    fn decode(
        msg: &[u8],
        io_group: u8,
        index: u64,
        stats: &mut DecodeStats,
    ) -> Result<Vec<PacketRow>, MessageError> {
        let mut rows = Vec::new();
        decode_message(msg, io_group, index, &mut rows, stats).map(|_| rows)
    }

    #[test]
    fn golden_message_gives_timestamp_row_then_data_row() {
        let msg = hex("44433111640001004411e2695a0000005004bc5e5a8023c0");
        let mut stats = DecodeStats::default();
        let out = decode(&msg, 1, 0, &mut stats).unwrap();
        assert_eq!(out.len(), 2);
        let t = out[0];
        assert_eq!((t.io_group, t.packet_type, t.timestamp), (1, 4, 1_678_848_323));
        let d = out[1];
        assert_eq!(
            (d.io_group, d.io_channel, d.chip_id, d.packet_type, d.downstream_marker),
            (1, 17, 20, 0, 1)
        );
        assert_eq!((d.parity, d.valid_parity, d.channel_id, d.timestamp), (1, 1, 1, 5_922_492));
        assert_eq!((d.dataword, d.register_address, d.register_data), (35, 1, 175));
        assert_eq!((d.first_packet, d.receipt_timestamp), (1, 5_925_346));
        assert_eq!(d.unix_time, 1_678_848_323);
        assert_eq!(stats.data_words, 1);
    }

    #[test]
    fn trigger_and_sync_words_keep_full_32_bit_timestamp() {
        let mut msg = vec![b'D', 1, 0, 0, 0, 0, 2, 0];
        msg.extend_from_slice(&[b'T', 2, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
        msg.extend_from_slice(&[b'S', b'S', 3, 0, 0x7f, 0x96, 0x98, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let out = decode(&msg, 2, 0, &mut DecodeStats::default()).unwrap();
        let trig = out[1];
        assert_eq!((trig.packet_type, trig.trigger_type, trig.timestamp), (7, 2, 0xffff_ffff));
        let sync = out[2];
        assert_eq!((sync.packet_type, sync.trigger_type, sync.dataword), (6, 83, 1));
        assert_eq!(sync.timestamp, 9_999_999);
    }

    #[test]
    fn unknown_words_are_counted_not_emitted() {
        let mut msg = vec![b'D', 0, 0, 0, 0, 0, 1, 0];
        msg.extend_from_slice(&[b'Z'; 16]);
        let mut stats = DecodeStats::default();
        let out = decode(&msg, 1, 7, &mut stats).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(stats.unknown_words, 1);
        assert_eq!(stats.first_unknown_word, Some((7, 0, b'Z')));
    }

    #[test]
    fn short_and_long_messages_are_rejected_without_output() {
        let mut out = Vec::new();
        let mut stats = DecodeStats::default();
        let short = [b'D', 0, 0, 0, 0, 0, 2, 0, b'D', 0];
        let err = decode_message(&short, 1, 0, &mut out, &mut stats).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        assert!(matches!(
            decode_message(&[b'D', 0], 1, 0, &mut out, &mut stats),
            Err(MessageError::TooShortForHeader { len: 2 })
        ));
        let long = [b'D', 0, 0, 0, 0, 0, 0, 0, 1];
        let err = decode_message(&long, 1, 0, &mut out, &mut stats).unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
        assert!(out.is_empty());
        assert_eq!(stats.messages, 0);
    }
}
