//! A representative plot workload: per-channel ADC mean/RMS, an ADC spectrum and the data rate
//! per second, from valid data packets.

use larmon_plugin_sdk::prelude::*;

settings! {
    /// The benchmark's settings.
    pub struct Settings {
        /// Return at once (the benchmark's transport-cost run).
        transport_only: bool = false,
    }
}

#[derive(Serialize, Deserialize, Merge)]
pub struct AdcStats {
    per_channel: ChannelStats,
    adc: Hist1D,
    rate: TimeSeries,
    #[serde(skip)]
    settings: Settings,
}

impl Plugin for AdcStats {
    type Settings = Settings;

    fn info() -> Info {
        Info::new("bench-adc-stats", "Per-channel ADC statistics (benchmark workload)").consumes(
            "packets",
            &[
                "packet_type",
                "valid_parity",
                "io_group",
                "io_channel",
                "chip_id",
                "channel_id",
                "dataword",
                "unix_time",
            ],
        )
    }

    fn new(settings: Settings, _pixels: Pixels) -> Result<Self, String> {
        Ok(Self {
            per_channel: ChannelStats::default(),
            adc: Hist1D::new(256, 0.0, 256.0),
            rate: TimeSeries::default(),
            settings,
        })
    }

    fn packets(&mut self, batch: &Batch) -> Result<(), String> {
        if self.settings.transport_only {
            return Ok(());
        }
        let (kind, valid) = (batch.u8("packet_type")?, batch.u8("valid_parity")?);
        let (group, uart, chip, channel) = (
            batch.u8("io_group")?,
            batch.u8("io_channel")?,
            batch.u8("chip_id")?,
            batch.u8("channel_id")?,
        );
        let (adc, unix) = (batch.u8("dataword")?, batch.u64("unix_time")?);
        for i in 0..batch.len() {
            if kind[i] == 0 && valid[i] == 1 {
                let value = f64::from(adc[i]);
                self.per_channel.fill(unique_id(group[i], uart[i], chip[i], channel[i]), value);
                self.adc.fill(value, 1.0);
                self.rate.fill(unix[i], 1.0);
            }
        }
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        Ok(Report::new()
            .metric("channels", self.per_channel.len() as f64, None, "channels")
            .metric("mean_adc", self.adc.mean().unwrap_or(0.0), None, "counts"))
    }
}
