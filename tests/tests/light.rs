//! Light readout against the truth: larmon's own simulation (`larmon simulate`'s light, on the
//! 2x2 with its validated channel map; always runs) and the fixtures' (../shared/fixtures
//! `*-light.data`, `*-light-flow.h5`, `*-light-truth.json`, made by another generator; skipped
//! with a message when absent): every dead, noisy and clipping input and every missing-board
//! event found with no false flag, baselines within 1 ADC (14-bit) of the truth, timestamps
//! exact, and the same numbers from the MPD file and the flow file.

use std::collections::BTreeSet;
use std::path::Path;

use larmon_ingest::light::channel_map::ChannelMap;
use larmon_ingest::light::scan::{HealthRules, LightFlag, LightScan};
use larmon_ingest::light::{LightFile, TAI_MINUS_UTC_S};
use larmon_tests::{scratch, shared_fixture, simulated_light_run};
use serde_json::Value;

fn truth(name: &str) -> Option<Value> {
    let path = shared_fixture(name)?;
    Some(serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
}

fn pairs(list: &Value) -> BTreeSet<(u8, u8)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_u64().unwrap() as u8, p[1].as_u64().unwrap() as u8))
        .collect()
}

fn scan(path: &Path, check_event: &mut dyn FnMut(u64, u64, [u64; 8], [u32; 8], u8)) -> LightScan {
    let mut file = LightFile::open(path).unwrap();
    let mut scan = LightScan::new(80);
    file.for_each_event(|event| {
        scan.add_event(event);
        check_event(event.event, event.unix_ms, event.tai_s, event.tai_ns, event.boards_present);
    })
    .unwrap();
    scan
}

fn check_fixture(prefix: &str) {
    let Some(truth) = truth(&format!("{prefix}-light-truth.json")) else { return };
    let mpd = shared_fixture(&format!("{prefix}-light.data")).unwrap();
    let flow = shared_fixture(&format!("{prefix}-light-flow.h5")).unwrap();
    check_against_truth(&truth, &mpd, Some(&flow), &ChannelMap::nominal_2x2());
}

/// The light simulation of `larmon simulate` read back against its own truth.
#[test]
fn simulated_light_matches_its_truth() {
    let sim = simulated_light_run(&scratch("simulated-light"), 4, 3, 1);
    let events = sim.light_truth["events"].as_array().unwrap().len();
    assert_eq!(events, 60, "one light event per muon");
    let faults = &sim.light_truth["faults"];
    assert_eq!(pairs(&faults["dead_channels"]).len(), 4);
    assert_eq!(pairs(&faults["noisy_channels"]).len(), 4);
    assert!(!faults["missing_board_events"].as_array().unwrap().is_empty());
    check_against_truth(&sim.light_truth, &sim.light, None, &ChannelMap::validated_2x2());
    check_pulses(&sim.light_truth, &sim.light);
}

fn check_against_truth(truth: &Value, mpd: &Path, flow: Option<&Path>, map: &ChannelMap) {
    let events = truth["events"].as_array().unwrap();

    // MPD: timestamps of every event exactly, boards present.
    let mut seen = 0;
    let mpd_scan = scan(mpd, &mut |event, unix_ms, tai_s, tai_ns, present| {
        let t = &events[event as usize];
        assert_eq!(unix_ms, t["unix_ms"].as_u64().unwrap(), "event {event}");
        let boards: Vec<u64> =
            t["boards_present"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap()).collect();
        assert_eq!(u64::from(present.count_ones()), boards.len() as u64, "event {event}");
        for adc in boards {
            assert_eq!(tai_s[adc as usize], t["tai_s"].as_u64().unwrap(), "event {event}");
            assert_eq!(u64::from(tai_ns[adc as usize]), t["tai_ns"].as_u64().unwrap());
            // TAI − 37 s is the Unix second of the trigger.
            assert_eq!(tai_s[adc as usize] - TAI_MINUS_UTC_S, unix_ms / 1000);
        }
        seen += 1;
    });
    assert_eq!(seen, events.len());
    assert_eq!(mpd_scan.events as usize, events.len());

    // Missing boards: exactly the truth's events and boards.
    let missing: BTreeSet<(u64, u8)> = mpd_scan.missing_boards.iter().copied().collect();
    let truth_missing: BTreeSet<(u64, u8)> = truth["faults"]["missing_board_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m[0].as_u64().unwrap(), m[1].as_u64().unwrap() as u8))
        .collect();
    assert_eq!(missing, truth_missing);

    // Dead, noisy, clipping: exactly the truth's inputs, no false flag (clipping: the inputs
    // that clipped, where the truth lists them, else the saturating ones).
    let flagged = mpd_scan.flagged(Some(map), &HealthRules::default());
    let of = |kind: LightFlag| -> BTreeSet<(u8, u8)> {
        flagged.iter().filter(|f| f.kind == kind).map(|f| (f.adc, f.channel)).collect()
    };
    assert_eq!(of(LightFlag::Dead), pairs(&truth["faults"]["dead_channels"]));
    assert_eq!(of(LightFlag::Noisy), pairs(&truth["faults"]["noisy_channels"]));
    let clipping =
        truth["faults"].get("clipping_channels").unwrap_or(&truth["faults"]["saturating_channels"]);
    assert_eq!(of(LightFlag::Clipping), pairs(clipping));
    assert!(!pairs(clipping).is_empty(), "the truth has clipping inputs");

    // Baselines within 1 ADC14 of the truth; the default map matches the truth's channel map.
    let (mut checked, mut connected) = (0, 0);
    for c in truth["channel_map"].as_array().unwrap() {
        let (adc, channel) =
            (c["adc"].as_u64().unwrap() as u8, c["channel"].as_u64().unwrap() as u8);
        let mapped = map.get(adc, channel);
        if c["status"] == "inactive" {
            assert!(mapped.is_none(), "adc {adc} ch {channel} should be unconnected");
            continue;
        }
        connected += 1;
        let m = mapped.unwrap();
        assert_eq!(
            (u64::from(m.tpc), u64::from(m.det)),
            (c["tpc"].as_u64().unwrap(), c["det"].as_u64().unwrap())
        );
        let truth_baseline = if c["status"] == "dead" {
            c["dead_level_adc16"].as_f64().unwrap() / 4.0
        } else {
            c["baseline_adc16"].as_f64().unwrap() / 4.0
        };
        let baseline = mpd_scan.baseline(adc, channel).unwrap();
        // Within 1 ADC14; a noisy input (σ up to 40 ADC14) is held to its statistical
        // precision instead: 3σ/√(samples in the baseline windows).
        let waveforms = mpd_scan.input(adc, channel).unwrap().totals.waveforms as f64;
        let sigma = c["noise_rms_adc16"].as_f64().unwrap() / 4.0;
        let tolerance = (3.0 * sigma / (80.0 * waveforms).sqrt()).max(1.0);
        assert!(
            (baseline - truth_baseline).abs() <= tolerance,
            "adc {adc} ch {channel}: {baseline} vs {truth_baseline} (±{tolerance})"
        );
        checked += 1;
    }
    assert_eq!(checked, connected);
    assert_eq!(checked, map.channels().count());

    // The flow file gives the same numbers.
    let Some(flow) = flow else { return };
    let flow_scan = scan(flow, &mut |_, _, _, _, _| {});
    assert_eq!(flow_scan.events, mpd_scan.events);
    assert_eq!(flow_scan.waveforms, mpd_scan.waveforms);
    assert_eq!(flow_scan.missing_boards, mpd_scan.missing_boards);
    assert_eq!(flow_scan.flagged(Some(map), &HealthRules::default()), flagged);
    for adc in 0..8 {
        for channel in 0..64 {
            assert_eq!(flow_scan.baseline(adc, channel), mpd_scan.baseline(adc, channel));
        }
    }
}

#[test]
fn small_light_fixture_matches_truth_from_mpd_and_flow() {
    check_fixture("small");
}

#[test]
fn cosmics_light_fixture_matches_truth_from_mpd_and_flow() {
    check_fixture("cosmics");
}

/// The channel map is configuration: the truth's own map (JSON records) reads as a map and
/// agrees with the built-in 2x2 default on every connected input.
#[test]
fn a_channel_map_file_reads_and_matches_the_default() {
    use larmon_ingest::light::channel_map::LightChannel;
    let Some(truth) = truth("small-light-truth.json") else { return };
    let records: Vec<LightChannel> = truth["channel_map"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] != "inactive")
        .map(|c| serde_json::from_value(c.clone()).unwrap())
        .collect();
    assert_eq!(records.len(), 8 * 48);
    let from_file = ChannelMap::from_records(&records).unwrap();
    let nominal = ChannelMap::nominal_2x2();
    assert_eq!(from_file.channels().count(), nominal.channels().count());
    for c in nominal.channels() {
        assert_eq!(from_file.get(c.adc, c.channel), Some(c));
    }
}

/// The 2x2's default light map is ndlar_flow's validated light_module_desc 5.0.0 (and the
/// det_adc/det_chan of 5.0.1, named by Run-2 flow files); the fixtures' nominal pattern is
/// 4.0.0 and differs from it on 120 of 384 inputs.
#[test]
fn the_default_light_map_is_the_validated_5_0_0_map() {
    let validated = ChannelMap::validated_2x2();
    let nominal = ChannelMap::nominal_2x2();
    assert_eq!(validated.channels().count(), 384);
    let differ = nominal.channels().filter(|c| validated.get(c.adc, c.channel) != Some(*c)).count();
    assert_eq!(differ, 120);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/real/ndlar-flow-config");
    if !dir.exists() {
        eprintln!("SKIPPED: {} not found (needs ../shared/real)", dir.display());
        return;
    }
    let read = |name: &str| {
        ChannelMap::from_light_module_desc(&std::fs::read_to_string(dir.join(name)).unwrap())
            .unwrap()
    };
    let (v5, v4) = (read("light_module_desc-5.0.0.yaml"), read("light_module_desc-4.0.0.yaml"));
    let all = |m: &ChannelMap| m.channels().collect::<Vec<_>>();
    assert_eq!(all(&v5), all(&validated));
    assert_eq!(all(&v4), all(&nominal));
    // 5.0.1 (excerpt: det_adc and det_chan only) assigns every input as 5.0.0 does.
    let excerpt: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(dir.join("light_module_desc-5.0.1.EXCERPT.yaml")).unwrap(),
    )
    .unwrap();
    let mut inputs = 0;
    for tpc in 0..8u8 {
        for det in 0..16u8 {
            let (t, d) = (usize::from(tpc), usize::from(det));
            let adc = excerpt["det_adc"][t][d].as_u64().unwrap() as u8;
            for channel in excerpt["det_chan"][t][d].as_sequence().unwrap() {
                let c = validated.get(adc, channel.as_u64().unwrap() as u8).unwrap();
                assert_eq!((c.tpc, c.det), (tpc, det));
                inputs += 1;
            }
        }
    }
    assert_eq!(inputs, 384);
}

/// The reduced light product against the light truth: every clear pulse (noiseless maximum
/// above 25 ADC14 on a working, unsaturated channel) is found with its amplitude and time, and
/// quiet inputs have almost no pulses.
#[test]
fn the_reduced_light_product_finds_the_true_pulses() {
    let Some(truth) = truth("small-light-truth.json") else { return };
    check_pulses(&truth, &shared_fixture("small-light.data").unwrap());
}

fn check_pulses(truth: &Value, mpd: &Path) {
    use larmon_ingest::light::pulses::{PulseFinder, SAMPLE_NS};
    use larmon_ingest::light::reduce::summarize;
    let order: Vec<(u8, u8)> = truth["event_channel_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_u64().unwrap() as u8, p[1].as_u64().unwrap() as u8))
        .collect();
    let faults = &truth["faults"];
    let excluded: BTreeSet<(u8, u8)> = ["dead_channels", "noisy_channels", "saturating_channels"]
        .iter()
        .flat_map(|k| pairs(&faults[*k]))
        .collect();
    let events = truth["events"].as_array().unwrap();
    let finder = PulseFinder::default();
    let (mut clear, mut found, mut quiet, mut false_pulses) = (0, 0, 0, 0);
    let mut file = LightFile::open(mpd).unwrap();
    let mut index = 0;
    file.for_each_event(|event| {
        let t = &events[index];
        index += 1;
        let template_max = t["template_max"].as_f64().unwrap();
        let onset = t["onset_sample"].as_f64().unwrap();
        for w in &event.waveforms {
            let s = summarize(w.samples, finder.baseline_samples);
            let pulses = finder.pulses(w.samples, s.baseline, s.rms);
            let key = (w.adc, w.channel);
            if excluded.contains(&key) {
                continue;
            }
            let true_max = order
                .iter()
                .position(|c| *c == key)
                .map_or(0.0, |k| t["peak_adc16"][k].as_f64().unwrap() * template_max / 4.0);
            if true_max > 25.0 {
                clear += 1;
                let hit = pulses.iter().any(|p| {
                    (f64::from(p.amplitude) - true_max).abs()
                        < 4.0 * f64::from(s.rms) + 0.05 * true_max
                        && (f64::from(p.time_ns / SAMPLE_NS) - onset).abs() <= 4.0
                });
                found += usize::from(hit);
            } else if true_max == 0.0 {
                quiet += 1;
                false_pulses += pulses.len();
            }
        }
    })
    .unwrap();
    assert!(clear > 500, "{clear} clear pulses in the truth");
    assert!(found as f64 >= 0.97 * clear as f64, "{found} of {clear} clear pulses found");
    assert!(
        (false_pulses as f64) < 0.01 * quiet as f64,
        "{false_pulses} pulses on {quiet} quiet waveforms"
    );
}
