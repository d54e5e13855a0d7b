#!/usr/bin/env bash
# The data-management chain end to end (issue 22's "done when"): a simulated DAQ writes charge
# files into a folder for DURATION_S seconds (default 3600), each growing in two steps, 6 per
# run, one every EVERY_S seconds, while `larmon daq` — with its DQ watcher child, replication
# over root:// to a real XRootD server, registration in a real Rucio on an RSE whose protocol is
# root, DQ packs and the buffer clean-up — is killed with SIGKILL at random moments (every
# 20–120 s) and restarted. Then the writer stops, the chain is left to finish, and the script
# checks: every file declared once, its replica's adler32 computed by the XRootD server equal to
# the catalogue's, AVAILABLE in Rucio at the root RSE, every run's DQ pack replicated and
# registered too, the DAQ buffer emptied and the backlog in daq-status.json empty.
#
#   bash docs/bench/daq_hour.sh [DURATION_S] [LARMON] [EVERY_S]
#   bash docs/bench/daq_hour.sh 3600 target/release/larmon 10
#
# It starts (and at the end stops) a local Rucio (.ci/rucio-local.sh, port 18081) and XRootD
# (.ci/xrootd-local.sh, port 11095) unless RUCIO_TEST_URL / XROOTD_TEST_URL point at running ones. Not part of the build or CI (the tests
# in host/cli/tests/data_management.rs cover each stage); prints "SCENARIO OK" or what is wrong.
set -euo pipefail
duration=${1:-3600}
larmon=$(realpath "${2:-target/release/larmon}")
every=${3:-10}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# The DQ watcher's plugins: a copied binary does not find the build's beside it.
export LARMON_PLUGIN_DIR=${LARMON_PLUGIN_DIR:-$repo/target/wasm32-wasip2/plugin}
if ! ls "$LARMON_PLUGIN_DIR"/*.wasm >/dev/null 2>&1; then
    echo "no plugins in $LARMON_PLUGIN_DIR (bash .ci/plugins, or set LARMON_PLUGIN_DIR)" >&2
    exit 2
fi
work=$(mktemp -d /tmp/larmon-daq-hour.XXXXXX)
chain_pid=""
started=()
cleanup() {
    [ -n "$chain_pid" ] && kill -9 "$chain_pid" 2>/dev/null || true
    pkill -f "larmon watch $work/daq" 2>/dev/null || true
    for server in "${started[@]}"; do bash "$repo/.ci/$server-local.sh" stop >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
# Own ports and folders, so that the tests' servers (.ci/test) can run beside it.
export RUCIO_PORT=${RUCIO_PORT:-18081} RUCIO_WORK=${RUCIO_WORK:-/tmp/larmon-rucio-hour}
export XROOTD_PORT=${XROOTD_PORT:-11095} XROOTD_WORK=${XROOTD_WORK:-/tmp/larmon-xrootd-hour}
if [ -z "${RUCIO_TEST_URL:-}" ]; then
    bash "$repo/.ci/rucio-local.sh" start >/dev/null
    started+=(rucio)
    RUCIO_TEST_URL=http://127.0.0.1:$RUCIO_PORT
fi
if [ -z "${XROOTD_TEST_URL:-}" ]; then
    bash "$repo/.ci/xrootd-local.sh" start >/dev/null
    started+=(xrootd)
    XROOTD_TEST_URL=root://127.0.0.1:$XROOTD_PORT
fi
export RUCIO_TEST_URL XROOTD_TEST_URL RUCIO_PASSWORD=secret
tag=H$(date +%s)
drop_rse=DROP$tag rule_rse=NERSC$tag
first_run=$((4000000 + $(date +%s) % 1000000))
echo "work dir $work; RSEs $drop_rse (root) -> $rule_rse; runs from $first_run"

# Rucio: the two scopes, a root RSE on the XRootD server and a file RSE as the rule's target.
python3 - "$RUCIO_TEST_URL" "$XROOTD_TEST_URL" "$drop_rse" "$rule_rse" "$work" <<'PY'
import json, sys, urllib.request
url, xrootd, drop, target, work = sys.argv[1:]
req = urllib.request.Request(url + "/auth/userpass", headers={
    "X-Rucio-Account": "root", "X-Rucio-Username": "ddmlab", "X-Rucio-Password": "secret"})
token = urllib.request.urlopen(req).headers["X-Rucio-Auth-Token"]
def post(path, body):
    r = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
        headers={"X-Rucio-Auth-Token": token, "Content-Type": "application/json"})
    try:
        urllib.request.urlopen(r)
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        if "Duplicate" not in text:
            sys.exit(f"{path}: {e.code} {text}")
for scope in ["neardet-2x2-lar-charge", "neardet-2x2-lar"]:
    post(f"/scopes/root/{scope}", {})
domains = {d: {"read": 1, "write": 1, "delete": 1} for d in ("lan", "wan")}
host, port = xrootd.removeprefix("root://").rstrip("/").split(":")
for rse in (drop, target):
    post(f"/rses/{rse}", {"deterministic": True, "rse_type": "DISK"})
    if rse == drop:
        protocol = {"scheme": "root", "hostname": host, "port": int(port),
                    "prefix": f"/larmon-hour/{rse}", "impl": "rucio.rse.protocols.xrootd.Default"}
    else:
        protocol = {"scheme": "file", "hostname": "localhost", "port": 0,
                    "prefix": f"{work}/rse/{rse}", "impl": "rucio.rse.protocols.posix.Default"}
    protocol["domains"] = domains
    post(f"/rses/{rse}/protocols/{protocol['scheme']}", protocol)
    post(f"/accounts/root/limits/local/{rse}", {"bytes": 10**13})
PY

mkdir -p "$work/daq" "$work/dqm" "$work/packs" "$work/staging"
"$larmon" simulate --out "$work/sim" --duration-s 2 --muon-rate-hz 60 --no-light >/dev/null
template=$(ls "$work"/sim/binary-*.h5)
size=$(stat -c %s "$template")
start_chain() {
    "$larmon" daq "$work/daq" --db "$work/dm.sqlite" --site NERSC \
        --to "$XROOTD_TEST_URL//larmon-hour/nersc-$tag" --dq-out "$work/dqm" \
        --pack-dq-into "$work/packs" --pack-dq-after-s 30 --stable-s 3 --poll-s 2 \
        --clean-buffer-after-s 20 --backoff-s 5 --max-backoff-s 60 \
        --rucio-url "$RUCIO_TEST_URL" --rucio-username ddmlab --rse "$drop_rse" \
        --rule-rse "$rule_rse" >>"$work/chain.log" 2>&1 &
    chain_pid=$!
}
start_chain
kills=0
next_kill=$((SECONDS + 20 + RANDOM % 100))
written=0
t0=$SECONDS
while ((SECONDS - t0 < duration)); do
    run=$((first_run + written / 6))
    name=$(printf 'binary-%07d-2024_01_01_%02d_%02d_00_UTC.h5' "$run" $(((written / 60) % 24)) $((written % 60)))
    # The DAQ writes a file in place: half now, the rest a second later.
    head -c $((size / 2)) "$template" >"$work/daq/$name"
    sleep 1
    tail -c +$((size / 2 + 1)) "$template" >>"$work/daq/$name"
    written=$((written + 1))
    if ((SECONDS >= next_kill)); then
        kill -9 "$chain_pid" 2>/dev/null || true
        wait "$chain_pid" 2>/dev/null || true
        kills=$((kills + 1))
        start_chain
        next_kill=$((SECONDS + 20 + RANDOM % 100))
    fi
    sleep "$every"
done
echo "wrote $written files in $((SECONDS - t0)) s, killed the chain $kills times; letting it finish"

# The chain finishes: backlog empty (packs need the last report to be quiet for 30 s).
for _ in $(seq 150); do
    sleep 4
    if python3 - "$work/dqm/daq-status.json" "$written" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
sys.exit(0 if sum(s["backlog"].values()) == 0 and s["done"].get("declare", 0) >= int(sys.argv[2])
         and not s["failures"] else 1)
PY
    then break; fi
done
kill "$chain_pid" 2>/dev/null || true
wait "$chain_pid" 2>/dev/null || true
chain_pid=""
"$larmon" daq "$work/daq" --db "$work/dm.sqlite" --site NERSC --dq-out "$work/dqm" --status

# The checks, against the catalog, the XRootD server and Rucio themselves.
python3 - "$work" "$written" "$RUCIO_TEST_URL" "$drop_rse" "$larmon" <<'PY'
import json, subprocess, sys, urllib.request, os
work, written, url, drop, larmon = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
problems = []
listed = subprocess.run([larmon, "catalog", "--db", f"{work}/dm.sqlite", "list", "--json"],
                        capture_output=True, text=True, check=True).stdout
records = [json.loads(l) for l in listed.splitlines() if l.strip()]
data = [r for r in records if r["declaration"]["name"].startswith("binary-")]
packs = [r for r in records if r["declaration"]["name"].startswith("dqm-")]
runs = {r["declaration"]["name"].split("-")[1] for r in data}
if len(data) != written:
    problems.append(f"{len(data)} data files catalogued, {written} written")
if len({r["did"] for r in records}) != len(records):
    problems.append("a DID catalogued twice")
if len(packs) < len(runs):
    problems.append(f"{len(packs)} DQ packs for {len(runs)} runs")
req = urllib.request.Request(url + "/auth/userpass", headers={
    "X-Rucio-Account": "root", "X-Rucio-Username": "ddmlab", "X-Rucio-Password": "secret"})
token = urllib.request.urlopen(req).headers["X-Rucio-Auth-Token"]
for r in records:
    show = json.loads(subprocess.run([larmon, "catalog", "--db", f"{work}/dm.sqlite", "show",
                                      r["did"]], capture_output=True, text=True).stdout)
    nersc = [x for x in show["replicas"] if x["site"] == "NERSC"]
    if len(nersc) != 1:
        problems.append(f"{r['did']}: {len(nersc)} NERSC replicas")
        continue
    out = subprocess.run(["xrdadler32", nersc[0]["location"]], capture_output=True, text=True)
    if out.stdout.split()[:1] != [r["adler32"]]:
        problems.append(f"{r['did']}: XRootD says {out.stdout.strip()!r}, catalogue {r['adler32']}")
    scope, name = r["did"].split(":", 1)
    q = urllib.request.Request(f"{url}/replicas/{scope}/{name}",
                               headers={"X-Rucio-Auth-Token": token})
    rows = [json.loads(l) for l in urllib.request.urlopen(q).read().decode().splitlines() if l]
    if not rows or rows[0]["states"].get(drop) != "AVAILABLE":
        problems.append(f"{r['did']}: not AVAILABLE at {drop} in Rucio: {rows}")
left = [f for f in os.listdir(f"{work}/daq") if f.endswith(".h5")]
if left:
    problems.append(f"{len(left)} files still in the DAQ buffer")
status = json.load(open(f"{work}/dqm/daq-status.json"))
if sum(status["backlog"].values()):
    problems.append(f"backlog not empty: {status['backlog']}")
print(f"{len(data)} data files in {len(runs)} runs and {len(packs)} DQ packs: catalogued once, "
      f"adler32 at the XRootD server = catalogue, AVAILABLE in Rucio at {drop}")
for p in problems[:20]:
    print("PROBLEM:", p)
print("SCENARIO OK" if not problems else f"SCENARIO FAILED: {len(problems)} problems")
sys.exit(1 if problems else 0)
PY
