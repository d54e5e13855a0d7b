//! The built-in detector descriptions, selected by name (`detector = "NAME"` in the
//! configuration, `--detector NAME` on the command line):
//!
//! | name | what |
//! |---|---|
//! | `2x2` (default) | the DUNE ND-LAr 2x2 as it runs: four modules, io_groups 1–8, the per-module layouts of ndlar_flow's `layouts_v5` (tile swaps; module 3 is a 2.5.16 layout with a 3.87975 mm pitch), placed as in ndlar_flow's `2x2.yaml` |
//! | `single-module` | one 2x2 module (the no-swap 2.3.16 layout of module 2) at the origin, io_groups 1–2: a single-module test stand |
//! | `sim-module` | the one-module detector of larmon's cosmic simulation fixtures (`../shared/fixtures`, `tests/data/small-*`): its own 2.4.16-style layout at the origin, io_groups 1–2 |
//!
//! The 2x2's layouts are kept in larmon's compact form (`data/detectors/*.toml` + `*.pixels`,
//! see [`crate::layout`]), made from ndlar_flow's files with
//! `cargo run -p larmon-calibrate --example compact_layout`; a test checks them against those
//! files when `../shared/real` is present.
//!
//! Coordinates: larmon's `x` is the pixel-plane horizontal axis (the beam axis, ndlar_flow's
//! `z`), `y` is vertical, `z` is the drift axis (ndlar_flow's `x`), all in mm. A module
//! placed at ndlar_flow's `tpc_offsets` `[ox, oy, oz]` cm has `offset_mm = [10·oz, 10·oy,
//! 10·ox]`.

use crate::config::ModuleConfig;
use crate::error::CalibrationError;
use crate::layout::PixelLayout;

/// A built-in detector.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorDescription {
    /// Name to select it by.
    pub name: &'static str,
    /// One line on what it is.
    pub summary: &'static str,
    /// Its modules.
    pub modules: Vec<ModuleConfig>,
}

/// The default detector.
pub const DEFAULT_DETECTOR: &str = "2x2";

/// Names of every built-in detector, default first.
pub const DETECTOR_NAMES: [&str; 3] = ["2x2", "single-module", "sim-module"];

/// Anode-to-cathode distance of a 2x2 module, mm: the tile planes sit at ±304.31 mm around the
/// cathode (ndlar_flow's `max_drift_distance` 30.431 cm).
pub const MODULE_DRIFT_LENGTH_MM: f64 = 304.31;

/// ndlar_flow `2x2.yaml` `tpc_offsets` (cm, `[drift, vertical, beam]`) of modules 1–4.
const TPC_OFFSETS_CM: [[f64; 3]; 4] =
    [[33.5, 0.0, 33.5], [33.5, 0.0, -33.5], [-33.5, 0.0, 33.5], [-33.5, 0.0, -33.5]];

/// The layout file of the simulation fixtures (our own layout, multi-tile YAML schema).
const SIM_MODULE_LAYOUT: &str = include_str!("../data/layout-2x2-nominal.yaml");

/// The built-in layouts in compact form, by name.
const COMPACT_LAYOUTS: [(&str, &str); 4] = [
    ("2x2-module1", include_str!("../data/detectors/2x2-module1.toml")),
    ("2x2-module2", include_str!("../data/detectors/2x2-module2.toml")),
    ("2x2-module3", include_str!("../data/detectors/2x2-module3.toml")),
    ("2x2-module4", include_str!("../data/detectors/2x2-module4.toml")),
];

/// The built-in single-tile pixel maps, by name.
const PIXEL_MAPS: [(&str, &str); 2] = [
    ("tile-2.4.0", include_str!("../data/detectors/tile-2.4.0.pixels")),
    ("tile-2.5.1", include_str!("../data/detectors/tile-2.5.1.pixels")),
];

/// Prefix of a built-in layout in `[[modules]] layout = "builtin:NAME"`.
pub const BUILT_IN_PREFIX: &str = "builtin:";

/// Names of the built-in layouts (`builtin:NAME`).
pub fn built_in_layout_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = COMPACT_LAYOUTS.iter().map(|(n, _)| *n).collect();
    names.push("sim-module");
    names
}

/// A built-in layout by name (without the `builtin:` prefix).
pub fn built_in_layout(name: &str) -> Result<PixelLayout, CalibrationError> {
    if name == "sim-module" {
        return PixelLayout::from_yaml(SIM_MODULE_LAYOUT);
    }
    let text =
        COMPACT_LAYOUTS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).ok_or_else(|| {
            CalibrationError::Config(format!(
                "no built-in layout {name:?} (built-in: {})",
                built_in_layout_names().join(", ")
            ))
        })?;
    PixelLayout::from_compact(text, |map| {
        PIXEL_MAPS.iter().find(|(n, _)| *n == map).map(|(_, t)| *t)
    })
}

fn module(id: u8, io_group_offset: u8, offset_mm: [f64; 3], layout: &str) -> ModuleConfig {
    ModuleConfig {
        id,
        io_group_offset,
        offset_mm,
        layout: Some(format!("{BUILT_IN_PREFIX}{layout}").into()),
        drift_length_mm: MODULE_DRIFT_LENGTH_MM,
    }
}

/// larmon's `offset_mm` (x = beam, y, z = drift) of ndlar_flow `tpc_offsets` (cm, drift first).
pub fn offset_mm_of_flow_cm(tpc_offset_cm: [f64; 3]) -> [f64; 3] {
    let [drift, vertical, beam] = tpc_offset_cm;
    [beam * 10.0, vertical * 10.0, drift * 10.0]
}

/// A built-in detector by name.
pub fn built_in_detector(name: &str) -> Result<DetectorDescription, CalibrationError> {
    Ok(match name {
        "2x2" => DetectorDescription {
            name: "2x2",
            summary: "DUNE ND-LAr 2x2: four modules, io_groups 1-8, layouts_v5 (module 3: \
                      2.5.16, 3.87975 mm pitch), placement of ndlar_flow 2x2.yaml",
            modules: (1..=4u8)
                .map(|m| {
                    module(
                        m,
                        2 * (m - 1),
                        offset_mm_of_flow_cm(TPC_OFFSETS_CM[m as usize - 1]),
                        &format!("2x2-module{m}"),
                    )
                })
                .collect(),
        },
        "single-module" => DetectorDescription {
            name: "single-module",
            summary: "one 2x2 module (no-swap 2.3.16 layout) at the origin, io_groups 1-2",
            modules: vec![module(1, 0, [0.0; 3], "2x2-module2")],
        },
        "sim-module" => DetectorDescription {
            name: "sim-module",
            summary: "the one-module detector of larmon's simulation fixtures (own 2.4.16-style \
                      layout), io_groups 1-2",
            modules: vec![module(1, 0, [0.0; 3], "sim-module")],
        },
        other => {
            return Err(CalibrationError::Config(format!(
                "no built-in detector {other:?} (built-in: {})",
                DETECTOR_NAMES.join(", ")
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_detector_and_layout_loads() {
        for name in DETECTOR_NAMES {
            let detector = built_in_detector(name).unwrap();
            assert!(!detector.modules.is_empty(), "{name}");
        }
        for name in built_in_layout_names() {
            let layout = built_in_layout(name).unwrap();
            assert_eq!(layout.tiles.len(), 16, "{name}");
        }
        let m3 = built_in_layout("2x2-module3").unwrap();
        assert_eq!((m3.pitch_mm, m3.pixels.len()), (3.87975, 6400));
        assert!(built_in_detector("3x3").unwrap_err().to_string().contains("2x2, single-module"));
    }
}
