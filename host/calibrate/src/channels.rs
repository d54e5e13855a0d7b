//! Per-channel calibration constants: pedestal JSON (`{unique_id: {"pedestal_mv": x}}`) and
//! configuration JSON (`{unique_id: {"vref_mv": x, "vcm_mv": y}}`), keyed by
//! `unique_id = ((io_group·256 + io_channel)·256 + chip_id)·64 + channel_id`, with defaults for
//! channels the files do not list.

use std::collections::BTreeMap;
use std::path::Path;

use rustc_hash::FxHashMap;
use serde::Deserialize;

use crate::error::CalibrationError;
use crate::physics::ChannelCalibration;

/// The channel key of the pedestal and configuration files.
#[inline]
pub fn unique_id(io_group: u8, io_channel: u8, chip_id: u8, channel_id: u8) -> u32 {
    ((u32::from(io_group) * 256 + u32::from(io_channel)) * 256 + u32::from(chip_id)) * 64
        + u32::from(channel_id)
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
}

impl ChannelTable {
    /// Only defaults.
    pub fn uniform(default: ChannelCalibration) -> Self {
        Self { default, channels: FxHashMap::default() }
    }

    /// Reads an optional pedestal file and an optional configuration file.
    pub fn load(
        default: ChannelCalibration,
        pedestal_file: Option<&Path>,
        config_file: Option<&Path>,
    ) -> Result<Self, CalibrationError> {
        let mut table = Self::uniform(default);
        for path in [pedestal_file, config_file].into_iter().flatten() {
            let text = std::fs::read_to_string(path)
                .map_err(|source| CalibrationError::Io { path: path.into(), source })?;
            let entries: BTreeMap<String, Entry> = serde_json::from_str(&text).map_err(|e| {
                CalibrationError::ChannelFile { path: path.into(), reason: e.to_string() }
            })?;
            for (key, entry) in entries {
                let id: u32 = key.parse().map_err(|_| CalibrationError::ChannelFile {
                    path: path.into(),
                    reason: format!("key {key:?} is not a channel unique_id"),
                })?;
                let channel = table.channels.entry(id).or_insert(default);
                if let Some(v) = entry.pedestal_mv {
                    channel.pedestal_mv = v;
                }
                if let Some(v) = entry.vref_mv {
                    channel.vref_mv = v;
                }
                if let Some(v) = entry.vcm_mv {
                    channel.vcm_mv = v;
                }
            }
        }
        Ok(table)
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
