//! The larmon plugin SDK: everything a volunteer needs to add a plot, in one file.
//!
//! ```ignore
//! use larmon_plugin_sdk::prelude::*;
//!
//! #[derive(Serialize, Deserialize, Merge)]   // Merge: states of several files add up
//! struct AdcSpectrum { adc: Hist1D }
//!
//! columns! {                                  // the columns it reads, with their types
//!     struct Packets from "packets" { packet_type: u8, dataword: u8 }
//! }
//!
//! impl Plugin for AdcSpectrum {
//!     type Settings = NoSettings;
//!     fn info() -> Info {
//!         Info::new("adc-spectrum", "ADC counts of data packets").reads::<Packets>()
//!     }
//!     fn new(_settings: NoSettings, _pixels: Pixels) -> Result<Self, String> {
//!         Ok(Self { adc: Hist1D::new(256, 0.0, 256.0) })
//!     }
//!     fn packets(&mut self, batch: &Batch) -> Result<(), String> {
//!         let p = Packets::read(batch)?;
//!         for (kind, adc) in p.packet_type.iter().zip(p.dataword) {
//!             if *kind == 0 { self.adc.fill(f64::from(*adc), 1.0) }
//!         }
//!         Ok(())
//!     }
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
pub mod columns;
pub mod compare;
pub mod figure;
pub mod fit;
pub mod geometry;
pub mod hist;
pub mod merge;
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
pub use batch::{Batch, runs};
pub use channels::{CHANNEL_COLUMNS, ChannelCounts, ChannelStats, Moments, channel_of, unique_id};
pub use columns::{ChannelKey, Column, Columns};
pub use figure::{TYPED_FIGURE_KEY, TypedFigure};
pub use geometry::{Pixel, Pixels};
pub use hist::{Hist1D, Hist2D, TimeSeries, TimeSpan};
/// `#[derive(Merge)]`: a state merged field by field ([`merge`] gives the rules).
pub use larmon_plugin_sdk_derive::Merge;
pub use merge::Merge;
pub use report::{CheckStatus, Info, Report};

/// Settings of a plugin without any: `type Settings = NoSettings;`.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

/// Declares a plugin's settings — the keys of its `[plugins.NAME]` table in the run's
/// configuration, each with its type and default — as a struct the SDK fills: missing keys take
/// their default, an unknown key or a wrong type fails the plugin with a message naming it, the
/// keys are announced to the host, and the settings stay out of the plugin's snapshots.
///
/// ```ignore
/// settings! {
///     /// Thresholds of the parity check.
///     struct Settings {
///         /// Parity-error fraction above which the check warns.
///         parity_warn_fraction: f64 = 0.002,
///         parity_error_fraction: f64 = 0.01,
///     }
/// }
/// ```
#[macro_export]
macro_rules! settings {
    ($(#[$meta:meta])* $vis:vis struct $name:ident {
        $($(#[$field_meta:meta])* $field:ident : $type:ty = $default:expr),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, $crate::__serde::Serialize, $crate::__serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        $vis struct $name {
            $($(#[$field_meta])* pub $field: $type,)*
        }
        impl ::core::default::Default for $name {
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }
        impl $crate::PluginSettings for $name {
            const KEYS: &'static [&'static str] = &[$(stringify!($field)),*];
        }
    };
}

/// What the SDK needs of a plugin's settings: serde both ways, defaults, and its keys in the
/// order they are declared (announced to the host, listed by `larmon plugin check`). The
/// [`settings!`] macro implements it.
pub trait PluginSettings: serde::Serialize + serde::de::DeserializeOwned + Default {
    /// The keys of its `[plugins.NAME]` table.
    const KEYS: &'static [&'static str];
}

impl PluginSettings for NoSettings {
    const KEYS: &'static [&'static str] = &[];
}

#[doc(hidden)]
pub use serde as __serde;

/// plotters, for figures the [`svg`] helpers do not cover (draw on `SVGBackend`).
pub use plotters;

// The derive names the SDK by its crate name, as in a plugin; this makes that name work here.
extern crate self as larmon_plugin_sdk;

/// What a plugin implements. State must be serde-serialisable and [`Merge`]: that is how
/// snapshots of one instance are merged into another (files of a run, shards on many nodes).
/// `#[derive(Serialize, Deserialize, Merge)]` does both.
pub trait Plugin: Sized + serde::Serialize + serde::de::DeserializeOwned + Merge + 'static {
    /// Its settings: a struct declared with [`settings!`], or [`NoSettings`]. Keep them in a
    /// `#[serde(skip)]` field: they come from the configuration, not from snapshots.
    type Settings: PluginSettings;
    /// Name, version, description, shifter help, consumed streams and columns (its settings'
    /// keys are added for it).
    fn info() -> Info;
    /// A fresh instance for one run, with the run's settings and the detector's pixels: every
    /// connected channel with its position, anode and drift geometry, when `info()` asks for
    /// them with [`Info::uses_pixels`] (empty otherwise). Keep them in a `#[serde(skip)]`
    /// field: every instance gets its own, so they stay out of snapshots.
    fn new(settings: Self::Settings, pixels: Pixels) -> Result<Self, String>;
    /// A batch of the `packets` stream (only the requested columns are present).
    fn packets(&mut self, _batch: &Batch) -> Result<(), String> {
        Ok(())
    }
    /// A batch of the `channels` stream: per channel, the count, Σ ADC, Σ ADC² and first/last
    /// Unix time of its valid data packets, summed by the host (add them with
    /// [`ChannelStats::add`] / [`ChannelCounts::add`] when per-channel totals are all a plugin
    /// keeps: far fewer rows than `packets`, and the same totals).
    fn channels(&mut self, _batch: &Batch) -> Result<(), String> {
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
        Batch, CHANNEL_COLUMNS, ChannelCounts, ChannelKey, ChannelStats, CheckStatus, Columns,
        Hist1D, Hist2D, Info, Merge, Moments, NoSettings, Pixel, Pixels, Plugin, PluginSettings,
        Report, TimeSeries, TimeSpan, TypedFigure, channel_of, columns, export_plugin, fit, log,
        runs, settings, spectrum, svg, unique_id,
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
