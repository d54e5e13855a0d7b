//! Writing LArPix files.

mod packet_file;
mod raw_file;

pub use packet_file::{canonical_packet_type, PacketFileWriter, WriteOptions, WRITTEN_VERSION};
pub use raw_file::RawFileWriter;
