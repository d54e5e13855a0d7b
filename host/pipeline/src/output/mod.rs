//! The output stage: a run's report.json with its checks and quality flag, and the plugins'
//! figures beside it ([`report`]), typed figures drawn over their reference with shape checks
//! ([`figures`]); files written so a reader never sees half of one; a webhook told when a run's
//! flag turns bad ([`notify`]).

pub mod figures;
pub mod notify;
pub mod report;

use std::path::Path;

/// Writes a file through a temporary name and a rename (never half-written under its name).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, path)
}

/// A file-name-safe version of a plugin-chosen name (no path separators, no dots first).
pub fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    if cleaned.is_empty() { "unnamed".into() } else { cleaned }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_leave_the_folder() {
        assert_eq!(safe_name("../etc/passwd"), "___etc_passwd");
        assert_eq!(safe_name(""), "unnamed");
        assert_eq!(safe_name("dq-dx_2"), "dq-dx_2");
    }
}
