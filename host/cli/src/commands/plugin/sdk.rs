//! The plugin SDK and WIT world that ship inside the larmon binary (embedded by build.rs), and
//! the versioned folder they are written to, so a plugin crate anywhere on disk builds against
//! exactly the SDK of the larmon that runs it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/plugin_sdk.rs"));
}

/// The dependency versions larmon's own plugins are built with (the plugin workspace's
/// Cargo.lock): a new crate starts from them, so it resolves offline from cargo's cache.
pub const LOCK: &str = embedded::LOCK;

/// The SDK folder's name: larmon's version and a hash of the SDK's content, so two builds of
/// larmon with different SDKs never share a folder.
pub fn version_name() -> String {
    format!("{}-{}", env!("CARGO_PKG_VERSION"), &embedded::HASH[..12])
}

/// Where SDKs are written: $LARMON_SDK_HOME, else $XDG_DATA_HOME/larmon/sdk, else
/// ~/.local/share/larmon/sdk.
pub fn sdk_home() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("LARMON_SDK_HOME") {
        return Ok(dir.into());
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
        .context("no home folder (HOME unset): set LARMON_SDK_HOME to a folder for the SDK")?;
    Ok(data.join("larmon/sdk"))
}

/// This larmon's SDK crate folder: `<sdk home>/<version>/plugin-sdk`.
pub fn crate_dir() -> Result<PathBuf> {
    Ok(sdk_home()?.join(version_name()).join("plugin-sdk"))
}

/// This larmon's SDK crate folder ([`crate_dir`]), written first if absent.
pub fn ensure_written() -> Result<PathBuf> {
    let crate_dir = crate_dir()?;
    let root = crate_dir.parent().context("SDK folder without parent")?.to_path_buf();
    if crate_dir.join("Cargo.toml").is_file() {
        return Ok(crate_dir);
    }
    // Written beside and renamed, so a folder that exists is complete (two larmons writing
    // at once both succeed; one rename wins).
    let parent = root.parent().context("SDK folder without parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let partial = parent.join(format!(".{}.partial-{}", version_name(), std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    write_to(&partial)
        .with_context(|| format!("writing the plugin SDK to {}", partial.display()))?;
    match std::fs::rename(&partial, &root) {
        Ok(()) => {}
        Err(_) if crate_dir.join("Cargo.toml").is_file() => {
            let _ = std::fs::remove_dir_all(&partial);
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e).with_context(|| format!("moving the SDK to {}", root.display()));
        }
    }
    Ok(crate_dir)
}

fn write_to(root: &Path) -> Result<()> {
    for (name, text) in embedded::FILES {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
        std::fs::write(&path, text)?;
    }
    std::fs::write(root.join("plugin-sdk/Cargo.toml"), embedded::MANIFEST)?;
    std::fs::write(root.join("plugin-sdk/derive/Cargo.toml"), embedded::DERIVE_MANIFEST)?;
    std::fs::write(
        root.join("README.md"),
        format!(
            "The larmon plugin SDK {} and its WIT world, written by larmon {} for plugin crates \
             that depend on plugin-sdk/ here. Do not edit: larmon rewrites a missing folder, \
             never a changed one.\n",
            version_name(),
            env!("CARGO_PKG_VERSION")
        ),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_sdk_has_its_sources_world_and_a_standalone_manifest() {
        let names: Vec<&str> = embedded::FILES.iter().map(|(name, _)| *name).collect();
        for needed in [
            "plugin-sdk/src/lib.rs",
            "plugin-sdk/src/svg.rs",
            "plugin-sdk/python/larmon_plugin.py",
            "plugin-sdk/derive/src/lib.rs",
            "wit/plugin.wit",
        ] {
            assert!(names.contains(&needed), "{needed} missing from {names:?}");
        }
        // The SDK finds its world at ../wit, as in the repository.
        let lib = embedded::FILES.iter().find(|(n, _)| *n == "plugin-sdk/src/lib.rs").unwrap().1;
        assert!(lib.contains("path: \"../wit\""));
        assert!(!embedded::MANIFEST.contains("workspace"), "{}", embedded::MANIFEST);
        assert!(embedded::MANIFEST.contains("path = \"derive\""), "{}", embedded::MANIFEST);
        assert!(!embedded::DERIVE_MANIFEST.contains("workspace"), "{}", embedded::DERIVE_MANIFEST);
        assert!(
            embedded::MANIFEST.contains(&format!("version = \"{}\"", env!("CARGO_PKG_VERSION")))
        );
        assert!(LOCK.contains("name = \"arrow-ipc\""));
    }
}
