//! ndlar_flow files as input, checked on the real Run-2 flow sample (`tests/data/real/`, from
//! the 2x2's own reconstruction): larmon's streams hold every hit where flow put it, flow's t0
//! for externally triggered events, and charge that differs from flow's Q_raw only by the
//! per-channel pedestal. The reference is the hit dataset read whole and on its own
//! (`read_flow_hits`), not the event-by-event reader under test.

use std::collections::{BTreeMap, HashMap};

use larmon_calibrate::DetectorConfig;
use larmon_calibrate::output::{CalibratedBatch, EventKind};
use larmon_ingest::read::{FlowChargeHit, ReadOptions, read_flow_hits};
use larmon_pipeline::Stream;
use larmon_pipeline::input::charge::{ChargeSource, RunCalibration};
use larmon_pipeline::input::flow::CALIBRATION_KEY;
use larmon_tests::data;

fn sample() -> std::path::PathBuf {
    data("real/run2-cosmics-flow-sample.hdf5")
}

/// Every step of the sample through larmon's 2x2 calibration.
fn calibrated() -> (CalibratedBatch, ChargeSource) {
    let calibration = RunCalibration::new(DetectorConfig::default()).unwrap();
    let mut source = calibration.open_file(&sample(), 3, &ReadOptions::default()).unwrap();
    assert_eq!(source.kind_name(), "ndlar_flow");
    let mut all = CalibratedBatch::default();
    while let Some(step) = source.next_step().unwrap() {
        assert!(step.packets.is_none(), "the sample's packets were emptied by its author");
        all.extend(step.calibrated);
    }
    all.extend(source.finish());
    (all, source)
}

type ChannelTime = (u8, u8, u8, u8, u64);

fn key(h: &FlowChargeHit) -> ChannelTime {
    (h.io_group as u8, h.io_channel as u8, h.chip_id as u8, h.channel_id as u8, h.ts_pps)
}

#[test]
fn every_hit_of_the_flow_sample_is_where_flow_put_it() {
    let (out, source) = calibrated();
    assert_eq!(out.events.len(), 100);
    assert_eq!(out.hits.len(), 15_297);
    let triggered = out.events.iter().filter(|e| e.kind == EventKind::Triggered).count();
    assert_eq!(triggered, 81, "81 events have an external-trigger t0 in combined/t0");
    assert_eq!(source.stats().packets_outside_geometry, 0);
    // Ids of the run's 4th file start at 3 << 40 and keep flow's event id.
    assert!(out.events.iter().all(|e| e.event_id >> 40 == 3));

    let mut reference: HashMap<ChannelTime, Vec<FlowChargeHit>> = HashMap::new();
    for h in read_flow_hits(&sample()).unwrap() {
        reference.entry(key(&h)).or_default().push(h);
    }
    let t0_of: HashMap<u64, Option<f64>> =
        out.events.iter().map(|e| (e.event_id, e.t0_ticks)).collect();
    for hit in &out.hits {
        let ts_pps = hit.ts_ticks.rem_euclid(10_000_000) as u64;
        let k = (hit.io_group, hit.io_channel, hit.chip_id, hit.channel_id, ts_pps);
        let candidates = reference.get(&k).unwrap_or_else(|| panic!("no flow hit {k:?}"));
        let x = f64::from(hit.x_mm.unwrap());
        let y = f64::from(hit.y_mm.unwrap());
        let found = candidates
            .iter()
            .find(|f| (x - 10.0 * f.z).abs() < 1e-3 && (y - 10.0 * f.y).abs() < 1e-3)
            .unwrap_or_else(|| panic!("{hit:?} not at any of {candidates:?}"));
        assert!(hit.tile.is_some() && hit.tpc.is_some(), "{hit:?}");
        let t0 = t0_of[&hit.event_id.unwrap()];
        match t0 {
            Some(_) => {
                let z = f64::from(hit.z_mm.unwrap());
                assert!((z - 10.0 * found.x).abs() < 1e-3, "drift coordinate {z} vs {}", found.x);
                assert_eq!(f64::from(hit.drift_ticks.unwrap()), found.t_drift);
            }
            None => assert!(hit.z_mm.is_none(), "no t0, no drift coordinate: {hit:?}"),
        }
    }
}

/// larmon's charge comes from the raw ADC with larmon's channel constants; flow's Q_raw from the
/// same ADC with flow's pedestals. Per channel, the two differ by one constant: the pedestal.
#[test]
fn charge_differs_from_flow_q_raw_only_by_the_channel_pedestal() {
    let (out, _) = calibrated();
    let mut reference: HashMap<ChannelTime, Vec<f64>> = HashMap::new();
    for h in read_flow_hits(&sample()).unwrap() {
        reference.entry(key(&h)).or_default().push(h.q_raw);
    }
    let mut offsets: BTreeMap<(u8, u8, u8, u8), Vec<f64>> = BTreeMap::new();
    for hit in &out.hits {
        let ts_pps = hit.ts_ticks.rem_euclid(10_000_000) as u64;
        let k = (hit.io_group, hit.io_channel, hit.chip_id, hit.channel_id, ts_pps);
        let q_raw = reference[&k][0];
        offsets.entry((k.0, k.1, k.2, k.3)).or_default().push(f64::from(hit.q_ke) - q_raw);
    }
    let mut checked = 0;
    let mut distinct_pedestals = Vec::new();
    for (channel, d) in &offsets {
        let (lo, hi) = d.iter().fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
        // f32 hit charge: 1e-3 ke⁻ is far below one ADC count (~0.9 ke⁻).
        assert!(hi - lo < 1e-3, "channel {channel:?}: offsets {lo}..{hi} ke⁻");
        if d.len() > 1 {
            checked += 1;
        }
        distinct_pedestals.push((lo * 1e3).round() as i64);
    }
    assert!(checked > 1000, "{checked} channels with more than one hit");
    distinct_pedestals.sort();
    distinct_pedestals.dedup();
    assert!(
        distinct_pedestals.len() > 100,
        "flow's per-channel pedestals differ from larmon's nominal one by channel"
    );
}

#[test]
fn flow_batches_say_which_calibration_made_them() {
    let calibration = RunCalibration::new(DetectorConfig::default()).unwrap();
    let mut source = calibration.open_file(&sample(), 0, &ReadOptions::default()).unwrap();
    let step = source.next_step().unwrap().unwrap();
    let batches = source.batches(step.calibrated);
    let hits = batches.iter().find(|(s, _)| *s == Stream::Hits).unwrap();
    let mark = hits.1.schema().metadata().get(CALIBRATION_KEY).cloned().unwrap();
    assert!(mark.contains("charge/calib_prompt_hits") && mark.contains("raw_hits ADC"), "{mark}");
    assert!(batches.iter().any(|(s, _)| *s == Stream::Tracks), "larmon's tracks on flow hits");
}
