//! The larmon plugin SDK: everything a volunteer needs to add a plot, in one file.
//!
//! ```ignore
//! use larmon_plugin_sdk::prelude::*;
//!
//! #[derive(Serialize, Deserialize)]
//! struct AdcSpectrum { adc: Hist1D }
//!
//! impl Plugin for AdcSpectrum {
//!     fn info() -> Info {
//!         Info::new("adc-spectrum", "ADC counts of data packets")
//!             .consumes("packets", &["packet_type", "dataword"])
//!     }
//!     fn new(_config: &Config) -> Result<Self, String> {
//!         Ok(Self { adc: Hist1D::new(256, 0.0, 256.0) })
//!     }
//!     fn packets(&mut self, batch: &Batch) -> Result<(), String> {
//!         for (kind, adc) in batch.u8("packet_type")?.iter().zip(batch.u8("dataword")?) {
//!             if *kind == 0 { self.adc.fill(f64::from(*adc), 1.0) }
//!         }
//!         Ok(())
//!     }
//!     fn merge(&mut self, other: Self) -> Result<(), String> { self.adc.merge(&other.adc) }
//!     fn report(&self) -> Result<Report, String> {
//!         let svg = svg::histogram(&self.adc, "ADC spectrum", "ADC [counts]", "packets / bin");
//!         Ok(Report::new().figure("adc", "ADC spectrum", svg, &self.adc))
//!     }
//! }
//! export_plugin!(AdcSpectrum);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` (or `larmon plugin build`); the
//! result is a sandboxed component the host loads with `larmon run --plugin FILE.wasm`.

pub mod batch;
pub mod channels;
pub mod compare;
pub mod figure;
pub mod fit;
pub mod geometry;
pub mod hist;
pub mod report;
pub mod spectrum;
pub mod svg;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "dqm-plugin",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_dqm_plugin",
        default_bindings_module: "larmon_plugin_sdk::bindings",
    });
}

mod adapter;

#[doc(hidden)]
pub use adapter::{Adapter, wit_info};
pub use batch::Batch;
pub use channels::{CHANNEL_COLUMNS, ChannelStats, Moments, channel_of, unique_id};
pub use figure::{TYPED_FIGURE_KEY, TypedFigure};
pub use geometry::{Pixel, Pixels};
pub use hist::{Hist1D, Hist2D, TimeSeries, TimeSpan};
pub use report::{CheckStatus, Info, Report};

/// A plugin's configuration: the JSON object given to the run (empty object by default).
pub type Config = serde_json::Value;

/// A number from the configuration, or `default` when the key is absent.
pub fn config_number(config: &Config, key: &str, default: f64) -> f64 {
    config.get(key).and_then(serde_json::Value::as_f64).unwrap_or(default)
}

/// plotters, for figures the [`svg`] helpers do not cover (draw on `SVGBackend`).
pub use plotters;

/// What a plugin implements. State must be serde-serialisable: that is how snapshots of one
/// instance are merged into another (files of a run, shards on many nodes).
pub trait Plugin: Sized + serde::Serialize + serde::de::DeserializeOwned + 'static {
    /// Name, version, description, consumed streams and columns, configuration keys.
    fn info() -> Info;
    /// A fresh instance for one run.
    fn new(config: &Config) -> Result<Self, String>;
    /// A batch of the `packets` stream (only the requested columns are present).
    fn packets(&mut self, _batch: &Batch) -> Result<(), String> {
        Ok(())
    }
    /// A batch of the `hits` stream.
    fn hits(&mut self, _batch: &Batch) -> Result<(), String> {
        Ok(())
    }
    /// A batch of the `events` stream.
    fn events(&mut self, _batch: &Batch) -> Result<(), String> {
        Ok(())
    }
    /// A batch of the `tracks` stream.
    fn tracks(&mut self, _batch: &Batch) -> Result<(), String> {
        Ok(())
    }
    /// A batch of the `track_segments` stream.
    fn track_segments(&mut self, _batch: &Batch) -> Result<(), String> {
        Ok(())
    }
    /// A batch of the `track_pixels` stream (charge and track length per pixel of a track).
    fn track_pixels(&mut self, _batch: &Batch) -> Result<(), String> {
        Ok(())
    }
    /// A batch of the `light_events` stream (one row per light-readout event).
    fn light_events(&mut self, _batch: &Batch) -> Result<(), String> {
        Ok(())
    }
    /// A batch of the `light_waveforms` stream (one row per waveform: detector, baseline, RMS,
    /// peak, integral, clipping, samples).
    fn light_waveforms(&mut self, _batch: &Batch) -> Result<(), String> {
        Ok(())
    }
    /// A batch of the `light_matches` stream (light events and charge triggers paired by time;
    /// a null side is unmatched).
    fn light_matches(&mut self, _batch: &Batch) -> Result<(), String> {
        Ok(())
    }
    /// The `pixels` stream: every connected channel of the detector with its position. Sent
    /// first, to every instance (also those that only merge), so keep it out of the state
    /// (`#[serde(skip)]` on a [`Pixels`] field).
    fn pixels(&mut self, _batch: &Batch) -> Result<(), String> {
        Ok(())
    }
    /// Adds another instance's state (same plugin, same configuration) to this one.
    fn merge(&mut self, other: Self) -> Result<(), String>;
    /// Figures, metrics and checks of everything seen so far.
    fn report(&self) -> Result<Report, String>;
}

/// Writes a line to the run's log for this plugin.
pub fn log(message: &str) {
    bindings::larmon::plugin::host::log(bindings::larmon::plugin::host::Level::Info, message);
}

/// Everything a plugin file needs.
pub mod prelude {
    pub use crate::{
        Batch, CHANNEL_COLUMNS, ChannelStats, CheckStatus, Config, Hist1D, Hist2D, Info, Moments,
        Pixel, Pixels, Plugin, Report, TimeSeries, TimeSpan, TypedFigure, channel_of,
        config_number, export_plugin, fit, log, spectrum, svg, unique_id,
    };
    pub use serde::{Deserialize, Serialize};
}

/// Exports a [`Plugin`] type as the component's implementation of the larmon plugin world.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        struct __LarmonPlugin;
        impl $crate::bindings::exports::larmon::plugin::plugin::Guest for __LarmonPlugin {
            type Instance = $crate::Adapter<$plugin>;
            fn info() -> $crate::bindings::exports::larmon::plugin::plugin::PluginInfo {
                $crate::wit_info::<$plugin>()
            }
        }
        $crate::bindings::__export_dqm_plugin!(__LarmonPlugin with_types_in $crate::bindings);
    };
}
