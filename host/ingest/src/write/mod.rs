//! Writing LArPix files.

mod packet_file;
mod raw_file;

pub use packet_file::{PacketFileWriter, WRITTEN_VERSION, WriteOptions, canonical_packet_type};
pub use raw_file::RawFileWriter;
