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
        consumes: info
            .consumes
            .into_iter()
            .map(|(stream, columns)| wit::StreamRequest { stream, columns })
            .collect(),
        config_keys: info.config_keys,
    }
}

impl<P: Plugin> GuestInstance for Adapter<P> {
    fn open(config_json: String) -> Result<Instance, String> {
        let config: serde_json::Value = if config_json.trim().is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_json::from_str(&config_json).map_err(|e| format!("configuration: {e}"))?
        };
        let plugin = P::new(&config)?;
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
        self.state.borrow_mut().merge(other)
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
