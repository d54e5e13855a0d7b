"""larmon's MetaCat declarations put through the real `metacat-client` package (PyPI, pinned in
.ci/python), the client DUNE's declad and shifters use: every kind of file larmon declares —
a raw charge file, a light file, an ndlar_flow file (the real Run-2 sample) and a run's DQ pack
(its declad sidecar) — is handed to MetaCatClient.declare_files / declare_file as declad does,
with the HTTP post captured instead of sent (no MetaCat server can run here: it needs
PostgreSQL). The client's own checks run (namespace and name, integer size, dotted metadata
keys, parents), and the payload it would send is checked against MetaCat's file model. Run by
.ci/python with pytest."""

import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

metacat_webapi = pytest.importorskip("metacat.webapi")

REPO = pathlib.Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
LARMON = TARGET / "debug" / "larmon"
PLUGIN = TARGET / "wasm32-wasip2" / "plugin" / "larmon_plugin_packet_rate.wasm"

# The fields of a file in MetaCat's declare_files body (metacat/webapi/webapi.py).
FILE_FIELDS = {"namespace", "name", "size", "checksums", "metadata", "parents", "fid", "auto_name"}


def larmon(*args, cwd=None):
    out = subprocess.run([str(LARMON), *map(str, args)], capture_output=True, text=True, cwd=cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def captured_client():
    """A MetaCatClient whose posts are recorded and answered as a server would (one fid each)."""
    client = metacat_webapi.MetaCatClient("http://127.0.0.1:9/metacat")
    sent = []

    def post_json(url, body):
        sent.append((url, body))
        return [{"fid": f"f{i}", "namespace": f["namespace"], "name": f["name"]}
                for i, f in enumerate(body)]

    client.post_json = post_json
    return client, sent


@pytest.fixture(scope="module")
def declarations(tmp_path_factory):
    if not LARMON.is_file() or not PLUGIN.is_file():
        pytest.skip(f"needs {LARMON} and {PLUGIN} (cargo test and .ci/plugins build them)")
    work = tmp_path_factory.mktemp("metacat")
    daq = work / "daq"
    larmon("simulate", "--run", "77", "--duration-s", "2", "--files", "1", "--out", daq)
    charge = sorted(daq.glob("binary-*.h5"))
    light = sorted(daq.glob("*.data"))
    assert len(charge) == 1 and len(light) == 1, list(daq.iterdir())
    flow = work / "run2-cosmics-flow-sample.hdf5"
    shutil.copy(DATA / "real" / "run2-cosmics-flow-sample.hdf5", flow)
    listed = json.loads(larmon("meta", "--stable-s", "0", *charge, *light, flow))
    # The run's DQ pack, declared in its declad sidecar.
    no_plugins = work / "no-plugins"
    no_plugins.mkdir()
    larmon("run", *charge, *light, "--out", work / "dqm", "--plugin-dir", no_plugins,
           "--plugin", PLUGIN, "--cache-dir", TARGET / "test-plugin-cache")
    (run,) = [d.name for d in (work / "dqm").iterdir() if (d / "report.json").is_file()]
    larmon("pack", work / "dqm", run, "--into", work / "packs", "--sidecar")
    (sidecar,) = (work / "packs").glob("*.tar.gz.json")
    return listed, json.loads(sidecar.read_text())


def check_file_model(f):
    assert set(f) <= FILE_FIELDS, f"fields MetaCat does not know: {set(f) - FILE_FIELDS}"
    assert re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", f["namespace"]), f["namespace"]
    assert f["name"] and "/" not in f["name"] and ":" not in f["name"], f["name"]
    assert isinstance(f["size"], int) and f["size"] > 0
    assert re.fullmatch(r"[0-9a-f]{8}", f["checksums"]["adler32"]), f["checksums"]
    for key, value in f["metadata"].items():
        category, _, attribute = key.rpartition(".")
        assert category and attribute, key
        assert value is not None and value == value, f"{key}: {value!r} is not a JSON value"
    meta = f["metadata"]
    assert meta["core.data_tier"] and meta["core.file_format"] and meta["core.run_type"]
    assert meta["core.start_time"] <= meta["core.end_time"]
    for parent in f.get("parents", []):
        assert set(parent) == {"did"} and parent["did"].count(":") == 1, parent


def test_declare_files_takes_every_declaration_larmon_prints(declarations):
    listed, _ = declarations
    client, sent = captured_client()
    answer = client.declare_files("neardet-2x2-lar:larmon-check", listed, dry_run=True)
    assert len(answer) == 3
    ((url, body),) = sent
    assert url == "data/declare_files?dataset=neardet-2x2-lar:larmon-check&dry_run=yes"
    namespaces = sorted(f["namespace"] for f in body)
    assert namespaces == ["neardet-2x2-lar", "neardet-2x2-lar-charge", "neardet-2x2-lar-light"]
    for f in body:
        check_file_model(f)
    charge = next(f for f in body if f["namespace"] == "neardet-2x2-lar-charge")
    assert charge["metadata"]["core.runs"] == [77]
    assert charge["metadata"]["core.runs_subruns"] == [7700001]


def test_declad_declares_the_dq_pack_sidecar_with_its_parents(declarations):
    listed, pack = declarations
    client, sent = captured_client()
    # What declad does with a sidecar: one declare_file with the sidecar's fields.
    client.declare_file(namespace=pack["namespace"], name=pack["name"], size=pack["size"],
                        checksums=pack["checksums"], metadata=pack["metadata"],
                        parents=pack["parents"], dataset_did="neardet-2x2-lar:dqm")
    ((_, (body,)),) = sent
    check_file_model({k: v for k, v in body.items() if v is not None})
    assert body["metadata"]["core.data_tier"] == "dqm"
    # The pack's parents are exactly the data files it judged, by the DIDs they are declared as.
    declared = {f"{f['namespace']}:{f['name']}" for f in listed}
    parents = {p["did"] for p in body["parents"]}
    assert len(parents) == 2 and parents <= declared, (parents, declared)


def test_the_client_refuses_what_metacat_would_refuse(declarations):
    listed, _ = declarations
    client, sent = captured_client()
    bad_key = dict(listed[0], metadata={**listed[0]["metadata"], "nodot": 1})
    with pytest.raises(ValueError, match="must contain dot"):
        client.declare_files("neardet-2x2-lar:x", [bad_key])
    bad_size = dict(listed[0], size=str(listed[0]["size"]))
    with pytest.raises(ValueError, match="size"):
        client.declare_files("neardet-2x2-lar:x", [bad_size])
    assert sent == []
