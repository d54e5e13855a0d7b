"""Tests of the Python module `larmon` (host/python), run by .ci/test with pytest after
`maturin develop` into target/python-venv. They compare the module with h5py on the same file
and with the `larmon` command line on the same input."""

import json
import os
import pathlib
import subprocess

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.ipc
import pytest

import larmon

REPO = pathlib.Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "data"
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
LARMON = TARGET / "debug" / "larmon"
PLUGINS = TARGET / "wasm32-wasip2" / "plugin"


def test_streams_and_schemas_are_larmons():
    names = larmon.streams()
    assert {"packets", "hits", "events", "tracks", "light_events"} <= set(names)
    schema = larmon.schema("hits")
    assert isinstance(schema, pa.Schema)
    assert {"q_ke", "x_mm", "y_mm", "z_mm", "drift_mm"} <= set(schema.names)


def test_packets_equal_h5py_row_for_row():
    path = DATA / "small-packets.h5"
    table = larmon.read(str(path))
    assert isinstance(table, pa.Table)
    with h5py.File(path, "r") as f:
        packets = f["packets"][:]
    assert table.num_rows == len(packets) == 36730
    common = [n for n in packets.dtype.names if n in table.column_names]
    assert {"io_group", "chip_id", "channel_id", "dataword", "timestamp", "packet_type"} <= set(common)
    for name in common:
        np.testing.assert_array_equal(table.column(name).to_numpy(), packets[name], err_msg=name)


def test_raw_file_reads_as_its_larpix_control_conversion():
    raw = larmon.read(str(DATA / "small-raw.h5"))
    converted = larmon.read(str(DATA / "small-packets.h5"))
    assert raw.num_rows == converted.num_rows
    for name in ["io_group", "io_channel", "chip_id", "channel_id", "dataword", "timestamp"]:
        assert raw.column(name).equals(converted.column(name)), name


def test_calibrated_hits_equal_the_command_line_export(tmp_path):
    if not LARMON.exists():
        pytest.skip(f"{LARMON} not built")
    export = tmp_path / "hits.arrow"
    subprocess.run(
        [LARMON, "calibrate", DATA / "small-raw.h5", "--export", export], check=True,
        capture_output=True,
    )
    with pa.ipc.open_file(export) as f:
        expected = f.read_all()
    hits = larmon.calibrate(str(DATA / "small-raw.h5"))
    assert hits.num_rows == expected.num_rows > 0
    assert hits.equals(expected)
    events = larmon.read(str(DATA / "small-raw.h5"), stream="events")
    assert events.num_rows > 0 and "t0_ticks" in events.column_names


def test_run_returns_the_report_the_command_line_writes(tmp_path):
    if not LARMON.exists() or not PLUGINS.is_dir():
        pytest.skip("larmon or its plugins not built")
    cache = tmp_path / "cache"
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    subprocess.run(
        [LARMON, "run", DATA / "small-raw.h5", "--out", tmp_path / "cli", "--run", "r",
         "--plugin-dir", PLUGINS, "--cache-dir", cache],
        check=True, capture_output=True, env=env,
    )
    expected = json.loads((tmp_path / "cli" / "r" / "report.json").read_text())
    report = larmon.run([str(DATA / "small-raw.h5")], out=str(tmp_path / "py"), run="r",
                        plugin_dir=str(PLUGINS), cache_dir=str(cache))
    assert report["run"] == "r"
    assert report["quality"] == expected["quality"]
    assert report["host"] == expected["host"]
    assert len(report["plugins"]) == len(expected["plugins"]) >= 10
    for mine, theirs in zip(report["plugins"], expected["plugins"]):
        assert mine["name"] == theirs["name"] and mine["status"] == theirs["status"]
        assert mine["metrics"] == theirs["metrics"], mine["name"]
        assert mine["checks"] == theirs["checks"], mine["name"]
    assert (tmp_path / "py" / "r" / "report.json").exists()


def test_errors_name_the_file_and_the_reason(tmp_path):
    with pytest.raises(OSError, match="No such file"):
        larmon.read(str(tmp_path / "missing.h5"))
    with pytest.raises(ValueError, match="larmon's streams: packets"):
        larmon.read(str(DATA / "small-raw.h5"), stream="nope")
    with pytest.raises(ValueError, match="no stream"):
        larmon.calibrate(str(DATA / "small-raw.h5"), stream="light_waves")
    bad = tmp_path / "larmon.toml"
    bad.write_text("e_feild_kv_cm = 0.5\n")
    with pytest.raises(ValueError, match="e_feild_kv_cm"):
        larmon.calibrate(str(DATA / "small-raw.h5"), config=str(bad))


SHARED = REPO.parent / "shared" / "fixtures"


def test_light_file_reads_its_events_as_the_truth_has_them():
    light = SHARED / "small-light.data"
    if not light.exists():
        pytest.skip("SKIPPED: ../shared/fixtures not here")
    truth = json.loads((SHARED / "small-light-truth.json").read_text())["events"]
    events = larmon.read(str(light))
    assert events.column_names[:2] == ["event", "unix_ms"]
    assert events.num_rows == len(truth) == 150
    assert events.column("unix_ms").to_pylist() == [e["unix_ms"] for e in truth]
    assert events.column("tai_ns").to_pylist() == [e["tai_ns"] for e in truth]
    missing = [e["index"] for e in truth if e["missing_board"] is not None]
    assert [i for i, m in enumerate(events.column("boards_missing").to_pylist()) if m] == missing
    waveforms = larmon.read(str(light), stream="light_waveforms")
    assert waveforms.num_rows > events.num_rows and "rms" in waveforms.column_names
    with pytest.raises(ValueError, match="a light file has no stream \"hits\""):
        larmon.read(str(light), stream="hits")
