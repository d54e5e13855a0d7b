#!/usr/bin/env bash
# A real Rucio 41.5.1 server on 127.0.0.1 (SQLite, one gunicorn worker with one thread: SQLite
# locks the whole database), for the Rucio integration test. From
# ../shared/reference/rucio-local.md §2.1, adapted: lives in $RUCIO_WORK (default
# target/rucio-local), port $RUCIO_PORT (default 18080).
#   bash .ci/rucio-local.sh start   installs into a venv if needed, bootstraps a fresh DB, serves
#   bash .ci/rucio-local.sh stop    stops the server started by 'start'
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W=${RUCIO_WORK:-$repo/target/rucio-local}
PORT=${RUCIO_PORT:-18080}
PY=${PYTHON:-python3}
export RUCIO_CONFIG=$W/etc/rucio.cfg

install() {
  [ -x "$W/venv/bin/gunicorn" ] && return 0
  $PY -m venv "$W/venv"
  "$W/venv/bin/pip" install -q --disable-pip-version-check 'rucio==41.5.1' 'gunicorn==27.0.1'
}

configure() {
  mkdir -p "$W/etc" "$W/log" "$W/rse"
  local sp; sp=$("$W/venv/bin/python" -c 'import rucio,os;print(os.path.dirname(rucio.__file__))')
  cat > "$W/etc/rucio.cfg" <<CFG
[common]
logdir = $W/log
loglevel = WARNING

[database]
default = sqlite:///$W/rucio.db

[bootstrap]
userpass_identity = ddmlab
userpass_pwd = secret
userpass_email = ci@example.invalid

[alembic]
cfg = $W/etc/alembic.ini

[policy]
permission = generic
schema = generic
lfn2pfn_algorithm_default = hash
support = ci@example.invalid
support_rucio = https://example.invalid/

[monitor]
enable_metrics = False
CFG
  cat > "$W/etc/alembic.ini" <<INI
[alembic]
sqlalchemy.url = sqlite:///$W/rucio.db
script_location = $sp/db/sqla/migrate_repo/

[loggers]
keys = root
[handlers]
keys = console
[formatters]
keys = generic
[logger_root]
level = WARN
handlers = console
qualname =
[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic
[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
INI
}

bootstrap() {
  rm -f "$W/rucio.db"
  "$W/venv/bin/python" -c 'from rucio.db.sqla.util import build_database, create_base_vo, create_root_account
build_database(); create_base_vo(); create_root_account()' 2> "$W/log/bootstrap.log"
}

serve() {
  "$W/venv/bin/gunicorn" --daemon --bind "127.0.0.1:$PORT" --workers 1 --threads 1 \
      --no-control-socket --timeout 120 --pid "$W/gunicorn.pid" \
      --access-logfile "$W/log/access.log" --error-logfile "$W/log/gunicorn.log" \
      rucio.web.rest.flaskapi.v1.main:application
  for _ in $(seq 1 150); do
    "$W/venv/bin/python" -c "import urllib.request,sys;urllib.request.urlopen('http://127.0.0.1:$PORT/ping',timeout=1)" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "rucio server did not answer /ping" >&2; cat "$W/log/gunicorn.log" >&2; return 1
}

stop() {
  if [ -f "$W/gunicorn.pid" ]; then
    p=$(cat "$W/gunicorn.pid"); kill "$p" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    rm -f "$W/gunicorn.pid"
  fi
}

case "${1:-start}" in
  start) stop; mkdir -p "$W"; install; configure; bootstrap; serve
         echo "Rucio up: http://127.0.0.1:$PORT (root / ddmlab / secret), work dir $W" >&2 ;;
  stop)  stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
