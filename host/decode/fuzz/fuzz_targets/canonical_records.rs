//! Fuzzes the fast canonical-record decoder (8x8 byte transposes) against the row encoder:
//! decoding arbitrary 36-byte records and re-encoding them must give back the same bytes.
#![no_main]

use larmon_decode::{CANONICAL_RECORD_SIZE, PacketColumns};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (records, _) = data.as_chunks::<CANONICAL_RECORD_SIZE>();
    let mut columns = PacketColumns::default();
    columns.decode_canonical(records);
    assert_eq!(columns.len(), records.len());
    let mut again = Vec::new();
    columns.encode_canonical(&mut again);
    assert_eq!(again.as_slice(), records.as_flattened());
});
