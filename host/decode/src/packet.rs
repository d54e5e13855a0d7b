//! The LArPix v2 64-bit packet: bit fields and odd parity.
//!
//! The 8 bytes are read as a little-endian `u64`; a field at bits `a..b` is
//! `(word >> a) & ((1 << (b - a)) - 1)` (larpix-formats.md §1.4).

/// The ASIC packet types carried in bits 0–1.
pub const DATA_PACKET: u8 = 0;
/// Test packet (bits 0–1 = 1).
pub const TEST_PACKET: u8 = 1;
/// Configuration write (bits 0–1 = 2).
pub const CONFIG_WRITE_PACKET: u8 = 2;
/// Configuration read (bits 0–1 = 3).
pub const CONFIG_READ_PACKET: u8 = 3;

/// A LArPix v2 packet as the 64-bit little-endian word it is on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LArPixPacket(pub u64);

#[inline(always)]
const fn bits(word: u64, start: u32, width: u32) -> u64 {
    (word >> start) & ((1u64 << width) - 1)
}

impl LArPixPacket {
    /// Builds the packet from its 8 bytes as stored (byte 0 holds bits 0–7).
    #[inline(always)]
    pub fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(u64::from_le_bytes(bytes))
    }

    /// Packet type, bits 0–1 (0 data, 1 test, 2 config write, 3 config read).
    #[inline(always)]
    pub fn packet_type(self) -> u8 {
        bits(self.0, 0, 2) as u8
    }
    /// Chip id, bits 2–9.
    #[inline(always)]
    pub fn chip_id(self) -> u8 {
        bits(self.0, 2, 8) as u8
    }
    /// Channel id, bits 10–15.
    #[inline(always)]
    pub fn channel_id(self) -> u8 {
        bits(self.0, 10, 6) as u8
    }
    /// 31-bit ASIC timestamp, bits 16–46.
    #[inline(always)]
    pub fn timestamp(self) -> u32 {
        bits(self.0, 16, 31) as u32
    }
    /// First packet after a trigger, bit 47.
    #[inline(always)]
    pub fn first_packet(self) -> u8 {
        bits(self.0, 47, 1) as u8
    }
    /// ADC value, bits 48–55.
    #[inline(always)]
    pub fn dataword(self) -> u8 {
        bits(self.0, 48, 8) as u8
    }
    /// Trigger type of a data packet, bits 56–57 (0 normal, 1 external, 2 cross, 3 periodic).
    #[inline(always)]
    pub fn trigger_type(self) -> u8 {
        bits(self.0, 56, 2) as u8
    }
    /// Local FIFO flags, bits 58–59 (bit 0: more than half full, bit 1: full).
    #[inline(always)]
    pub fn local_fifo(self) -> u8 {
        bits(self.0, 58, 2) as u8
    }
    /// Shared FIFO flags, bits 60–61.
    #[inline(always)]
    pub fn shared_fifo(self) -> u8 {
        bits(self.0, 60, 2) as u8
    }
    /// Downstream marker, bit 62.
    #[inline(always)]
    pub fn downstream_marker(self) -> u8 {
        bits(self.0, 62, 1) as u8
    }
    /// Parity bit, bit 63.
    #[inline(always)]
    pub fn parity(self) -> u8 {
        bits(self.0, 63, 1) as u8
    }
    /// Register address of a configuration packet, bits 10–17.
    #[inline(always)]
    pub fn register_address(self) -> u8 {
        bits(self.0, 10, 8) as u8
    }
    /// Register data of a configuration packet, bits 18–25.
    #[inline(always)]
    pub fn register_data(self) -> u8 {
        bits(self.0, 18, 8) as u8
    }
    /// LArPix uses odd parity over all 64 bits: valid iff the popcount is odd.
    #[inline(always)]
    pub fn has_valid_parity(self) -> bool {
        self.0.count_ones() & 1 == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden vector 0 of larpix-formats.md §1.6 (a real 2x2 packet).
    #[test]
    fn decodes_golden_packet_0() {
        let p = LArPixPacket::from_bytes([0x50, 0x04, 0xbc, 0x5e, 0x5a, 0x80, 0x23, 0xc0]);
        assert_eq!(p.packet_type(), 0);
        assert_eq!(p.chip_id(), 20);
        assert_eq!(p.channel_id(), 1);
        assert_eq!(p.timestamp(), 5_922_492);
        assert_eq!(p.first_packet(), 1);
        assert_eq!(p.dataword(), 35);
        assert_eq!(p.trigger_type(), 0);
        assert_eq!(p.local_fifo(), 0);
        assert_eq!(p.shared_fifo(), 0);
        assert_eq!(p.downstream_marker(), 1);
        assert_eq!(p.parity(), 1);
        assert!(p.has_valid_parity());
        assert_eq!(p.register_address(), 1);
        assert_eq!(p.register_data(), 175);
    }

    #[test]
    fn any_single_bit_flip_breaks_parity() {
        let good = LArPixPacket::from_bytes([0x50, 0x04, 0xbc, 0x5e, 0x5a, 0x80, 0x23, 0xc0]);
        assert!(good.has_valid_parity());
        for bit in 0..64 {
            assert!(!LArPixPacket(good.0 ^ (1 << bit)).has_valid_parity(), "bit {bit}");
        }
    }
}
