//! The calibration stage against the simulation truth: events and t0 from the triggers, PPS
//! rollover, pixel geometry, drift coordinate, charge constants.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use larmon_calibrate::calibrator::Calibrator;
use larmon_calibrate::channels::{KeyFormat, unique_id};
use larmon_calibrate::config::DetectorConfig;
use larmon_calibrate::output::{CalibratedBatch, EventKind};
use larmon_ingest::read::{LarpixReader, ReadOptions};
use larmon_tests::{data, shared_fixture};
use serde_json::Value;

fn calibrate(
    path: &Path,
    config: DetectorConfig,
    batch_rows: usize,
) -> (CalibratedBatch, Calibrator) {
    let mut calibrator = Calibrator::new(config).unwrap();
    let mut all = CalibratedBatch::default();
    let options = ReadOptions { batch_rows, ..Default::default() };
    for batch in LarpixReader::open(path, &options).unwrap() {
        all.extend(calibrator.push(&batch.unwrap()));
    }
    all.extend(calibrator.finish());
    (all, calibrator)
}

fn truth(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn channel_set(truth: &Value, key: &str) -> HashSet<u32> {
    truth["faults"][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let v: Vec<u8> =
                c.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u8).collect();
            unique_id(v[0], v[1], v[2], v[3])
        })
        .collect()
}

fn vec3(v: &Value) -> [f64; 3] {
    let a = v.as_array().unwrap();
    [a[0].as_f64().unwrap(), a[1].as_f64().unwrap(), a[2].as_f64().unwrap()]
}

/// Hit-minus-closest-point on the segment a–b.
fn offset_from_segment(p: [f64; 3], a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    let d = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let len2 = d.iter().map(|x| x * x).sum::<f64>();
    let t = ((0..3).map(|i| (p[i] - a[i]) * d[i]).sum::<f64>() / len2).clamp(0.0, 1.0);
    [p[0] - (a[0] + t * d[0]), p[1] - (a[1] + t * d[1]), p[2] - (a[2] + t * d[2])]
}

/// Checks events, t0, rollover and geometry for one fixture.
fn check_against_truth(packets: &Path, truth_path: &Path, batch_rows: usize) {
    let truth = truth(truth_path);
    let mut config = DetectorConfig::named("sim-module").unwrap();
    config.events.hit_merge_ticks = 0; // one hit per packet, so packets can be counted
    let (out, calibrator) = calibrate(packets, config, batch_rows);
    let hot = channel_set(&truth, "hot_channels");
    let tracks = truth["tracks"].as_array().unwrap();
    let pitch = calibrator.geometry().pitches_mm()[0];

    // Every true track's trigger is one event (seen on both io_groups), with the exact t0.
    let triggered: Vec<_> = out.events.iter().filter(|e| e.kind == EventKind::Triggered).collect();
    assert_eq!(triggered.len(), tracks.len(), "one triggered event per true track");
    let by_t0: HashMap<i64, u64> =
        triggered.iter().map(|e| (e.t0_ticks.unwrap() as i64, e.event_id)).collect();
    let mut hits_by_event: HashMap<u64, Vec<_>> = HashMap::new();
    for h in &out.hits {
        if let Some(id) = h.event_id {
            hits_by_event.entry(id).or_default().push(h);
        }
    }
    let (mut expected_packets, mut found_packets, mut checked) = (0u64, 0u64, 0usize);
    let mut hot_on_line = 0u64;
    for track in tracks {
        let t0 = track["t0_tick"].as_i64().unwrap();
        let event = *by_t0.get(&t0).unwrap_or_else(|| panic!("no event with t0 {t0}"));
        assert_eq!(triggered.iter().find(|e| e.event_id == event).unwrap().n_triggers, 2);
        let (a, b) = (vec3(&track["start_mm"]), vec3(&track["end_mm"]));
        expected_packets += track["n_data_packets"].as_u64().unwrap()
            - track["n_data_packets_bad_parity"].as_u64().unwrap();
        for h in hits_by_event.get(&event).map(Vec::as_slice).unwrap_or_default() {
            let id = unique_id(h.io_group, h.io_channel, h.chip_id, h.channel_id);
            if h.trigger_type == 3 {
                continue; // periodic noise shares the window
            }
            let drift = h.drift_ticks.unwrap();
            assert!((0.0..=2000.0).contains(&drift), "track {}: drift {drift} ticks", track["id"]);
            let p = [h.x_mm.unwrap() as f64, h.y_mm.unwrap() as f64, h.z_mm.unwrap() as f64];
            let d = offset_from_segment(p, a, b);
            let on_line =
                d[0].abs() <= 1.5 * pitch && d[1].abs() <= 1.5 * pitch && d[2].abs() <= 8.0;
            if hot.contains(&id) {
                // A hot pixel fires in the window too; it is a track packet only on the line.
                found_packets += u64::from(on_line);
                hot_on_line += u64::from(on_line);
                continue;
            }
            assert!(on_line, "track {}: hit {p:?} is {d:?} from the true line", track["id"]);
            found_packets += 1;
            checked += 1;
        }
    }
    // Every track packet is in its event: a PPS rollover error of ±1 s would drop some.
    assert_eq!(
        found_packets, expected_packets,
        "track packets found ({hot_on_line} on hot pixels)"
    );
    assert!(checked > 1000, "{checked} hits checked");
}

#[test]
fn small_fixture_events_timing_and_geometry_match_truth() {
    check_against_truth(&data("small-raw.h5"), &data("small-truth.json"), 1 << 15);
}

#[test]
fn events_straddling_batch_boundaries_are_built_whole() {
    // Tiny batches cut almost every event; the result must not change.
    check_against_truth(&data("small-packets.h5"), &data("small-truth.json"), 997);
    let (big, _) =
        calibrate(&data("small-packets.h5"), DetectorConfig::named("sim-module").unwrap(), 1 << 15);
    let (small, _) =
        calibrate(&data("small-packets.h5"), DetectorConfig::named("sim-module").unwrap(), 997);
    assert_eq!(big.events.len(), small.events.len());
    assert_eq!(big.hits.len(), small.hits.len());
}

#[test]
fn cosmics_fixture_events_timing_and_geometry_match_truth() {
    let (Some(raw), Some(truth)) =
        (shared_fixture("cosmics-raw.h5"), shared_fixture("cosmics-truth.json"))
    else {
        return;
    };
    check_against_truth(&raw, &truth, 1 << 15);
}

#[test]
fn merging_sums_charge_and_keeps_every_packet() {
    let (unmerged, _) = calibrate(
        &data("small-raw.h5"),
        {
            let mut c = DetectorConfig::named("sim-module").unwrap();
            c.events.hit_merge_ticks = 0;
            c
        },
        1 << 15,
    );
    let (merged, calibrator) =
        calibrate(&data("small-raw.h5"), DetectorConfig::named("sim-module").unwrap(), 1 << 15);
    let packets: u64 = merged.hits.iter().map(|h| u64::from(h.n_packets)).sum();
    assert_eq!(packets, unmerged.hits.len() as u64);
    assert_eq!(packets, calibrator.stats().data_packets);
    assert!(merged.hits.len() < unmerged.hits.len());
    let q = |b: &CalibratedBatch| b.hits.iter().map(|h| f64::from(h.q_ke)).sum::<f64>();
    assert!((q(&merged) - q(&unmerged)).abs() < 1e-3 * q(&unmerged).abs());
}

#[test]
fn per_channel_pedestals_are_used_and_invert_the_digitisation() {
    let (Some(raw), Some(pedestals)) =
        (shared_fixture("small-raw.h5"), shared_fixture("small-pedestal.json"))
    else {
        return;
    };
    let mut config = DetectorConfig::named("sim-module").unwrap();
    config.charge.pedestal_file = Some(pedestals.clone());
    let table = config.channels(&config.geometry().unwrap()).unwrap();
    assert_eq!(table.len(), 78_400);
    assert_eq!((table.channels_from_files(), table.detector_channels()), (78_400, 78_400));
    assert_eq!(table.files()[0].key_format, KeyFormat::Module0UniqueId);
    let pedestal_json = truth(&pedestals);
    let (out, _) = calibrate(&raw, config.clone(), 1 << 15);
    let gain = config.charge.gain_mv_per_ke;
    for h in out.hits.iter().filter(|h| h.n_packets == 1).take(5000) {
        let id = unique_id(h.io_group, h.io_channel, h.chip_id, h.channel_id);
        let ped = pedestal_json[id.to_string()]["pedestal_mv"].as_f64().unwrap();
        let channel = table.get(id);
        assert_eq!(channel.pedestal_mv, ped);
        // the charge is the inverse of the simulation's ADC formula for some ADC value
        let adc = channel.adc_of(f64::from(h.q_ke), gain);
        assert!((channel.q_ke(adc, gain) - f64::from(h.q_ke)).abs() < 1e-4);
    }
}

/// Tracks against the truth: efficiency for true tracks longer than 10 cm, fakes, and the
/// hits of every reconstructed track near its true line.
fn check_tracks(packets: &Path, truth_path: &Path) {
    let truth = truth(truth_path);
    let (out, calibrator) =
        calibrate(packets, DetectorConfig::named("sim-module").unwrap(), 1 << 15);
    let pitch = calibrator.geometry().pitches_mm()[0];
    let by_t0: HashMap<i64, u64> = out
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Triggered)
        .map(|e| (e.t0_ticks.unwrap() as i64, e.event_id))
        .collect();
    let mut hits_by_track: HashMap<u64, Vec<_>> = HashMap::new();
    for h in &out.hits {
        if let Some(t) = h.track_id {
            hits_by_track.entry(t).or_default().push(h);
        }
    }
    let mut tracks_by_event: HashMap<u64, Vec<_>> = HashMap::new();
    for t in &out.tracks {
        tracks_by_event.entry(t.event_id).or_default().push(t);
    }
    let (mut long_true, mut long_found, mut matched, mut hits_checked, mut hits_off) =
        (0, 0, 0, 0, 0);
    for track in truth["tracks"].as_array().unwrap() {
        let event = by_t0[&track["t0_tick"].as_i64().unwrap()];
        let (a, b) = (vec3(&track["start_mm"]), vec3(&track["end_mm"]));
        let true_length = track["length_mm"].as_f64().unwrap();
        let mut found = false;
        for reco in tracks_by_event.get(&event).map(Vec::as_slice).unwrap_or_default() {
            let hits = &hits_by_track[&reco.track_id];
            let near = |h: &&larmon_calibrate::output::HitRow| {
                let p = [h.x_mm.unwrap() as f64, h.y_mm.unwrap() as f64, h.z_mm.unwrap() as f64];
                let d = offset_from_segment(p, a, b);
                d[0].abs() <= 1.5 * pitch && d[1].abs() <= 1.5 * pitch && d[2].abs() <= 8.0
            };
            let on_line = hits.iter().filter(near).count();
            if on_line * 10 >= hits.len() * 8 {
                matched += 1;
                hits_checked += hits.len();
                hits_off += hits.len() - on_line;
                found |= reco.length_mm >= 0.5 * true_length;
            }
        }
        if true_length > 100.0 {
            long_true += 1;
            long_found += usize::from(found);
        }
    }
    let reco = out.tracks.len();
    let efficiency = long_found as f64 / long_true as f64;
    let fake_fraction = (reco - matched) as f64 / reco as f64;
    eprintln!(
        "tracks: {long_found}/{long_true} true tracks > 10 cm found ({:.1} %), {reco} reconstructed, \
         {} unmatched ({:.1} %), {hits_off}/{hits_checked} matched-track hits off the true line",
        100.0 * efficiency,
        reco - matched,
        100.0 * fake_fraction
    );
    assert!(efficiency >= 0.90, "efficiency {efficiency}");
    assert!(fake_fraction <= 0.05, "fake fraction {fake_fraction}");
    assert!(hits_off * 100 <= hits_checked, "{hits_off} of {hits_checked} hits off the true line");
    assert!(out.segments.iter().all(|s| s.dx_mm > 0.0 && s.dx_mm <= 10.0 + 1e-9));
}

#[test]
fn small_fixture_tracks_match_truth() {
    check_tracks(&data("small-raw.h5"), &data("small-truth.json"));
}

#[test]
fn cosmics_fixture_tracks_match_truth() {
    let (Some(raw), Some(truth)) =
        (shared_fixture("cosmics-raw.h5"), shared_fixture("cosmics-truth.json"))
    else {
        return;
    };
    check_tracks(&raw, &truth);
}

/// A stream stopped anywhere, its state saved as JSON and resumed by a new calibrator (what
/// `larmon watch` does across a restart) gives exactly the output of one uninterrupted pass.
#[test]
fn a_saved_calibrator_state_resumes_the_stream_exactly() {
    let path = data("small-raw.h5");
    let (whole, _) = calibrate(&path, DetectorConfig::named("sim-module").unwrap(), 4096);
    let options = ReadOptions { batch_rows: 4096, ..Default::default() };
    let batches: Vec<_> =
        LarpixReader::open(&path, &options).unwrap().map(|b| b.unwrap()).collect();
    let mut first = Calibrator::new(DetectorConfig::named("sim-module").unwrap()).unwrap();
    let mut resumed = CalibratedBatch::default();
    let cut = batches.len() / 2;
    for batch in &batches[..cut] {
        resumed.extend(first.push(batch));
    }
    let saved = serde_json::to_string(&first.state()).unwrap();
    drop(first);
    let mut second = Calibrator::new(DetectorConfig::named("sim-module").unwrap()).unwrap();
    second.resume(serde_json::from_str(&saved).unwrap()).unwrap();
    for batch in &batches[cut..] {
        resumed.extend(second.push(batch));
    }
    resumed.extend(second.finish());
    assert!(!whole.events.is_empty() && !whole.tracks.is_empty());
    assert_eq!(resumed, whole);
}

/// Tracks searched in the background while the next batch is calibrated: every push hands back
/// the batch before it, whole, and joined end to end the batches are those of a calibrator that
/// searches in place (same rows, same track ids, same statistics).
#[test]
fn tracks_searched_in_the_background_give_the_same_batches_one_push_later() {
    let path = data("small-raw.h5");
    let config = || DetectorConfig::named("sim-module").unwrap();
    let options = ReadOptions { batch_rows: 2048, ..Default::default() };
    let batches: Vec<_> =
        LarpixReader::open(&path, &options).unwrap().map(|b| b.unwrap()).collect();
    assert!(batches.len() >= 10, "{} batches: too few to pipeline", batches.len());
    let mut in_place = Calibrator::new(config()).unwrap();
    let mut background = Calibrator::new(config()).unwrap().with_tracks_in_background();
    let mut expected = Vec::new();
    let mut got = Vec::new();
    for batch in &batches {
        expected.push(in_place.push(batch));
        got.push(background.push(batch));
    }
    expected.push(in_place.finish());
    got.push(background.finish());
    // The first push has nothing to hand back yet; the last batch comes with the rest.
    assert_eq!(got[0], CalibratedBatch::default());
    for k in 1..batches.len() {
        assert_eq!(got[k], expected[k - 1], "batch {k}");
    }
    let mut rest = expected[batches.len() - 1].clone();
    rest.extend(expected[batches.len()].clone());
    assert_eq!(got[batches.len()], rest);
    let tracks: usize = expected.iter().map(|b| b.tracks.len()).sum();
    assert!(tracks >= 10, "{tracks} tracks: too few to compare");
    assert_eq!(background.stats(), in_place.stats());
}

/// Track finding runs on every core: with one thread or four the output is the same, and it is
/// what a search event by event in order gives (track ids numbered in event order).
#[test]
fn tracks_found_on_every_core_are_the_single_threaded_ones() {
    let path = data("small-raw.h5");
    let config = || DetectorConfig::named("sim-module").unwrap();
    let on_threads = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| calibrate(&path, config(), 4096))
    };
    let ((one, calibrator), (four, _)) = (on_threads(1), on_threads(4));
    assert!(one.tracks.len() >= 10, "{} tracks: too few to compare", one.tracks.len());
    assert_eq!(four, one);

    // Event by event, in order, from the calibrated hits without their track ids.
    let detector = config();
    let mut expected = CalibratedBatch { hits: one.hits.clone(), ..Default::default() };
    (0..expected.hits.len()).for_each(|i| expected.hits.set_track_id(i, None));
    assert!(expected.hits.iter().all(|h| h.track_id.is_none()));
    let mut first = 0;
    while first < expected.hits.len() {
        let event = expected.hits.row(first).event_id;
        let end =
            first + expected.hits.iter().skip(first).take_while(|h| h.event_id == event).count();
        let triggered =
            one.events.iter().any(|e| Some(e.event_id) == event && e.t0_ticks.is_some());
        if let (Some(event_id), true) = (event, triggered) {
            let found = larmon_calibrate::tracks::find_tracks(
                &detector.tracks,
                event_id,
                expected.hits.slice(first..end),
                detector.clock_mhz,
                &|tpc| calibrator.geometry().tpc_pitch_mm(tpc),
                expected.tracks.len() as u64,
            );
            for (i, track_id) in found.assignments {
                expected.hits.set_track_id(first + i, Some(track_id));
            }
            expected.tracks.extend(found.tracks);
            expected.segments.extend(found.segments);
            expected.track_pixels.extend(found.pixels);
        }
        first = end;
    }
    assert_eq!(one.tracks, expected.tracks);
    assert_eq!(one.segments, expected.segments);
    assert_eq!(one.track_pixels, expected.track_pixels);
    assert_eq!(one.hits, expected.hits);
}
