//! Writing LArPix files.

mod packet_file;

pub use packet_file::{canonical_packet_type, PacketFileWriter, WriteOptions, WRITTEN_VERSION};
