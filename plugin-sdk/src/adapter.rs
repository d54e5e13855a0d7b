//! The glue between a [`Plugin`](crate::Plugin) and the WIT world: IPC decoding, stream
//! dispatch, JSON configuration, serde snapshots. Plugin authors never see it.

use std::cell::RefCell;

use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;

use crate::Plugin;
use crate::batch::Batch;
use crate::bindings::exports::larmon::plugin::plugin::{GuestInstance, Instance, PluginInfo};
use crate::bindings::larmon::plugin::types as wit;

/// One plugin instance as the component exports it.
pub struct Adapter<P: Plugin> {
    state: RefCell<P>,
}

/// The WIT description of a plugin.
pub fn wit_info<P: Plugin>() -> PluginInfo {
    let info = P::info();
    PluginInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        help: info.help,
        consumes: info
            .consumes
            .into_iter()
            .map(|(stream, columns)| wit::StreamRequest { stream, columns })
            .collect(),
        config_keys: settings_keys::<P>(),
    }
}

/// The keys of the plugin's settings (the fields of its `Settings`).
fn settings_keys<P: Plugin>() -> Vec<String> {
    match serde_json::to_value(P::Settings::default()) {
        Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

impl<P: Plugin> GuestInstance for Adapter<P> {
    fn open(config_json: String) -> Result<Instance, String> {
        let settings: P::Settings = if config_json.trim().is_empty() {
            P::Settings::default()
        } else {
            serde_json::from_str(&config_json).map_err(|e| format!("settings: {e}"))?
        };
        let plugin = P::new(settings)?;
        Ok(Instance::new(Adapter { state: RefCell::new(plugin) }))
    }

    fn consume(&self, stream: String, batch_ipc: Vec<u8>) -> Result<(), String> {
        // The decoder slices the columns out of the received bytes (no copy when aligned).
        let mut bytes = Buffer::from_vec(batch_ipc);
        let mut decoder = StreamDecoder::new();
        let mut state = self.state.borrow_mut();
        while !bytes.is_empty() {
            let Some(batch) = decoder
                .decode(&mut bytes)
                .map_err(|e| format!("{stream}: reading the IPC stream: {e}"))?
            else {
                continue;
            };
            dispatch(&mut *state, &stream, &Batch::new(batch))?;
        }
        decoder.finish().map_err(|e| format!("{stream}: reading the IPC stream: {e}"))
    }

    fn snapshot(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(&*self.state.borrow()).map_err(|e| format!("snapshot: {e}"))
    }

    fn merge(&self, snapshot: Vec<u8>) -> Result<(), String> {
        let other: P = serde_json::from_slice(&snapshot).map_err(|e| format!("merge: {e}"))?;
        crate::Merge::merge(&mut *self.state.borrow_mut(), other)
    }

    fn report(&self) -> Result<wit::Report, String> {
        Ok(self.state.borrow().report()?.into_wit())
    }
}

/// Hands a batch to the plugin's method for its stream. Kept out of line from the IPC decoding:
/// Cranelift allocates registers per function, and in that long function the plugin's loop
/// reloaded its state from the stack on every row (with the accumulators' `fill` inlined here:
/// Wasm plot time −12 %).
#[inline(never)]
fn dispatch<P: Plugin>(state: &mut P, stream: &str, batch: &Batch) -> Result<(), String> {
    match stream {
        "packets" => state.packets(batch),
        "hits" => state.hits(batch),
        "events" => state.events(batch),
        "tracks" => state.tracks(batch),
        "track_segments" => state.track_segments(batch),
        "track_pixels" => state.track_pixels(batch),
        "pixels" => state.pixels(batch),
        "light_events" => state.light_events(batch),
        "light_waveforms" => state.light_waveforms(batch),
        "light_matches" => state.light_matches(batch),
        other => Err(format!("unknown stream {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    /// A snapshot (serde_json, as `snapshot` and `merge` above) gives back every float
    /// bit-exactly, so a run merged from shards equals one pass (serde_json's default float
    /// parser is off by an ulp on some values: the SDK enables `float_roundtrip`).
    #[test]
    fn snapshots_give_back_every_float_exactly() {
        let mut bits = 0x9E37_79B9_7F4A_7C15u64;
        let values: Vec<f64> = (0..100_000)
            .map(|_| {
                bits = bits.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                // Finite values of every magnitude a plot keeps (mm, ke-, ticks, sums).
                f64::from_bits(bits >> 2 | 0x3000_0000_0000_0000)
            })
            .chain([127.083_207_691_789_87, -197.881_691_316_835_94, 0.1, 1e-300, 5e300])
            .collect();
        let snapshot = serde_json::to_vec(&values).unwrap();
        let back: Vec<f64> = serde_json::from_slice(&snapshot).unwrap();
        let differ = values.iter().zip(&back).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differ, 0, "{differ} of {} floats changed", values.len());
    }
}
