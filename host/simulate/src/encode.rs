//! Encoders of the wire formats the DAQ writes (larpix-formats.md §1): 64-bit LArPix v2 data
//! packets with odd parity, and PACMAN messages of 16-byte data, trigger and sync words behind
//! an 8-byte header. The decoders in `larmon-decode` read them back (tested below).

use larmon_decode::pacman::{HEADER_LEN, MSG_TYPE_DATA, WORD_LEN, WORD_TYPE_DATA};
use larmon_decode::pacman::{WORD_TYPE_SYNC, WORD_TYPE_TRIGGER};

/// Fields of a LArPix v2 data packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataPacket {
    /// Chip id (8 bits).
    pub chip_id: u8,
    /// Channel id (6 bits).
    pub channel_id: u8,
    /// Timestamp in clock ticks since the last PPS reset (31 bits).
    pub timestamp: u32,
    /// ADC value.
    pub dataword: u8,
    /// 0 self, 1 external, 2 cross, 3 periodic trigger.
    pub trigger_type: u8,
    /// Local FIFO flag: 1 half full, 2 full.
    pub local_fifo: u8,
    /// Shared FIFO flag: 1 half full, 2 full.
    pub shared_fifo: u8,
}

impl DataPacket {
    /// The 64-bit word with the parity bit set for odd parity, first-packet and downstream
    /// markers set as the chips send them.
    pub fn word(&self) -> u64 {
        let mut w = u64::from(self.chip_id) << 2
            | u64::from(self.channel_id & 0x3f) << 10
            | u64::from(self.timestamp & 0x7fff_ffff) << 16
            | 1 << 47
            | u64::from(self.dataword) << 48
            | u64::from(self.trigger_type & 3) << 56
            | u64::from(self.local_fifo & 3) << 58
            | u64::from(self.shared_fifo & 3) << 60
            | 1 << 62;
        if w.count_ones() % 2 == 0 {
            w |= 1 << 63;
        }
        w
    }
}

/// A 16-byte data word: io_channel, receipt timestamp, packet.
pub fn data_word(io_channel: u8, receipt_timestamp: u32, packet: u64) -> [u8; WORD_LEN] {
    let mut word = [0u8; WORD_LEN];
    word[0] = WORD_TYPE_DATA;
    word[1] = io_channel;
    word[2..6].copy_from_slice(&receipt_timestamp.to_le_bytes());
    word[8..16].copy_from_slice(&packet.to_le_bytes());
    word
}

/// A 16-byte trigger word.
pub fn trigger_word(trigger_type: u8, timestamp: u32) -> [u8; WORD_LEN] {
    let mut word = [0u8; WORD_LEN];
    word[0] = WORD_TYPE_TRIGGER;
    word[1] = trigger_type;
    word[4..8].copy_from_slice(&timestamp.to_le_bytes());
    word
}

/// A 16-byte sync word: `kind` b'S' (PPS), b'H' (heartbeat) or b'C' (clock switch).
pub fn sync_word(kind: u8, clock_source: u8, timestamp: u32) -> [u8; WORD_LEN] {
    let mut word = [0u8; WORD_LEN];
    word[0] = WORD_TYPE_SYNC;
    word[1] = kind;
    word[2] = clock_source;
    word[4..8].copy_from_slice(&timestamp.to_le_bytes());
    word
}

/// A data message: header ('D', Unix time, word count) and the words.
pub fn message(unix_time: u32, words: &[[u8; WORD_LEN]]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(HEADER_LEN + WORD_LEN * words.len());
    msg.push(MSG_TYPE_DATA);
    msg.extend_from_slice(&unix_time.to_le_bytes());
    msg.push(0);
    msg.extend_from_slice(&(words.len() as u16).to_le_bytes());
    for word in words {
        msg.extend_from_slice(word);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use larmon_decode::pacman::decode_message;
    use larmon_decode::{DecodeStats, LArPixPacket};

    #[test]
    fn messages_decode_back_to_the_fields_written() {
        let packet = DataPacket {
            chip_id: 87,
            channel_id: 61,
            timestamp: 9_999_999,
            dataword: 201,
            trigger_type: 3,
            local_fifo: 1,
            shared_fifo: 2,
        };
        let words = [
            data_word(7, 1_234_567, packet.word()),
            trigger_word(2, 42),
            sync_word(b'S', 0, 9_999_999),
        ];
        let msg = message(1_700_000_000, &words);
        let (mut rows, mut stats) = (Vec::new(), DecodeStats::default());
        decode_message(&msg, 2, 0, &mut rows, &mut stats).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!((rows[0].packet_type, rows[0].timestamp), (4, 1_700_000_000));
        let d = &rows[1];
        assert_eq!((d.io_group, d.io_channel, d.chip_id, d.channel_id), (2, 7, 87, 61));
        assert_eq!((d.timestamp, d.dataword, d.trigger_type), (9_999_999, 201, 3));
        assert_eq!((d.local_fifo, d.shared_fifo, d.valid_parity, d.first_packet), (1, 2, 1, 1));
        assert_eq!(d.receipt_timestamp, 1_234_567);
        assert_eq!((rows[2].packet_type, rows[2].trigger_type, rows[2].timestamp), (7, 2, 42));
        assert_eq!(
            (rows[3].packet_type, rows[3].trigger_type, rows[3].timestamp),
            (6, b'S', 9_999_999)
        );
        assert!(LArPixPacket(packet.word()).has_valid_parity());
        assert!(!LArPixPacket(packet.word() ^ 1 << 20).has_valid_parity());
    }
}
