#!/usr/bin/env bash
# A real XRootD server on 127.0.0.1 (Debian's xrootd-server 5.5), the storage of the non-file
# Rucio RSEs in the data-management tests: root:// on port $XROOTD_PORT (default 11094) and,
# with XrdHttp (xrootd-server-plugins), HTTP/WebDAV on $XROOTD_HTTP_PORT (default port + 100);
# files under $XROOTD_WORK/data (default /tmp/larmon-xrootd-local), adler32 computed by the
# server.
#   bash .ci/xrootd-local.sh start   starts it (runs as 'nobody' when called as root: xrootd
#                                   refuses to run as the superuser) and waits until it answers
#   bash .ci/xrootd-local.sh stop    stops it
set -euo pipefail
W=${XROOTD_WORK:-/tmp/larmon-xrootd-local}
PORT=${XROOTD_PORT:-11094}
HTTP_PORT=${XROOTD_HTTP_PORT:-$((PORT + 100))}

start() {
  command -v xrootd >/dev/null && command -v xrdfs >/dev/null \
    || { echo "xrootd-local: no xrootd/xrdfs (Debian: xrootd-server xrootd-client)" >&2; return 1; }
  stop 2>/dev/null || true
  rm -rf "$W"
  mkdir -p "$W/data" "$W/admin" "$W/log"
  cat > "$W/xrootd.cfg" <<CFG
xrd.port $PORT
xrd.protocol XrdHttp:$HTTP_PORT libXrdHttp.so
all.export /
oss.localroot $W/data
xrootd.chksum adler32
all.adminpath $W/admin
all.pidpath $W/admin
CFG
  local as_user=()
  if [ "$(id -u)" = 0 ]; then
    chmod 755 "$W"
    chown -R nobody "$W/data" "$W/admin" "$W/log"
    as_user=(-R nobody)
  fi
  xrootd "${as_user[@]}" -b -c "$W/xrootd.cfg" -l "$W/log/xrootd.log" -n larmon
  for _ in $(seq 50); do
    if XRD_CONNECTIONRETRY=1 XRD_REQUESTTIMEOUT=2 xrdfs "127.0.0.1:$PORT" ls / >/dev/null 2>&1; then
      echo "xrootd-local: root://127.0.0.1:$PORT and http://127.0.0.1:$HTTP_PORT (files under $W/data)"
      return 0
    fi
    sleep 0.2
  done
  echo "xrootd-local: the server did not answer; its log:" >&2
  tail -20 "$W"/log/xrootd.log* >&2 || true
  return 1
}

stop() {
  local pidfile
  pidfile=$(ls "$W"/admin/larmon/xrootd.pid "$W"/admin/xrootd.pid 2>/dev/null | head -1) || true
  if [ -n "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then
    sleep 0.5
  fi
  pkill -f "xrootd.*$W/xrootd.cfg" 2>/dev/null || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
