//! Per-channel accumulators: count, mean and RMS of a value per electronics channel (keyed by
//! `unique_id = ((io_group·256 + io_channel)·256 + chip_id)·64 + channel_id`), mergeable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The channel key of larmon and of the pedestal/configuration files.
pub fn unique_id(io_group: u8, io_channel: u8, chip_id: u8, channel_id: u8) -> u32 {
    ((u32::from(io_group) * 256 + u32::from(io_channel)) * 256 + u32::from(chip_id)) * 64
        + u32::from(channel_id)
}

/// (io_group, io_channel, chip_id, channel_id) of a key.
pub fn channel_of(unique_id: u32) -> (u8, u8, u8, u8) {
    (
        (unique_id >> 22) as u8,
        (unique_id >> 14) as u8,
        (unique_id >> 6) as u8,
        (unique_id & 63) as u8,
    )
}

/// Count, sum and sum of squares of a value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Entries.
    pub n: u64,
    /// Σ x.
    pub sum: f64,
    /// Σ x².
    pub sum_sq: f64,
}

impl Moments {
    /// Mean, if any entry.
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
    /// RMS about the mean (population), if any entry.
    pub fn rms(&self) -> Option<f64> {
        let mean = self.mean()?;
        Some((self.sum_sq / self.n as f64 - mean * mean).max(0.0).sqrt())
    }
}

/// [`Moments`] per channel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelStats {
    /// Channel key → moments.
    pub channels: BTreeMap<u32, Moments>,
}

impl ChannelStats {
    /// Adds `value` for a channel.
    pub fn fill(&mut self, unique_id: u32, value: f64) {
        let m = self.channels.entry(unique_id).or_default();
        m.n += 1;
        m.sum += value;
        m.sum_sq += value * value;
    }
    /// Adds another set of channels.
    pub fn merge(&mut self, other: &ChannelStats) {
        for (id, o) in &other.channels {
            let m = self.channels.entry(*id).or_default();
            m.n += o.n;
            m.sum += o.sum;
            m.sum_sq += o.sum_sq;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_stats_merge() {
        let id = unique_id(2, 14, 61, 28);
        assert_eq!(channel_of(id), (2, 14, 61, 28));
        let (mut a, mut b, mut all) =
            (ChannelStats::default(), ChannelStats::default(), ChannelStats::default());
        for (k, v) in [1.0, 2.0, 3.0, 4.0].into_iter().enumerate() {
            all.fill(id, v);
            if k < 2 { a.fill(id, v) } else { b.fill(id, v) }
        }
        a.merge(&b);
        assert_eq!(a, all);
        let m = all.channels[&id];
        assert_eq!(m.mean(), Some(2.5));
        assert!((m.rms().unwrap() - 1.118_033_988_7).abs() < 1e-9);
    }
}
