#!/usr/bin/env bash
# slurm-local.sh — throwaway single-node Slurm (for larmon's batch tests; from
# ../shared/reference/slurm-local.md) (munged + slurmctld + slurmd) on localhost.
# Debian 12 (Slurm 22.05.8), root, no systemd, no Docker, loopback only.
#   usage: slurm-local.sh install|start|selftest|stop|env
#   callers then run sbatch/squeue/scontrol with SLURM_CONF=$SLURM_LOCAL_DIR/slurm.conf
set -euo pipefail

D=${SLURM_LOCAL_DIR:-$PWD/.slurm-local}     # everything lives here; nothing under /etc is written
CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-6818}
CPUS=${SLURM_LOCAL_CPUS:-$(nproc)}          # >nproc lets more array tasks run at once
export SLURM_CONF="$D/slurm.conf"
export PATH="/usr/sbin:/sbin:$PATH"         # slurmctld/slurmd/munged live in /usr/sbin

log() { printf '[slurm-local] %s\n' "$*" >&2; }

do_install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
     && command -v sbatch >/dev/null && command -v munged >/dev/null; then
    log "slurm + munge already installed"; return 0
  fi
  # The postinst scripts call invoke-rc.d. Without systemd it found no runlevel and started
  # nothing in our test, but a policy-rc.d that says "no" makes sure no stray system
  # munged/slurmd is left running.
  local own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; own_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client munge >/dev/null
  if [ "$own_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}

write_conf() {
  mkdir -p "$D"/{state,spool,log,run}
  mkdir -p "$D/munge/key"; chmod 755 "$D" "$D/munge"; chmod 700 "$D/munge/key"
  [ -f "$D/munge/key/munge.key" ] || mungekey -c -k "$D/munge/key/munge.key"
  local mem; mem=$(( $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) / 2 ))
  local over=""; [ "$CPUS" -le "$(nproc)" ] || over="SlurmdParameters=config_overrides"
  cat > "$D/slurm.conf" <<EOF
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.socket
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# No cgroups anywhere: process tracking by /proc parentage, no task confinement.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
# listen on 127.0.0.1 only, not 0.0.0.0
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
$over
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS Sockets=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

# alive FILE NAME: the PID in FILE runs and is NAME (guards against PID reuse)
alive() { [ -f "$1" ] && [ "$(cat "/proc/$(cat "$1")/comm" 2>/dev/null)" = "$2" ]; }

do_start() {
  write_conf
  if ! alive "$D/run/munged.bgpid" munged; then
    munged -F --socket="$D/munge/munge.socket" --key-file="$D/munge/key/munge.key" \
      --pid-file="$D/run/munged.pid" --log-file="$D/log/munged.log" \
      --seed-file="$D/munge/key/munged.seed" </dev/null >"$D/log/munged.out" 2>&1 &
    echo $! > "$D/run/munged.bgpid"
    for _ in $(seq 100); do [ -S "$D/munge/munge.socket" ] && break; sleep 0.05; done
  fi
  # -D: stay in the foreground so $! is the daemon's PID; redirect all fds so no
  # daemon keeps the CI's stdout pipe open.
  if ! alive "$D/run/slurmctld.bgpid" slurmctld; then
    slurmctld -D -c -i </dev/null >"$D/log/slurmctld.out" 2>&1 &
    echo $! > "$D/run/slurmctld.bgpid"
  fi
  if ! alive "$D/run/slurmd.bgpid" slurmd; then
    slurmd -D -N localhost </dev/null >"$D/log/slurmd.out" 2>&1 &
    echo $! > "$D/run/slurmd.bgpid"
  fi
  for _ in $(seq 120); do   # up to 60 s, normally ~1 s
    if [ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ]; then log "node idle"; return 0; fi
    sleep 0.5
  done
  log "cluster did not come up"; tail -n 30 "$D"/log/*.log >&2 || true; return 1
}

# Wait for a job (or array) to leave the queue, then fail unless every task COMPLETED.
wait_job() {
  local jid=$1 timeout=${2:-600} t=0
  while squeue -h -j "$jid" 2>/dev/null | grep -q .; do
    sleep 0.5; t=$((t+1)); [ $t -lt $((timeout*2)) ] || { log "timeout on $jid"; return 124; }
  done
  local all; all=$(scontrol -o show job "$jid") || { log "job $jid unknown"; return 1; }
  local bad; bad=$(printf '%s\n' "$all" | grep -v 'JobState=COMPLETED' || true)
  [ -z "$bad" ] || { log "job $jid had failed tasks:"; echo "$bad" >&2; return 1; }
}

do_selftest() {
  local w; w=$(mktemp -d "$D/selftest.XXXX")
  local jid
  jid=$(sbatch --parsable --array=0-3 -D "$w" -o "$w/slurm-%A_%a.out" \
        --wrap 'echo $SLURM_ARRAY_TASK_ID > out_$SLURM_ARRAY_TASK_ID; srun hostname')
  wait_job "$jid" 120
  for i in 0 1 2 3; do [ "$(cat "$w/out_$i")" = "$i" ] || { log "bad out_$i"; return 1; }; done
  log "array $jid OK"
}

stop_pid() {  # stop_pid FILE NAME: TERM, wait up to 10 s, then KILL
  local f=$1 p; [ -f "$f" ] || return 0; p=$(cat "$f")
  if alive "$f" "$2"; then
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
  fi
  rm -f "$f"
}

do_stop() {
  [ -f "$SLURM_CONF" ] || return 0
  if alive "$D/run/slurmctld.bgpid" slurmctld; then
    scancel --quiet --user=root 2>/dev/null || true      # kills slurmstepd/job processes too
    for _ in $(seq 40); do squeue -h 2>/dev/null | grep -q . || break; sleep 0.25; done
  fi
  stop_pid "$D/run/slurmd.bgpid" slurmd
  stop_pid "$D/run/slurmctld.bgpid" slurmctld
  stop_pid "$D/run/munged.bgpid" munged
}

case "${1:-}" in
  install)  do_install ;;
  start)    do_start ;;
  selftest) do_selftest ;;
  stop)     do_stop ;;
  env)      echo "export SLURM_CONF=$SLURM_CONF" ;;
  *) echo "usage: $0 install|start|selftest|stop|env" >&2; exit 2 ;;
esac
