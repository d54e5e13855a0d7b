//! The benchmark plot as a component; `plot.rs` is also compiled natively by
//! host/runtime/benches/wasm_vs_native.rs, so both run the same code on the same batches.

mod plot;

larmon_plugin_sdk::export_plugin!(plot::AdcStats);
