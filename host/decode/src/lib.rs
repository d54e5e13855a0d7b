//! Bit-level decoders for LArPix data, free of I/O so they can be tested and fuzzed alone:
//!
//! - [`packet`]: the LArPix v2 64-bit packet and its odd parity;
//! - [`pacman`]: PACMAN messages (header + data/trigger/sync words) into packet rows, in the
//!   exact order larpix-control's converter uses;
//! - [`columns`]: the column-oriented packet rows every later stage consumes.
//!
//! Nothing here panics on any input: malformed messages are errors, unknown words are counted.

mod canonical;
pub mod columns;
pub mod packet;
pub mod pacman;

pub use columns::{
    CANONICAL_RECORD_SIZE, ColumnInt, ColumnMut, ColumnSpec, IntWidth, OwnedColumn, PACKET_COLUMNS,
    PacketColumns, PacketParts, PacketRow,
};
pub use packet::LArPixPacket;
pub use pacman::{DecodeStats, MessageError, MessageHeader, decode_message};
