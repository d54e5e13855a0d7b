//! The detector configuration: one TOML file (every key optional; the built-in default is the
//! four-module 2x2, see [`crate::detectors`]), resolved into the tables the calibration uses.
//!
//! ```toml
//! detector = "2x2"             # built-in detector: 2x2 (default), single-module, sim-module
//! # flow_detector_file = "2x2.yaml"   # ndlar_flow detector YAML: module placement (tpc_offsets)
//! #                                  # and io_groups (module_to_io_groups) of the modules
//! e_field_kv_cm = 0.5          # drift field
//! temperature_k = 87.17        # LAr temperature (drift velocity from the BNL mobility formula)
//! # drift_velocity_mm_per_us = 1.5965   # or set it directly
//! clock_mhz = 10.0
//! pps_ticks = 10_000_000
//!
//! [clock_correction]           # optional, per io_group: [offset_ticks, slope]
//! "1" = [0.0, 3.0e-7]          # ts' = (ts - offset) / (1 + slope)
//!
//! [[modules]]                  # one per module; replaces the modules of `detector`
//! id = 1
//! io_group_offset = 0          # added to the layout's io_groups (2x2 module m: 2*(m-1))
//! offset_mm = [0.0, 0.0, 0.0]  # x (beam), y, z (drift) offset of the module
//! drift_length_mm = 304.31      # anode to cathode
//! layout = "multi_tile_layout-2.4.16.yaml"   # relative to this file, or "builtin:2x2-module1"
//!
//! [charge]
//! pedestal_file = "pedestal.json"   # {key: {"pedestal_mv": x}}; missing channels: defaults
//! config_file = "config.json"       # {key: {"vref_mv": x, "vcm_mv": y}}
//! # keys: Module-0 unique ids or 2x2 decimal keys, detected per file (see `channels`)
//! vref_mv = 1568.0
//! vcm_mv = 478.1
//! pedestal_mv = 580.0
//! gain_mv_per_ke = 4.522
//!
//! [events]
//! trigger_mask = 2                  # type-7 rows with (trigger_type & mask) != 0 are triggers
//! trigger_window_ticks = 2000       # hits with 0 <= ts - t0 <= window belong to the trigger
//! trigger_coincidence_ticks = 10    # triggers of several io_groups this close are one
//! t0_offset_ticks = 0.0             # t0 = trigger time + offset (ndlar_flow uses -2)
//! hit_merge_ticks = 65              # merge hits of one channel closer than this (0: off)
//! self_trigger_gap_ticks = 200      # untriggered hits closer than this form a cluster
//! self_trigger_min_hits = 10        # ... which becomes a self-triggered event at this size
//! max_lateness_ticks = 2_000_000    # how late (in data time) a packet may arrive
//!
//! [tracks]                          # straight tracks in triggered events
//! enabled = true
//! inlier_mm = 8.0                   # hit-to-line distance of a track hit
//! max_gap_mm = 25.0                 # a gap this long along the line splits tracks
//! min_hits = 5
//! min_length_mm = 20.0
//! ransac_trials = 200
//! max_tracks = 20                   # per event
//! segment_mm = 10.0                 # dQ/dx segment length
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::channels::ChannelTable;
use crate::detectors::{
    BUILT_IN_PREFIX, DEFAULT_DETECTOR, built_in_detector, built_in_layout, offset_mm_of_flow_cm,
};
use crate::error::CalibrationError;
use crate::geometry::{Geometry, ModulePlacement};
use crate::layout::PixelLayout;
use crate::physics::{ChannelCalibration, drift_velocity_mm_per_us};
use crate::tracks::TrackConfig;

/// The whole detector configuration.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// Built-in detector whose modules are used when no `[[modules]]` are given
    /// ([`crate::detectors`]: `2x2`, `single-module`, `sim-module`).
    pub detector: String,
    /// ndlar_flow detector YAML (e.g. `2x2.yaml`): places the modules (`tpc_offsets`, cm) and
    /// gives their io_groups (`module_to_io_groups`).
    pub flow_detector_file: Option<PathBuf>,
    /// Drift field, kV/cm.
    pub e_field_kv_cm: f64,
    /// Liquid-argon temperature, K.
    pub temperature_k: f64,
    /// Overrides the drift velocity computed from field and temperature, mm/µs.
    pub drift_velocity_mm_per_us: Option<f64>,
    /// LArPix clock, MHz.
    pub clock_mhz: f64,
    /// Ticks between PPS resets.
    pub pps_ticks: i64,
    /// Optional clock-drift correction per io_group: `"io_group" = [offset_ticks, slope]`,
    /// applied as `ts' = (ts − offset) / (1 + slope)` (ndlar_flow's TimestampCorrector).
    pub clock_correction: std::collections::BTreeMap<String, [f64; 2]>,
    /// Modules and their layouts; empty: those of `detector`.
    pub modules: Vec<ModuleConfig>,
    /// ADC → charge constants.
    pub charge: ChargeConfig,
    /// Event building.
    pub events: EventConfig,
    /// Track finding.
    pub tracks: TrackConfig,
}

/// One module.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModuleConfig {
    /// Module number (1-based).
    pub id: u8,
    /// Added to the io_groups of the layout.
    pub io_group_offset: u8,
    /// Position offset, mm (x, y, z along the drift).
    pub offset_mm: [f64; 3],
    /// Layout: a multi-tile YAML file, or `builtin:NAME` (see [`crate::detectors`]).
    pub layout: Option<PathBuf>,
    /// Anode-to-cathode distance, mm (2x2 nominal layout: 304.31).
    pub drift_length_mm: f64,
}

/// ADC → charge constants and per-channel files.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ChargeConfig {
    /// Pedestal JSON.
    pub pedestal_file: Option<PathBuf>,
    /// Configuration JSON (vref, vcm).
    pub config_file: Option<PathBuf>,
    /// Default reference voltage, mV.
    pub vref_mv: f64,
    /// Default common-mode voltage, mV.
    pub vcm_mv: f64,
    /// Default pedestal, mV.
    pub pedestal_mv: f64,
    /// Front-end gain, mV/ke⁻.
    pub gain_mv_per_ke: f64,
}

/// Event building.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EventConfig {
    /// Trigger-type bits that make a type-7 row an external trigger.
    pub trigger_mask: u8,
    /// Hits with `0 ≤ ts − t0 ≤ window` belong to the trigger.
    pub trigger_window_ticks: i64,
    /// Triggers (of any io_groups) this close are one trigger.
    pub trigger_coincidence_ticks: i64,
    /// Added to the trigger time to give t0.
    pub t0_offset_ticks: f64,
    /// Hits of one channel closer than this are merged (0 turns merging off).
    pub hit_merge_ticks: i64,
    /// Untriggered hits closer than this in time form one cluster.
    pub self_trigger_gap_ticks: i64,
    /// A cluster with at least this many hits becomes a self-triggered event.
    pub self_trigger_min_hits: usize,
    /// How late, in data time, a packet may arrive after later ones (readout order).
    pub max_lateness_ticks: i64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            detector: DEFAULT_DETECTOR.to_owned(),
            flow_detector_file: None,
            e_field_kv_cm: 0.5,
            temperature_k: 87.17,
            drift_velocity_mm_per_us: None,
            clock_mhz: 10.0,
            pps_ticks: 10_000_000,
            clock_correction: Default::default(),
            modules: Vec::new(),
            charge: ChargeConfig::default(),
            events: EventConfig::default(),
            tracks: TrackConfig::default(),
        }
    }
}

impl Default for ModuleConfig {
    fn default() -> Self {
        Self {
            id: 1,
            io_group_offset: 0,
            offset_mm: [0.0; 3],
            layout: None,
            drift_length_mm: 304.31,
        }
    }
}

impl Default for ChargeConfig {
    fn default() -> Self {
        Self {
            pedestal_file: None,
            config_file: None,
            vref_mv: 1568.0,
            vcm_mv: 478.1,
            pedestal_mv: 580.0,
            gain_mv_per_ke: 4.522,
        }
    }
}

impl Default for EventConfig {
    fn default() -> Self {
        Self {
            trigger_mask: 2,
            trigger_window_ticks: 2000,
            trigger_coincidence_ticks: 10,
            t0_offset_ticks: 0.0,
            hit_merge_ticks: 65,
            self_trigger_gap_ticks: 200,
            self_trigger_min_hits: 10,
            max_lateness_ticks: 2_000_000,
        }
    }
}

impl DetectorConfig {
    /// Reads a TOML file; relative paths inside it are taken relative to the file.
    pub fn load(path: &Path) -> Result<Self, CalibrationError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| CalibrationError::Io { path: path.into(), source })?;
        let config: Self = toml::from_str(&text)
            .map_err(|e| CalibrationError::Config(format!("{}: {e}", path.display())))?;
        Ok(config.resolved_against(path))
    }

    /// Builds the configuration from an already parsed TOML table (e.g. a file that also holds
    /// other sections) read from `source`; relative paths are taken relative to `source`.
    pub fn from_table(table: toml::Table, source: &Path) -> Result<Self, CalibrationError> {
        let config: Self = table
            .try_into()
            .map_err(|e| CalibrationError::Config(format!("{}: {e}", source.display())))?;
        Ok(config.resolved_against(source))
    }

    /// Makes the relative file paths (layouts, pedestal and configuration JSON) relative to the
    /// directory of `source`, the file they were written in.
    fn resolved_against(mut self, source: &Path) -> Self {
        let base = source.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut Option<PathBuf>| {
            if let Some(p) = p.as_mut().filter(|p| p.is_relative()) {
                *p = base.join(&*p);
            }
        };
        for module in &mut self.modules {
            let built_in =
                module.layout.as_ref().and_then(|p| p.to_str()).is_some_and(is_built_in_layout);
            if !built_in {
                resolve(&mut module.layout);
            }
        }
        resolve(&mut self.flow_detector_file);
        resolve(&mut self.charge.pedestal_file);
        resolve(&mut self.charge.config_file);
        self
    }
    /// SHA-256 of this description, the same wherever its files lie: every file it names
    /// (placement, layouts, pedestal and configuration JSON) is replaced by the SHA-256 of its
    /// bytes before the settings are hashed. Built-in layouts are named, not read (the larmon
    /// version fixes them). Run reports record it (`provenance.detector_sha256`) and charge
    /// file declarations too (`dune.detector_sha256`), so both say which calibration made them.
    pub fn description_sha256(&self) -> Result<String, CalibrationError> {
        let mut named = self.clone();
        let by_content = |path: &mut Option<PathBuf>| -> Result<(), CalibrationError> {
            let Some(file) = path.as_mut() else { return Ok(()) };
            if file.to_str().is_some_and(|p| p.starts_with(crate::detectors::BUILT_IN_PREFIX)) {
                return Ok(());
            }
            *file = format!("sha256:{}", file_sha256(file)?).into();
            Ok(())
        };
        by_content(&mut named.flow_detector_file)?;
        by_content(&mut named.charge.pedestal_file)?;
        by_content(&mut named.charge.config_file)?;
        for module in &mut named.modules {
            by_content(&mut module.layout)?;
        }
        let text = serde_json::to_vec(&named).expect("a detector description serialises");
        Ok(sha256_hex(&text))
    }

    /// Drift velocity in mm/µs (configured, or from field and temperature).
    pub fn drift_velocity(&self) -> f64 {
        self.drift_velocity_mm_per_us
            .unwrap_or_else(|| drift_velocity_mm_per_us(self.e_field_kv_cm, self.temperature_k))
    }

    /// Drift distance per clock tick, mm.
    pub fn drift_mm_per_tick(&self) -> f64 {
        self.drift_velocity() / self.clock_mhz
    }

    /// The clock correction as a table indexed by io_group: (offset, 1 + slope).
    pub fn clock_correction_table(&self) -> Result<Box<[(f64, f64); 256]>, CalibrationError> {
        let mut table = Box::new([(0.0, 1.0); 256]);
        for (key, [offset, slope]) in &self.clock_correction {
            let io_group: u8 = key.parse().map_err(|_| {
                CalibrationError::Config(format!(
                    "clock_correction: {key:?} is not an io_group (0-255)"
                ))
            })?;
            table[io_group as usize] = (*offset, 1.0 + slope);
        }
        Ok(table)
    }

    /// The built-in detector named by `detector`.
    pub fn named(name: &str) -> Result<Self, CalibrationError> {
        built_in_detector(name)?;
        Ok(Self { detector: name.to_owned(), ..Self::default() })
    }

    /// The modules in force: `[[modules]]`, else those of the named detector; placed by the
    /// ndlar_flow detector file when one is given.
    pub fn modules_in_force(&self) -> Result<Vec<ModuleConfig>, CalibrationError> {
        let mut modules = if self.modules.is_empty() {
            built_in_detector(&self.detector)?.modules
        } else {
            self.modules.clone()
        };
        if let Some(path) = &self.flow_detector_file {
            let placement = FlowDetectorFile::load(path)?;
            for module in &mut modules {
                placement.place(module).map_err(|reason| CalibrationError::ChannelFile {
                    path: path.clone(),
                    reason,
                })?;
            }
        }
        Ok(modules)
    }

    /// Where the modules' layouts come from, as a user would name them.
    pub fn layout_names(&self) -> Result<Vec<String>, CalibrationError> {
        Ok(self
            .modules_in_force()?
            .iter()
            .map(|m| m.layout.as_ref().map_or("(none)".into(), |p| p.display().to_string()))
            .collect())
    }

    /// Builds the geometry of every module.
    pub fn geometry(&self) -> Result<Geometry, CalibrationError> {
        let modules = self.modules_in_force()?;
        if modules.is_empty() {
            return Err(CalibrationError::Config("no [[modules]]".into()));
        }
        let mut placed = Vec::with_capacity(modules.len());
        for m in &modules {
            let layout = load_layout(m)?;
            let placement = ModulePlacement {
                module: m.id,
                io_group_offset: m.io_group_offset,
                offset_mm: m.offset_mm,
                drift_length_mm: m.drift_length_mm,
            };
            placed.push((layout, placement));
        }
        Geometry::from_modules(&placed)
    }

    /// Loads the per-channel constants, resolving their keys against `geometry`.
    pub fn channels(&self, geometry: &Geometry) -> Result<ChannelTable, CalibrationError> {
        let c = &self.charge;
        let default =
            ChannelCalibration { vref_mv: c.vref_mv, vcm_mv: c.vcm_mv, pedestal_mv: c.pedestal_mv };
        ChannelTable::load(default, c.pedestal_file.as_deref(), c.config_file.as_deref(), geometry)
    }
}

fn is_built_in_layout(name: &str) -> bool {
    name.starts_with(BUILT_IN_PREFIX)
}

/// Reads the layout of a module (a YAML file or a built-in one).
fn load_layout(module: &ModuleConfig) -> Result<PixelLayout, CalibrationError> {
    let Some(path) = &module.layout else {
        return Err(CalibrationError::Config(format!(
            "module {}: no layout (give `layout = \"multi_tile_layout-….yaml\"` or a built-in \
             one such as \"builtin:2x2-module1\")",
            module.id
        )));
    };
    if let Some(name) = path.to_str().and_then(|p| p.strip_prefix(BUILT_IN_PREFIX)) {
        return built_in_layout(name);
    }
    let text = std::fs::read_to_string(path)
        .map_err(|source| CalibrationError::Io { path: path.clone(), source })?;
    PixelLayout::from_yaml(&text).map_err(|e| {
        CalibrationError::Layout(format!("module {} ({}): {e}", module.id, path.display()))
    })
}

/// The part of an ndlar_flow detector YAML (`2x2.yaml`, `module1.yaml`) larmon uses.
#[derive(Deserialize)]
struct FlowDetectorFile {
    tpc_offsets: Vec<[f64; 3]>,
    #[serde(default)]
    module_to_io_groups: std::collections::BTreeMap<u8, Vec<u8>>,
}

impl FlowDetectorFile {
    fn load(path: &Path) -> Result<Self, CalibrationError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| CalibrationError::Io { path: path.into(), source })?;
        serde_norway::from_str(&text).map_err(|e| CalibrationError::ChannelFile {
            path: path.into(),
            reason: format!("not an ndlar_flow detector YAML with tpc_offsets: {e}"),
        })
    }

    /// Places module `id` (1-based) at its `tpc_offsets` entry, with its io_groups.
    fn place(&self, module: &mut ModuleConfig) -> Result<(), String> {
        let offset =
            self.tpc_offsets.get(usize::from(module.id).wrapping_sub(1)).ok_or_else(|| {
                format!(
                    "no tpc_offsets entry for module {} ({} listed)",
                    module.id,
                    self.tpc_offsets.len()
                )
            })?;
        module.offset_mm = offset_mm_of_flow_cm(*offset);
        if let Some(first) = self.module_to_io_groups.get(&module.id).and_then(|g| g.iter().min()) {
            module.io_group_offset =
                first.checked_sub(1).ok_or("io_group 0 in module_to_io_groups")?;
        }
        Ok(())
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex SHA-256 of a file's bytes.
pub fn file_sha256(path: &std::path::Path) -> Result<String, CalibrationError> {
    let bytes = std::fs::read(path)
        .map_err(|source| CalibrationError::Io { path: path.to_path_buf(), source })?;
    Ok(sha256_hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_toml_is_the_built_in_default_and_unknown_keys_are_refused() {
        let config: DetectorConfig = toml::from_str("").unwrap();
        assert_eq!(config, DetectorConfig::default());
        assert!((config.drift_velocity() - 1.5965).abs() < 5e-4);
        let err = toml::from_str::<DetectorConfig>("e_feild_kv_cm = 0.5").unwrap_err();
        assert!(err.to_string().contains("e_feild_kv_cm"), "{err}");
        let partial: DetectorConfig =
            toml::from_str("[events]\ntrigger_window_ticks = 1820").unwrap();
        assert_eq!(partial.events.trigger_window_ticks, 1820);
        assert_eq!(partial.events.trigger_mask, 2);
    }
}
