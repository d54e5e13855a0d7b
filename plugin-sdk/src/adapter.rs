//! The glue between a [`Plugin`](crate::Plugin) and the WIT world: IPC decoding, stream
//! dispatch, JSON configuration, serde snapshots. Plugin authors never see it.

use std::cell::{RefCell, RefMut};

use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;

use crate::batch::Batch;
use crate::bindings::exports::larmon::plugin::plugin::{GuestInstance, Instance, PluginInfo};
use crate::bindings::larmon::plugin::types as wit;
use crate::geometry::Pixels;
use crate::{Plugin, PluginSettings};

/// One plugin instance as the component exports it.
pub struct Adapter<P: Plugin> {
    stage: RefCell<Stage<P>>,
}

/// Where an instance is in its life.
enum Stage<P: Plugin> {
    /// Opened by a plugin that asked for the detector's pixels: the host sends them first,
    /// and the plugin is made (`P::new`) with all of them when anything else arrives.
    Gathering { settings: Option<P::Settings>, pixels: Pixels },
    /// Made.
    Ready(P),
    /// `P::new` failed: every later call says why.
    Failed(String),
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
        config_keys: P::Settings::KEYS.iter().map(|key| key.to_string()).collect(),
    }
}

/// Whether the plugin asked for the `pixels` stream (`Info::uses_pixels`).
fn uses_pixels<P: Plugin>() -> bool {
    P::info().consumes.iter().any(|(stream, _)| stream == "pixels")
}

impl<P: Plugin> Adapter<P> {
    /// The plugin, made now if it was waiting for the pixels.
    fn plugin(&self) -> Result<RefMut<'_, P>, String> {
        let mut stage = self.stage.borrow_mut();
        if let Stage::Gathering { settings, pixels } = &mut *stage {
            let settings = settings.take().unwrap_or_default();
            let mut pixels = std::mem::take(pixels);
            pixels.finish();
            *stage = match P::new(settings, pixels) {
                Ok(plugin) => Stage::Ready(plugin),
                Err(e) => Stage::Failed(e),
            };
        }
        match &*stage {
            Stage::Failed(e) => return Err(e.clone()),
            Stage::Gathering { .. } | Stage::Ready(_) => {}
        }
        Ok(RefMut::map(stage, |stage| match stage {
            Stage::Ready(plugin) => plugin,
            Stage::Gathering { .. } | Stage::Failed(_) => unreachable!("made above"),
        }))
    }

    /// Adds a batch of the `pixels` stream to those gathered for `P::new`.
    fn gather_pixels(&self, batch: &Batch) -> Result<(), String> {
        match &mut *self.stage.borrow_mut() {
            Stage::Gathering { pixels, .. } => pixels.gather(batch),
            Stage::Ready(_) | Stage::Failed(_) => {
                Err("pixels: the stream arrived after the plugin was made".into())
            }
        }
    }
}

impl<P: Plugin> GuestInstance for Adapter<P> {
    fn open(config_json: String) -> Result<Instance, String> {
        let settings: P::Settings = if config_json.trim().is_empty() {
            P::Settings::default()
        } else {
            serde_json::from_str(&config_json).map_err(|e| format!("settings: {e}"))?
        };
        // A plugin without pixels is made at once, so that `new` refusing its settings fails
        // the opening.
        let stage = if uses_pixels::<P>() {
            Stage::Gathering { settings: Some(settings), pixels: Pixels::default() }
        } else {
            Stage::Ready(P::new(settings, Pixels::default())?)
        };
        Ok(Instance::new(Adapter { stage: RefCell::new(stage) }))
    }

    fn consume(&self, stream: String, batch_ipc: Vec<u8>) -> Result<(), String> {
        // The decoder slices the columns out of the received bytes (no copy when aligned).
        let mut bytes = Buffer::from_vec(batch_ipc);
        let mut decoder = StreamDecoder::new();
        let mut plugin = if stream == "pixels" { None } else { Some(self.plugin()?) };
        while !bytes.is_empty() {
            let Some(batch) = decoder
                .decode(&mut bytes)
                .map_err(|e| format!("{stream}: reading the IPC stream: {e}"))?
            else {
                continue;
            };
            match plugin.as_mut() {
                Some(plugin) => dispatch(&mut **plugin, &stream, &Batch::new(batch))?,
                None => self.gather_pixels(&Batch::new(batch))?,
            }
        }
        decoder.finish().map_err(|e| format!("{stream}: reading the IPC stream: {e}"))
    }

    fn snapshot(&self) -> Result<Vec<u8>, String> {
        // Grown as it was written, the buffer doubled and Wasm memory kept the high-water mark:
        // the 2x2's 8 MB per-channel snapshot took 30 MB of the instance, not 8.
        to_json_exact(&*self.plugin()?).map_err(|e| format!("snapshot: {e}"))
    }

    fn merge(&self, snapshot: Vec<u8>) -> Result<(), String> {
        let other: P = serde_json::from_slice(&snapshot).map_err(|e| format!("merge: {e}"))?;
        // The bytes are freed before the state grows, so that it grows into their space: Wasm
        // memory keeps its high-water mark (merging pixel-maps' 8 MB snapshot into a fresh
        // instance otherwise took 8 MB more).
        drop(snapshot);
        crate::Merge::merge(&mut *self.plugin()?, other)
    }

    fn report(&self) -> Result<wit::Report, String> {
        Ok(self.plugin()?.report()?.into_wit())
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
        "channels" => state.channels(batch),
        "hits" => state.hits(batch),
        "events" => state.events(batch),
        "tracks" => state.tracks(batch),
        "track_segments" => state.track_segments(batch),
        "track_pixels" => state.track_pixels(batch),
        "light_events" => state.light_events(batch),
        "light_waveforms" => state.light_waveforms(batch),
        "light_matches" => state.light_matches(batch),
        other => Err(format!("unknown stream {other:?}")),
    }
}

/// `value` as JSON in a buffer of exactly its size: written twice, once to count the bytes.
/// Large snapshots and figure data grown as they were written doubled their buffer, and a
/// plugin's Wasm memory keeps its high-water mark for the instance's life. The bytes are
/// serde_json's ([`WholeFloatsFast`]).
pub(crate) fn to_json_exact<T: serde::Serialize + ?Sized>(
    value: &T,
) -> serde_json::Result<Vec<u8>> {
    let mut counter = ByteCounter(0);
    value.serialize(&mut serde_json::Serializer::with_formatter(&mut counter, WholeFloatsFast))?;
    let mut bytes = Vec::with_capacity(counter.0);
    value.serialize(&mut serde_json::Serializer::with_formatter(&mut bytes, WholeFloatsFast))?;
    Ok(bytes)
}

/// serde_json's compact JSON, byte for byte, with whole-number floats below 10¹⁶ written by an
/// integer routine: serde_json writes them as the integer and `.0` (`2590.0`, `-0.0`), and
/// its shortest-digits float algorithm spends 128-bit multiplications, which Wasm does not
/// have, on every one. Histogram counts and per-channel sums (pixel-maps' 337 k channels,
/// twice per report) are such floats; any other float goes to serde_json's own routine.
struct WholeFloatsFast;

impl serde_json::ser::Formatter for WholeFloatsFast {
    #[inline]
    fn write_f64<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        value: f64,
    ) -> std::io::Result<()> {
        // serde_json hands only finite values here (NaN and infinities are written as null).
        if value.trunc() != value || value.abs() >= 1e16 {
            return serde_json::ser::CompactFormatter.write_f64(writer, value);
        }
        // |value| < 10¹⁶ < 2⁶³ is a whole number: exact as an integer, written by serde_json's
        // own integer routine.
        if value.is_sign_negative() {
            writer.write_all(b"-")?;
        }
        serde_json::ser::CompactFormatter.write_u64(writer, value.abs() as u64)?;
        writer.write_all(b".0")
    }
}

/// A writer that only counts the bytes written to it.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Snapshots and figure data are serde_json's bytes, in a buffer of exactly their size.
    #[test]
    fn json_is_written_in_a_buffer_of_its_exact_size() {
        let value: Vec<(u32, f64, String)> =
            (0..50_000).map(|k| (k, f64::from(k) / 7.0, format!("é{k}"))).collect();
        let bytes = super::to_json_exact(&value).unwrap();
        assert_eq!(bytes, serde_json::to_vec(&value).unwrap());
        assert_eq!(bytes.capacity(), bytes.len());
    }

    /// Whole-number floats written by the integer routine are serde_json's own text: every
    /// whole number to 10⁵, both zeros, random whole numbers of every size to 10¹⁶ and past
    /// it, the edges of the fast path, and floats with a fraction (which go to serde_json).
    #[test]
    fn whole_floats_are_written_as_serde_json_writes_them() {
        let mut bits = 0x2545_F491_4F6C_DD1Du64;
        let mut random = move || {
            bits = bits
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            bits
        };
        let mut values: Vec<f64> = (0..100_000).map(f64::from).collect();
        values.extend([-0.0, 1e15, 1e16, 1e16 - 2.0, 9_007_199_254_740_992.0, 1e16 + 2.0, 1e17]);
        values.extend([0.5, -0.5, 1e-300, 2590.25, f64::MAX, f64::MIN_POSITIVE, 4.9e-324]);
        for _ in 0..200_000 {
            let magnitude = (random() % 54) as i32;
            let whole =
                ((random() >> 11) as f64 / (1u64 << 53) as f64 * 2f64.powi(magnitude)).trunc();
            let sign = if random() & 1 == 1 { -1.0 } else { 1.0 };
            values.push(sign * whole);
            values.push(sign * (whole + 0.25));
            values.push(f64::from_bits(random()));
        }
        values.retain(|v| v.is_finite());
        let expected: Vec<String> =
            values.iter().map(|v| serde_json::to_string(v).unwrap()).collect();
        let written = super::to_json_exact(&values).unwrap();
        let expected_all = format!("[{}]", expected.join(","));
        assert_eq!(String::from_utf8(written).unwrap(), expected_all);
    }

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
