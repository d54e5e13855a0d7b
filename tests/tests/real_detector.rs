//! larmon against the real 2x2's own files: the built-in detector against ndlar_flow's geometry
//! (the Run-2 flow sample's hit positions, committed under `tests/data/real/`, and the layout
//! files of `../shared/real` when present), channel identity under UART reassignment, and the
//! 2x2 decimal pedestal keys.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use larmon_calibrate::channels::{ChannelTable, KeyFormat, unique_id};
use larmon_calibrate::config::DetectorConfig;
use larmon_calibrate::detectors::built_in_layout;
use larmon_calibrate::geometry::Geometry;
use larmon_calibrate::layout::PixelLayout;
use larmon_calibrate::physics::ChannelCalibration;
use larmon_ingest::read::read_flow_hits;
use larmon_tests::data;

fn the_2x2() -> Geometry {
    DetectorConfig::default().geometry().unwrap()
}

fn run2_sample() -> PathBuf {
    data("real/run2-cosmics-flow-sample.hdf5")
}

/// `../shared/real/PATH`, or `None` with a SKIPPED note.
fn shared_real(path: &str) -> Option<PathBuf> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/real").join(path);
    if full.exists() {
        Some(full)
    } else {
        eprintln!("SKIPPED: {} not found (needs ../shared/real)", full.display());
        None
    }
}

#[test]
fn the_default_detector_is_the_four_module_2x2_with_its_pitches() {
    let g = the_2x2();
    assert_eq!(g.tiles.len(), 64);
    // 3 modules × 16 tiles × 4900 pixels (4.434 mm) + 16 × 6400 (2.5.16, 3.87975 mm).
    assert_eq!(g.channels().len(), 337_600);
    let modules: BTreeSet<u8> = g.tiles.iter().map(|t| t.module).collect();
    assert_eq!(modules.into_iter().collect::<Vec<_>>(), [1, 2, 3, 4]);
    for tile in &g.tiles {
        let expected = if tile.module == 3 { 3.87975 } else { 4.434 };
        assert_eq!(tile.pitch_mm, expected, "tile {}", tile.id);
    }
    let io_groups: BTreeSet<u8> = g.channels().iter().map(|c| c.io_group).collect();
    assert_eq!(io_groups.into_iter().collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
}

/// Every hit of the Run-2 sample is known to larmon and sits where ndlar_flow put it: the
/// pixel-plane position to 1 µm and the drift coordinate consistent with one drift velocity.
#[test]
fn every_run2_hit_is_where_ndlar_flow_puts_it() {
    let g = the_2x2();
    let hits = read_flow_hits(&run2_sample()).unwrap();
    assert_eq!(hits.len(), 15_297);
    let mut read_on_another_uart = BTreeSet::new();
    let mut channels = BTreeSet::new();
    for h in &hits {
        let (io_group, io_channel, chip, channel) =
            (h.io_group as u8, h.io_channel as u8, h.chip_id as u8, h.channel_id as u8);
        channels.insert((io_group, io_channel, chip, channel));
        let identity = g
            .identify(io_group, io_channel, chip, channel)
            .unwrap_or_else(|| panic!("unknown channel {h:?}"));
        if identity.io_channel != io_channel {
            read_on_another_uart.insert((io_group, io_channel, chip, channel));
        }
        let p = g.pixel(io_group, io_channel, chip, channel).unwrap();
        // larmon x = ndlar_flow z (beam), y = y; mm vs cm.
        assert!((p.x - 10.0 * h.z).abs() < 1e-3, "x {} vs z {} cm: {h:?}", p.x, h.z);
        assert!((p.y - 10.0 * h.y).abs() < 1e-3, "y {} vs {} cm: {h:?}", p.y, h.y);
        let tile = &g.tiles[p.tile_index as usize];
        let drift_mm = (10.0 * h.x - tile.anode_z) * tile.drift_dir;
        // 0.1 µs ticks at ndlar_flow's drift velocity, 1.59645 mm/µs (0.5 kV/cm, 87.17 K);
        // hits before t0 have a negative drift time and sit behind the anode.
        let expected_mm = 0.159_645 * h.t_drift;
        assert!((drift_mm - expected_mm).abs() < 1e-2, "{drift_mm} vs {expected_mm} mm: {h:?}");
    }
    // 37 % of the active channels are read on another UART of their tile than listed.
    assert_eq!(channels.len(), 4964);
    assert_eq!(read_on_another_uart.len(), 1834);
}

#[test]
fn the_built_in_layouts_are_ndlar_flows_layouts_v5() {
    let files = [
        ("2x2-module1", "multi_tile_layout-2.3.16_mod0_swap_T8T4T7.yaml"),
        ("2x2-module2", "multi_tile_layout-2.3.16_mod1_noswap.yaml"),
        ("2x2-module3", "multi_tile_layout-2.5.16_mod2_swap_T7T8.yaml"),
        ("2x2-module4", "multi_tile_layout-2.3.16_mod3_swap_T5T8_T9T10.yaml"),
    ];
    for (name, file) in files {
        let Some(path) = shared_real(&format!("ndlar-flow-config/layouts_v5/{file}")) else {
            return;
        };
        let real = PixelLayout::from_yaml(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(built_in_layout(name).unwrap(), real.normalised(), "{name} vs {file}");
    }
}

#[test]
fn every_real_multi_tile_layout_reads_and_a_single_tile_one_is_refused() {
    for (file, pitch, pixels) in [
        ("ndlar-flow-config/multi_tile_layout-2.3.16.yaml", 4.434, 4900),
        ("ndlar-flow-config/multi_tile_layout-2.4.16.yaml", 4.434, 4900),
        ("ndlar-flow-config/multi_tile_layout-2.5.16.yaml", 3.87975, 6400),
        ("crs-daq-config/multi_tile_layout-3.0.40.yaml", f64::NAN, 0),
    ] {
        let Some(path) = shared_real(file) else { return };
        let layout = PixelLayout::from_yaml(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        if !pitch.is_nan() {
            assert_eq!((layout.pitch_mm, layout.pixels.len()), (pitch, pixels), "{file}");
        }
        // 2.3.16 writes tile_indeces as [module, anode, tile]: the anode is still 1 or 2.
        assert!(layout.tiles.iter().all(|t| t.anode == 1 || t.anode == 2), "{file}");
    }
    let Some(single) = shared_real("crs-daq-config/layout-2.4.0.yaml") else { return };
    let err = PixelLayout::from_yaml(&std::fs::read_to_string(single).unwrap()).unwrap_err();
    assert!(err.to_string().contains("single-tile"), "{err}");
}

/// ndlar_flow's `2x2.yaml` placement gives the same detector as the built-in one.
#[test]
fn the_flow_detector_file_places_the_modules_as_built_in() {
    let Some(file) = shared_real("ndlar-flow-config/2x2.yaml") else { return };
    let mut moved = DetectorConfig::default();
    for m in &mut moved.modules_in_force().unwrap() {
        m.offset_mm = [0.0; 3];
        moved.modules.push(m.clone());
    }
    assert!(moved.modules.iter().all(|m| m.offset_mm == [0.0; 3]));
    moved.flow_detector_file = Some(file);
    assert_eq!(
        moved.modules_in_force().unwrap(),
        DetectorConfig::default().modules_in_force().unwrap()
    );
}

fn nominal() -> ChannelCalibration {
    ChannelCalibration { vref_mv: 1568.0, vcm_mv: 478.1, pedestal_mv: 580.0 }
}

/// The 2x2 decimal pedestal file: detected as decimal, applied to exactly its channels (on
/// any UART of their tile), nothing else changed.
#[test]
fn a_decimal_pedestal_file_shifts_exactly_its_channels() {
    let g = the_2x2();
    let file = data("real/ped-iog1-excerpt.json");
    let table = ChannelTable::load(nominal(), Some(&file), None, &g).unwrap();
    let summary = &table.files()[0];
    assert_eq!(summary.key_format, KeyFormat::Decimal2x2);
    assert_eq!((summary.keys, summary.applied, summary.unknown), (10, 10, 0));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let mut shifted = 0;
    for c in g.channels() {
        let key = u64::from(c.io_group) * 1_000_000_000
            + u64::from(c.io_channel) * 100_000
            + u64::from(c.chip_id) * 100
            + u64::from(c.channel_id);
        let got = table.lookup(&g, c.io_group, c.io_channel, c.chip_id, c.channel_id);
        match json.get(key.to_string()) {
            Some(entry) => {
                assert_eq!(got.pedestal_mv, entry["pedestal_mv"].as_f64().unwrap());
                // the same chip read on another UART of its tile gets it too
                let other = if c.io_channel % 4 == 0 { c.io_channel - 1 } else { c.io_channel + 1 };
                let again = table.lookup(&g, c.io_group, other, c.chip_id, c.channel_id);
                assert_eq!(again.pedestal_mv, got.pedestal_mv);
                shifted += 1;
            }
            None => assert_eq!(got, nominal(), "{c:?}"),
        }
    }
    assert_eq!(shifted, 10);
    assert_eq!(table.channels_from_files(), 10);
    // The same numbers as Module-0 unique ids would be other channels: never silently.
    assert_ne!(unique_id(1, 1, 11, 18), 1_000_101_118);
}

/// io_group ≥ 5 keys need no more than 32 bits to be understood; a key of a UART the 2x2
/// layouts do not have is named, not applied, and a file with no channel of the detector fails.
#[test]
fn decimal_keys_of_every_io_group_are_read_and_unknown_ones_are_named() {
    let g = the_2x2();
    let file = data("real/ped-iog1-and-iog6-excerpt.json");
    let table = ChannelTable::load(nominal(), Some(&file), None, &g).unwrap();
    let summary = &table.files()[0];
    assert_eq!(summary.key_format, KeyFormat::Decimal2x2);
    // 6-46-43-7 and 6-46-43-8: io_channel 46 is on no tile of the v5 layouts (UARTs 1-32).
    assert_eq!((summary.keys, summary.applied, summary.unknown), (4, 2, 2));
    assert_eq!(summary.unknown_examples[0], "6004604307 (6-46-43-7)");
    let sim = DetectorConfig::named("sim-module").unwrap().geometry().unwrap();
    let only_iog6 = std::env::temp_dir().join(format!("larmon-iog6-{}.json", std::process::id()));
    std::fs::write(&only_iog6, r#"{"6004604307": {"pedestal_mv": 591.6}}"#).unwrap();
    let err = ChannelTable::load(nominal(), Some(&only_iog6), None, &sim).unwrap_err().to_string();
    assert!(err.contains("6004604307") && err.contains("none of its 1 keys"), "{err}");
    std::fs::write(&only_iog6, r#"{"abc": {"pedestal_mv": 591.6}}"#).unwrap();
    let err = ChannelTable::load(nominal(), Some(&only_iog6), None, &sim).unwrap_err().to_string();
    assert!(err.contains("\"abc\"") && err.contains(&only_iog6.display().to_string()), "{err}");
    std::fs::write(&only_iog6, r#"{"99999999999999999999": {"pedestal_mv": 1.0}}"#).unwrap();
    let err = ChannelTable::load(nominal(), Some(&only_iog6), None, &sim).unwrap_err().to_string();
    assert!(err.contains("99999999999999999999"), "{err}");
    let _ = std::fs::remove_file(only_iog6);
}
