//! Known-bad channels: the hot, noisy or dead channels a detector period is known to have, so
//! that channel-health tells them apart from new problems and only new ones count toward the
//! checks. A JSON file named by `known_bad_channels = "FILE"` in the configuration:
//!
//! ```json
//! {"channels": [
//!   {"io_group": 1, "io_channel": 5, "chip_id": 12, "channel_id": 7, "kind": "hot",
//!    "from": "2024-07-01", "to": "2024-08-01", "why": "HV cable of tile 3"}
//! ]}
//! ```
//!
//! `kind` (hot, noisy, dead, unknown) limits the entry to that problem — a known-hot channel that
//! goes dead is new; `from`/`to` (UTC date `YYYY-MM-DD` or Unix seconds; `to` excluded) give the
//! period, open-ended when absent. A bare list is taken too, such as `results.flagged_channels`
//! of a run's report or the dashboard's export of it (`/api/runs/<run>/known-bad.json`).
//! Plugins that declare the `known_bad_channels` setting get the entries, with the period in
//! Unix seconds, in their configuration.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::sha256_hex;
use crate::error::{PipelineError, Result};

/// One known-bad channel as a plugin gets it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KnownBadChannel {
    /// io_group.
    pub io_group: u8,
    /// io_channel.
    pub io_channel: u8,
    /// chip_id.
    pub chip_id: u8,
    /// channel_id (0–63).
    pub channel_id: u8,
    /// The problem it is known for; none: any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// First Unix second it applies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_unix: Option<u64>,
    /// First Unix second it no longer applies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_unix: Option<u64>,
}

/// An entry as written in the file (extra fields, such as a report's `packets`, are ignored).
#[derive(Deserialize)]
struct Entry {
    io_group: u8,
    io_channel: u8,
    chip_id: u8,
    channel_id: u8,
    kind: Option<String>,
    from: Option<serde_json::Value>,
    to: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum File {
    Listed { channels: Vec<serde_json::Value> },
    Bare(Vec<serde_json::Value>),
}

const KINDS: [&str; 4] = ["hot", "noisy", "dead", "unknown"];

/// Unix seconds of a `from`/`to` value: a UTC date, a date-time (RFC 3339) or a number.
fn unix_of(value: &serde_json::Value) -> std::result::Result<u64, String> {
    if let Some(seconds) = value.as_u64() {
        return Ok(seconds);
    }
    let text = value.as_str().ok_or_else(|| format!("{value} is no date"))?;
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
        return u64::try_from(midnight.and_utc().timestamp()).map_err(|_| "before 1970".into());
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|t| u64::try_from(t.timestamp()).ok())
        .ok_or_else(|| format!("{text:?} is no date (YYYY-MM-DD, RFC 3339 or Unix seconds)"))
}

/// A known-bad channel list as read from its file.
#[derive(Debug, Clone)]
pub struct KnownBad {
    /// The file.
    pub file: PathBuf,
    /// SHA-256 of its bytes (for the reports' provenance).
    pub sha256: String,
    /// Its entries.
    pub channels: Vec<KnownBadChannel>,
}

/// Reads a known-bad channel file (once: entries and hash come from the same bytes); an error
/// names the file, the entry and what is wrong.
pub fn load_known_bad(path: &Path) -> Result<KnownBad> {
    let bad = |reason: String| PipelineError::Config { path: path.into(), reason };
    let text =
        std::fs::read_to_string(path).map_err(|e| bad(format!("known-bad channel file: {e}")))?;
    let channels = parse_entries(&text, &bad)?;
    Ok(KnownBad { file: path.to_path_buf(), sha256: sha256_hex(text.as_bytes()), channels })
}

/// The entries of a known-bad channel file's text.
fn parse_entries(
    text: &str,
    bad: &dyn Fn(String) -> PipelineError,
) -> Result<Vec<KnownBadChannel>> {
    let entries = match serde_json::from_str::<File>(text)
        .map_err(|e| bad(format!("not a known-bad channel list ({e})")))?
    {
        File::Listed { channels } | File::Bare(channels) => channels,
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(k, value)| {
            let at = |reason: String| bad(format!("entry {}: {reason}", k + 1));
            let entry: Entry = serde_json::from_value(value).map_err(|e| at(e.to_string()))?;
            if entry.channel_id > 63 {
                return Err(at(format!("channel_id {} is over 63", entry.channel_id)));
            }
            if let Some(kind) = entry.kind.as_deref().filter(|k| !KINDS.contains(k)) {
                return Err(at(format!("kind {kind:?}: one of {}", KINDS.join(", "))));
            }
            let from_unix = entry.from.as_ref().map(unix_of).transpose().map_err(at)?;
            let to_unix = entry.to.as_ref().map(unix_of).transpose().map_err(at)?;
            if let (Some(a), Some(b)) = (from_unix, to_unix) {
                if b <= a {
                    return Err(at("`to` is not after `from`".into()));
                }
            }
            Ok(KnownBadChannel {
                io_group: entry.io_group,
                io_channel: entry.io_channel,
                chip_id: entry.chip_id,
                channel_id: entry.channel_id,
                kind: entry.kind,
                from_unix,
                to_unix,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Vec<KnownBadChannel>> {
        let path = std::env::temp_dir().join(format!(
            "larmon-known-bad-{}-{}.json",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&path, text).unwrap();
        let loaded = load_known_bad(&path);
        let _ = std::fs::remove_file(&path);
        let loaded = loaded?;
        assert_eq!(loaded.sha256, sha256_hex(text.as_bytes()), "the hash of the bytes read");
        Ok(loaded.channels)
    }

    #[test]
    fn periods_kinds_and_report_lists_are_read() {
        let listed = load(
            r#"{"channels": [{"io_group": 1, "io_channel": 5, "chip_id": 12, "channel_id": 7,
                "kind": "hot", "from": "2024-07-01", "to": 1722470400, "why": "cable"}]}"#,
        )
        .unwrap();
        assert_eq!(listed[0].from_unix, Some(1_719_792_000));
        assert_eq!(listed[0].to_unix, Some(1_722_470_400));
        assert_eq!(listed[0].kind.as_deref(), Some("hot"));
        // A report's flagged list, as it is: extra fields ignored, no period.
        let bare = load(
            r#"[{"io_group": 2, "io_channel": 1, "chip_id": 11, "channel_id": 0, "kind": "dead",
                 "packets": 0, "expected": 12.5, "rate_hz": 0.0}]"#,
        )
        .unwrap();
        assert_eq!((bare[0].io_group, bare[0].from_unix), (2, None));
    }

    #[test]
    fn a_bad_entry_is_named_with_its_number_and_reason() {
        let two = r#"[{"io_group": 1, "io_channel": 1, "chip_id": 11, "channel_id": 3},
                      {"io_group": 1, "io_channel": 1, "chip_id": 11, "channel_id": 64}]"#;
        let error = load(two).unwrap_err().to_string();
        assert!(error.contains("entry 2: channel_id 64 is over 63"), "{error}");
        let kind =
            r#"[{"io_group": 1, "io_channel": 1, "chip_id": 11, "channel_id": 3, "kind": "warm"}]"#;
        assert!(load(kind).unwrap_err().to_string().contains("entry 1: kind \"warm\""));
        let date =
            r#"[{"io_group": 1, "io_channel": 1, "chip_id": 11, "channel_id": 3, "from": "July"}]"#;
        assert!(load(date).unwrap_err().to_string().contains("\"July\" is no date"));
        let order = r#"[{"io_group": 1, "io_channel": 1, "chip_id": 11, "channel_id": 3,
                         "from": "2024-07-02", "to": "2024-07-01"}]"#;
        assert!(load(order).unwrap_err().to_string().contains("not after"));
        assert!(load("{\"channels\": 3}").unwrap_err().to_string().contains("not a known-bad"));
    }
}
