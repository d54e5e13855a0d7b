#!/usr/bin/env bash
# Memory of `larmon watch` over a simulated week of DAQ files: FILES raw files (default 1008, a
# week of 10-minute files), 6 per run, arrive in the watched folder one every PACE seconds; the
# watcher's RSS (VmRSS, and the peak VmHWM) is printed every 50 files. Memory should level off:
# finished files' plugin instances are released and idle runs leave memory (--forget-after-s).
#
#   bash docs/bench/watch_week.sh [FILES] [LARMON] [PACE_S]
#   bash docs/bench/watch_week.sh 1008 target/release/larmon 0.5
#
# Each file is the same 1 s simulated 2x2 file (60 muons, every plugin busy) under a new name;
# nothing here is part of the build or CI.
set -euo pipefail
files=${1:-1008}
larmon=${2:-target/release/larmon}
pace=${3:-0.5}
work=$(mktemp -d)
trap 'kill "$watch_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/daq" "$work/dqm"
"$larmon" simulate --out "$work/sim" --duration-s 1 --muon-rate-hz 60 --no-light >/dev/null
template=$(ls "$work"/sim/binary-*.h5)
"$larmon" watch "$work/daq" --out "$work/dqm" --poll-s 0.2 --finish-after-s 1 \
    --forget-after-s 5 >"$work/watch.log" 2>&1 &
watch_pid=$!
rss() { awk '/VmRSS|VmHWM/ {printf "%s %.0f MiB  ", $1, $2/1024}' "/proc/$watch_pid/status"; }
echo "files  memory of larmon watch"
for ((i = 0; i < files; i++)); do
    run=$((1 + i / 6))
    name=$(printf 'binary-%07d-2024_01_01_00_%02d_%02d_UTC.h5' "$run" $((i % 6)) $((i % 60)))
    cp "$template" "$work/$name" && mv "$work/$name" "$work/daq/$name"
    sleep "$pace"
    if (((i + 1) % 50 == 0)); then
        echo "$((i + 1))  $(rss)"
    fi
done
sleep 10
echo "end  $(rss)  reports: $(ls "$work/dqm" | grep -c run-)"
