//! The `channels` stream holds, per channel, exactly what that channel's valid data packets of
//! the `packets` stream add up to — on a committed raw file, a packet file of the simulated
//! detector, the real 2x2 DAQ files and the cosmics fixtures of `../shared` when present. The
//! reference is summed here row by row from the `packets` batches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{UInt8Type, UInt64Type};
use larmon_calibrate::DetectorConfig;
use larmon_pipeline::input::charge::{RunCalibration, stream_charge_file};
use larmon_pipeline::progress::Silent;
use larmon_pipeline::{PipelineError, Stream};
use larmon_tests::{data, shared_fixture};

type Key = (u8, u8, u8, u8);
/// packets, Σ ADC, Σ ADC², first and last known Unix time.
type Sums = (u64, u64, u64, Option<u64>, Option<u64>);

fn batches(file: &Path, stream: Stream) -> Vec<RecordBatch> {
    let calibration = RunCalibration::new(DetectorConfig::default()).unwrap();
    let mut out = Vec::new();
    stream_charge_file(file, &calibration, stream, &Silent, |b| -> Result<(), PipelineError> {
        out.push(b);
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    out
}

fn u8s<'a>(b: &'a RecordBatch, name: &str) -> &'a [u8] {
    b.column_by_name(name).unwrap().as_primitive::<UInt8Type>().values()
}

fn widen(time: &mut Option<u64>, t: Option<u64>, pick: fn(u64, u64) -> u64) {
    if let Some(t) = t {
        *time = Some(time.map_or(t, |old| pick(old, t)));
    }
}

/// The reference: every valid data packet of the `packets` stream, added up per channel.
fn summed_from_packets(file: &Path) -> BTreeMap<Key, Sums> {
    let mut sums: BTreeMap<Key, Sums> = BTreeMap::new();
    for b in batches(file, Stream::Packets) {
        let (kind, valid, adc) =
            (u8s(&b, "packet_type"), u8s(&b, "valid_parity"), u8s(&b, "dataword"));
        let key =
            (u8s(&b, "io_group"), u8s(&b, "io_channel"), u8s(&b, "chip_id"), u8s(&b, "channel_id"));
        let unix = b.column_by_name("unix_time").unwrap().as_primitive::<UInt64Type>();
        for i in 0..b.num_rows() {
            if kind[i] != 0 || valid[i] != 1 {
                continue;
            }
            let s = sums.entry((key.0[i], key.1[i], key.2[i], key.3[i])).or_default();
            let a = u64::from(adc[i]);
            (s.0, s.1, s.2) = (s.0 + 1, s.1 + a, s.2 + a * a);
            let t = unix.is_valid(i).then(|| unix.value(i));
            widen(&mut s.3, t, u64::min);
            widen(&mut s.4, t, u64::max);
        }
    }
    sums
}

/// The `channels` stream's rows, keys in order and each once (one file, one hand-over).
fn channel_rows(file: &Path) -> BTreeMap<Key, Sums> {
    let mut rows = BTreeMap::new();
    let mut last: Option<Key> = None;
    for b in batches(file, Stream::Channels) {
        assert_eq!(b.schema(), Stream::Channels.schema());
        let key =
            (u8s(&b, "io_group"), u8s(&b, "io_channel"), u8s(&b, "chip_id"), u8s(&b, "channel_id"));
        let col = |name| b.column_by_name(name).unwrap().as_primitive::<UInt64Type>().clone();
        let (n, sum, sq) = (col("packets"), col("adc_sum"), col("adc_sum_sq"));
        let (first, last_t) = (col("first_unix_time"), col("last_unix_time"));
        for i in 0..b.num_rows() {
            let k = (key.0[i], key.1[i], key.2[i], key.3[i]);
            assert!(last.is_none_or(|l| l < k), "{}: keys out of order at {k:?}", file.display());
            last = Some(k);
            let opt = |a: &arrow::array::UInt64Array| a.is_valid(i).then(|| a.value(i));
            rows.insert(k, (n.value(i), sum.value(i), sq.value(i), opt(&first), opt(&last_t)));
        }
    }
    rows
}

fn check(file: &Path) -> usize {
    let expected = summed_from_packets(file);
    let got = channel_rows(file);
    assert_eq!(got.len(), expected.len(), "{}: channels", file.display());
    for (key, sums) in &expected {
        assert_eq!(got.get(key), Some(sums), "{}: channel {key:?}", file.display());
    }
    expected.len()
}

#[test]
fn channel_sums_are_the_valid_data_packets_of_a_committed_raw_and_packet_file() {
    assert!(check(&data("small-raw.h5")) > 10);
    assert!(check(&data("small-packets.h5")) > 10);
}

/// The real 2x2 DAQ files of `../shared/real` hold PACMAN heartbeats only: no channel rows and
/// no error. The larger cosmics fixtures (larpix-control 3.7.0, raw and converted) sum exactly.
#[test]
fn channel_sums_of_the_real_daq_files_and_the_cosmics_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/real/crs-daq-raw");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("SKIPPED: {} not found (needs ../shared/real)", dir.display());
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "h5"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 11);
    for file in &files {
        assert_eq!(check(file), 0, "{}: heartbeats only", file.display());
    }
    for name in ["cosmics-raw.h5", "cosmics-packets.h5"] {
        if let Some(file) = shared_fixture(name) {
            assert!(check(&file) > 10_000, "{name}");
        }
    }
}
