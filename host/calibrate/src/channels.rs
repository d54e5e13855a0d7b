//! Per-channel calibration constants: pedestal JSON (`{key: {"pedestal_mv": x}}`) and
//! configuration JSON (`{key: {"vref_mv": x, "vcm_mv": y}}`), with defaults for channels the
//! files do not list.
//!
//! Two key formats exist, and each file is read in the one its keys fit:
//! - **Module-0 unique id**: `((io_group·256 + io_channel)·256 + chip_id)·64 + channel_id`
//!   (module0_flow, larmon's own files);
//! - **2x2 decimal**: `io_group·10⁹ + io_channel·10⁵ + chip_id·10² + channel_id` (ndlar_flow's
//!   `*.decimal.json` pedestal files, e.g. `1000101118` = 1-1-11-18).
//!
//! A file is decimal when every key is at least 10⁹ and decodes to a valid address (channel
//! < 64, chip < 256, io_channel < 256, io_group 1–255); otherwise every key must be a Module-0
//! unique id (< 2³⁰: io_group ≤ 255). Keys are resolved to the channel's identity in the
//! layout ([`Geometry::identify`]), so a chip read on another UART of its tile gets its
//! constants. A key whose io_group, UART group and chip name no tile of the detector is not
//! applied and is counted and named in the summary; a file none of whose keys is a channel of
//! the detector is an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::error::CalibrationError;
use crate::geometry::Geometry;
use crate::physics::ChannelCalibration;

/// The channel key of the pedestal and configuration files.
#[inline]
pub fn unique_id(io_group: u8, io_channel: u8, chip_id: u8, channel_id: u8) -> u32 {
    ((u32::from(io_group) * 256 + u32::from(io_channel)) * 256 + u32::from(chip_id)) * 64
        + u32::from(channel_id)
}

/// The (io_group, io_channel, chip_id, channel_id) of a [`unique_id`].
#[inline]
pub fn decode_unique_id(id: u32) -> (u8, u8, u8, u8) {
    ((id >> 22) as u8, (id >> 14) as u8, (id >> 6) as u8, (id & 63) as u8)
}

/// The key format of a channel file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyFormat {
    /// `((io_group·256 + io_channel)·256 + chip)·64 + channel`.
    Module0UniqueId,
    /// `io_group·10⁹ + io_channel·10⁵ + chip·10² + channel`.
    Decimal2x2,
}

impl KeyFormat {
    /// Decodes a key into (io_group, io_channel, chip_id, channel_id).
    pub fn decode(self, key: u64) -> Option<(u8, u8, u8, u8)> {
        match self {
            KeyFormat::Module0UniqueId => (key < 1 << 30).then(|| decode_unique_id(key as u32)),
            KeyFormat::Decimal2x2 => {
                let channel = key % 100;
                let chip = key / 100 % 1000;
                let io_channel = key / 100_000 % 10_000;
                let io_group = key / 1_000_000_000;
                (channel < 64 && chip < 256 && io_channel < 256 && (1..=255).contains(&io_group))
                    .then_some((io_group as u8, io_channel as u8, chip as u8, channel as u8))
            }
        }
    }

    /// The format all of a file's keys fit, or the first key that fits neither.
    fn detect(keys: &[u64]) -> Result<Self, u64> {
        let decimal =
            keys.iter().all(|&k| k >= 1_000_000_000 && KeyFormat::Decimal2x2.decode(k).is_some());
        if decimal && !keys.is_empty() {
            return Ok(KeyFormat::Decimal2x2);
        }
        match keys.iter().find(|&&k| KeyFormat::Module0UniqueId.decode(k).is_none()) {
            Some(&bad) => Err(bad),
            None => Ok(KeyFormat::Module0UniqueId),
        }
    }
}

/// What one channel file gave.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChannelFileSummary {
    /// The file.
    pub path: PathBuf,
    /// Its key format.
    pub key_format: KeyFormat,
    /// Keys in the file.
    pub keys: usize,
    /// Keys applied to a channel of the detector.
    pub applied: usize,
    /// Keys naming no tile of the detector (not applied).
    pub unknown: usize,
    /// Up to five of those, as `key (io_group-io_channel-chip-channel)`.
    pub unknown_examples: Vec<String>,
}

#[derive(Deserialize)]
struct Entry {
    pedestal_mv: Option<f64>,
    vref_mv: Option<f64>,
    vcm_mv: Option<f64>,
}

/// Calibration constants of every channel, with defaults.
#[derive(Clone, Debug)]
pub struct ChannelTable {
    default: ChannelCalibration,
    channels: FxHashMap<u32, ChannelCalibration>,
    files: Vec<ChannelFileSummary>,
    channels_from_files: usize,
    detector_channels: usize,
}

impl ChannelTable {
    /// Only defaults.
    pub fn uniform(default: ChannelCalibration) -> Self {
        Self {
            default,
            channels: FxHashMap::default(),
            files: Vec::new(),
            channels_from_files: 0,
            detector_channels: 0,
        }
    }

    /// Reads an optional pedestal file and an optional configuration file, resolving their keys
    /// against the detector's channels.
    pub fn load(
        default: ChannelCalibration,
        pedestal_file: Option<&Path>,
        config_file: Option<&Path>,
        geometry: &Geometry,
    ) -> Result<Self, CalibrationError> {
        let mut table = Self::uniform(default);
        for path in [pedestal_file, config_file].into_iter().flatten() {
            let summary = table.read_file(path, geometry)?;
            table.files.push(summary);
        }
        let connected = |id: &u32| {
            let (g, c, chip, ch) = decode_unique_id(*id);
            geometry.identify(g, c, chip, ch).is_some_and(|lc| lc.io_channel == c)
        };
        table.channels_from_files = table.channels.keys().filter(|id| connected(id)).count();
        table.detector_channels = geometry.channels().len();
        Ok(table)
    }

    fn read_file(
        &mut self,
        path: &Path,
        geometry: &Geometry,
    ) -> Result<ChannelFileSummary, CalibrationError> {
        let bad = |reason: String| CalibrationError::ChannelFile { path: path.into(), reason };
        let text = std::fs::read_to_string(path)
            .map_err(|source| CalibrationError::Io { path: path.into(), source })?;
        let entries: BTreeMap<String, Entry> =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut keys = Vec::with_capacity(entries.len());
        for key in entries.keys() {
            keys.push(key.trim().parse::<u64>().map_err(|_| {
                bad(format!(
                    "key {key:?} is not a channel key (a Module-0 unique id or a 2x2 decimal key)"
                ))
            })?);
        }
        let format = KeyFormat::detect(&keys).map_err(|key| {
            bad(format!(
                "key \"{key}\" is neither a Module-0 unique id (< 2^30) nor a 2x2 decimal key \
                 (io_group·10^9 + io_channel·10^5 + chip·10^2 + channel)"
            ))
        })?;
        let mut summary = ChannelFileSummary {
            path: path.into(),
            key_format: format,
            keys: keys.len(),
            applied: 0,
            unknown: 0,
            unknown_examples: Vec::new(),
        };
        for (key, entry) in keys.iter().zip(entries.values()) {
            let (g, c, chip, ch) = format.decode(*key).expect("detected format decodes every key");
            if geometry.tile_index(g, c, chip).is_none() {
                summary.unknown += 1;
                if summary.unknown_examples.len() < 5 {
                    summary.unknown_examples.push(format!("{key} ({g}-{c}-{chip}-{ch})"));
                }
                continue;
            }
            // A connected channel is stored under its identity in the layout; an unconnected
            // one of a known chip under the address it names.
            let c = geometry.identify(g, c, chip, ch).map_or(c, |lc| lc.io_channel);
            let channel = self.channels.entry(unique_id(g, c, chip, ch)).or_insert(self.default);
            if let Some(v) = entry.pedestal_mv {
                channel.pedestal_mv = v;
            }
            if let Some(v) = entry.vref_mv {
                channel.vref_mv = v;
            }
            if let Some(v) = entry.vcm_mv {
                channel.vcm_mv = v;
            }
            summary.applied += 1;
        }
        if summary.applied == 0 && summary.keys > 0 {
            return Err(bad(format!(
                "none of its {} keys ({:?} format) is a channel of this detector, e.g. {}: \
                 wrong detector or wrong file?",
                summary.keys,
                format,
                summary.unknown_examples.first().map_or("", String::as_str)
            )));
        }
        Ok(summary)
    }

    /// What each channel file gave.
    pub fn files(&self) -> &[ChannelFileSummary] {
        &self.files
    }

    /// Connected channels of the detector with constants from a file.
    pub fn channels_from_files(&self) -> usize {
        self.channels_from_files
    }

    /// Connected channels of the detector (those with file constants included).
    pub fn detector_channels(&self) -> usize {
        self.detector_channels
    }

    /// The constants of a packet's channel, resolved through the channel's identity in the
    /// layout (the defaults if no file lists it).
    #[inline]
    pub fn lookup(
        &self,
        geometry: &Geometry,
        io_group: u8,
        io_channel: u8,
        chip_id: u8,
        channel_id: u8,
    ) -> ChannelCalibration {
        if self.channels.is_empty() {
            return self.default;
        }
        let c = geometry
            .identify(io_group, io_channel, chip_id, channel_id)
            .map_or(io_channel, |lc| lc.io_channel);
        self.get(unique_id(io_group, c, chip_id, channel_id))
    }

    /// Number of channels with their own constants.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// True when every channel uses the defaults.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// The constants of one channel (the defaults if it is not listed).
    #[inline]
    pub fn get(&self, unique_id: u32) -> ChannelCalibration {
        self.channels.get(&unique_id).copied().unwrap_or(self.default)
    }
}
