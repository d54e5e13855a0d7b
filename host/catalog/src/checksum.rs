//! adler32 as Rucio and MetaCat want it: seeded with 1, computed by streaming (memory flat in
//! file size), formatted as exactly 8 lowercase hex digits — leading zeros kept
//! (data-management.md §4 lists the tools that lost them).

use std::io::Read;
use std::path::Path;

/// An adler32 value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Adler32(pub u32);

impl Adler32 {
    /// The checksum of a byte slice.
    pub fn of(bytes: &[u8]) -> Self {
        let mut a = adler2::Adler32::new();
        a.write_slice(bytes);
        Self(a.checksum())
    }

    /// The checksum of a file, read in 1 MiB blocks; also returns its size in bytes.
    pub fn of_file(path: &Path) -> std::io::Result<(Self, u64)> {
        let mut file = std::fs::File::open(path)?;
        let mut a = adler2::Adler32::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = match file.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            a.write_slice(&buffer[..n]);
            size += n as u64;
        }
        Ok((Self(a.checksum()), size))
    }

    /// Parses 8 hex digits (either case; fewer digits are refused: a dropped leading zero is an
    /// error in the source, not something to guess about).
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(text, 16).ok().map(Self)
    }
}

impl std::fmt::Display for Adler32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from zlib (`zlib.adler32(data) & 0xffffffff`, formatted `%08x`).
    #[test]
    fn matches_zlib_including_leading_zeros() {
        let vectors: [(&[u8], &str); 6] = [
            (b"", "00000001"),
            (b"a", "00620062"),
            (b"abc", "024d0127"),
            (b"Wikipedia", "11e60398"),
            (b"message digest", "29750586"),
            (b"The quick brown fox jumps over the lazy dog", "5bdc0fda"),
        ];
        for (data, expected) in vectors {
            assert_eq!(
                Adler32::of(data).to_string(),
                expected,
                "{:?}",
                String::from_utf8_lossy(data)
            );
        }
        // 5 MB exercise the modular reductions and the 1 MiB streaming blocks; zlib gives
        // 08e6b4fd for `bytes(((i * 2654435761) & 0xffffffff) >> 24 for i in range(5000000))`.
        let big: Vec<u8> =
            (0..5_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let dir = std::env::temp_dir().join(format!("larmon-adler-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.bin");
        std::fs::write(&path, &big).unwrap();
        let (streamed, size) = Adler32::of_file(&path).unwrap();
        assert_eq!((streamed.to_string(), size), ("08e6b4fd".to_string(), big.len() as u64));
        assert_eq!(Adler32::of(&big), streamed);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn parse_needs_all_eight_digits() {
        assert_eq!(Adler32::parse("024d0127"), Some(Adler32(0x024d0127)));
        assert_eq!(Adler32::parse("024D0127"), Some(Adler32(0x024d0127)));
        assert_eq!(Adler32::parse("24d0127"), None);
        assert_eq!(Adler32::parse("xyz00000"), None);
    }
}
