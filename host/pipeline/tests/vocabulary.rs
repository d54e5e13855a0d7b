//! Every bundled plugin asks only for streams and columns of the pipeline's vocabulary: a
//! misspelt stream or column would otherwise reach the plugin as silence (the host projects a
//! batch onto the columns it has).

use std::path::PathBuf;

use larmon_pipeline::{PluginOptions, Stream};

fn bundled_plugins() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm32-wasip2/plugin");
    dir.is_dir().then_some(dir)
}

#[test]
fn bundled_plugins_consume_known_streams_and_columns() {
    let Some(dir) = bundled_plugins() else {
        println!("SKIPPED: no bundled plugins built (bash .ci/plugins)");
        return;
    };
    // Compiled components are cached by their SHA-256: one cache under target/ serves every run.
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/plugin-cache-tests");
    let options = PluginOptions {
        plugin_dir: Some(dir),
        cache_dir: Some(cache.clone()),
        ..PluginOptions::default()
    };
    let set = options.load().expect("bundled plugins load");
    assert!(set.plugins.len() >= 14, "{} plugins", set.plugins.len());
    let mut problems = Vec::new();
    for plugin in &set.plugins {
        let info = plugin.info();
        for request in &info.consumes {
            let Some(stream) = Stream::from_name(&request.stream) else {
                problems.push(format!("{}: unknown stream {:?}", info.name, request.stream));
                continue;
            };
            let schema = stream.schema();
            for column in &request.columns {
                if schema.index_of(column).is_err() {
                    problems.push(format!("{}: {stream} has no column {column:?}", info.name));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
