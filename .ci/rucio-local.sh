#!/usr/bin/env bash
# A real Rucio 41.5.1 server on 127.0.0.1 (SQLite, one gunicorn worker with one thread: SQLite
# locks the whole database), for the Rucio integration test. From
# ../shared/reference/rucio-local.md §2.1, adapted: lives in $RUCIO_WORK (default
# target/rucio-local), port $RUCIO_PORT (default 18080).
#   bash .ci/rucio-local.sh start   installs into a venv if needed, bootstraps a fresh DB, serves
#   bash .ci/rucio-local.sh stop    stops the servers started by 'start'
# With openssl, 'start' also serves the same Rucio over HTTPS on $RUCIO_TLS_PORT (default
# $RUCIO_PORT+443) for X.509 login: a test CA, host and user certificates and an RFC 3820 proxy
# of the user are made in $RUCIO_WORK/x509/ (the CA alone in x509/ca/, for X509_CERT_DIR), the
# user's DN is an X509 identity of the root account, and the front sets SSL_CLIENT_S_DN from the
# verified client certificate as Apache's mod_ssl does for Rucio's /auth/x509 (x509_front.py).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W=${RUCIO_WORK:-$repo/target/rucio-local}
PORT=${RUCIO_PORT:-18080}
TLS_PORT=${RUCIO_TLS_PORT:-$((PORT + 443))}
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

# The X.509 material (see the header) and the HTTPS front.
x509() {
  command -v openssl >/dev/null || { echo "no openssl: no X.509 front" >&2; return 0; }
  local X=$W/x509 user_dn="/DC=org/DC=larmon-ci/CN=Larmon Shifter"
  rm -rf "$X"; mkdir -p "$X/ca"
  (
    cd "$X"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca/larmon-ci-ca.pem -days 30 \
      -subj "/DC=org/DC=larmon-ci/CN=larmon CI CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    # A grid CA directory: certificates under their OpenSSL hash names (curl --capath needs them).
    ln -s larmon-ci-ca.pem "ca/$(openssl x509 -hash -noout -in ca/larmon-ci-ca.pem).0"
    openssl req -newkey rsa:2048 -nodes -keyout host.key -out host.csr -subj "/DC=org/DC=larmon-ci/CN=localhost"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' > host.ext
    openssl x509 -req -in host.csr -CA ca/larmon-ci-ca.pem -CAkey ca.key -days 30 -extfile host.ext -set_serial 2 -out host.pem
    openssl req -newkey rsa:2048 -nodes -keyout userkey.pem -out user.csr -subj "$user_dn"
    printf 'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' > user.ext
    openssl x509 -req -in user.csr -CA ca/larmon-ci-ca.pem -CAkey ca.key -days 30 -extfile user.ext -set_serial 3 -out usercert.pem
    # An RFC 3820 proxy as voms-proxy-init writes it: proxy certificate, its key (PKCS#1), the user certificate.
    openssl req -newkey rsa:2048 -nodes -keyout proxy.key -out proxy.csr -subj "$user_dn/CN=1234567890"
    printf 'proxyCertInfo=critical,language:id-ppl-inheritAll\nkeyUsage=critical,digitalSignature,keyEncipherment\n' > proxy.ext
    openssl x509 -req -in proxy.csr -CA usercert.pem -CAkey userkey.pem -days 2 -extfile proxy.ext -set_serial 1234567890 -out proxy.crt
    openssl rsa -in proxy.key -traditional -out proxy-rsa.key
    cat proxy.crt proxy-rsa.key usercert.pem > proxy.pem
    chmod 600 proxy.pem userkey.pem
  ) > "$W/log/x509.log" 2>&1 || { echo "could not make the test certificates (see $W/log/x509.log)" >&2; return 1; }
  "$W/venv/bin/python" - "$user_dn" <<'PY' 2>> "$W/log/x509.log"
import sys
from rucio.common.types import InternalAccount
from rucio.core.identity import add_account_identity
from rucio.db.sqla.constants import IdentityType
from rucio.db.sqla.session import get_session
session = get_session()
add_account_identity(sys.argv[1], IdentityType.X509, InternalAccount("root"), "ci@example.invalid", session=session)
session.commit()
PY
  cat > "$X/x509_front.py" <<'PY'
# Rucio behind TLS as Apache's mod_ssl serves it: SSL_CLIENT_S_DN is the verified client
# certificate's subject in the legacy /-separated form (a proxy's subject ends /CN=<number>).
import ssl
from rucio.web.rest.flaskapi.v1.main import application as rucio

SHORT = {"domainComponent": "DC", "commonName": "CN", "organizationName": "O",
         "organizationalUnitName": "OU", "countryName": "C", "localityName": "L"}

def application(environ, start_response):
    sock = environ.get("gunicorn.socket")
    cert = sock.getpeercert() if isinstance(sock, ssl.SSLSocket) else None
    if cert:
        environ["SSL_CLIENT_S_DN"] = "".join(
            "/%s=%s" % (SHORT.get(k, k), v) for rdn in cert["subject"] for k, v in rdn)
    return rucio(environ, start_response)

def ssl_context(conf, default_ssl_context_factory):
    context = default_ssl_context_factory()
    context.verify_flags |= ssl.VERIFY_ALLOW_PROXY_CERTS
    return context
PY
  (cd "$X" && "$W/venv/bin/gunicorn" --daemon --bind "127.0.0.1:$TLS_PORT" --workers 1 --threads 1 \
      --no-control-socket --timeout 120 --pid "$W/gunicorn-tls.pid" --pythonpath "$X" \
      --config "python:x509_front" \
      --certfile "$X/host.pem" --keyfile "$X/host.key" --ca-certs "$X/ca/larmon-ci-ca.pem" --cert-reqs 1 \
      --access-logfile "$W/log/access-tls.log" --error-logfile "$W/log/gunicorn-tls.log" \
      "x509_front:application")
  for _ in $(seq 1 150); do
    curl -sf --cacert "$X/ca/larmon-ci-ca.pem" "https://127.0.0.1:$TLS_PORT/ping" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "the HTTPS front did not answer /ping" >&2; cat "$W/log/gunicorn-tls.log" >&2; return 1
}

stop() {
  for pidfile in "$W/gunicorn.pid" "$W/gunicorn-tls.pid"; do
    [ -f "$pidfile" ] || continue
    p=$(cat "$pidfile"); kill "$p" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    rm -f "$pidfile"
  done
}

case "${1:-start}" in
  start) stop; mkdir -p "$W"; install; configure; bootstrap; serve
         echo "Rucio up: http://127.0.0.1:$PORT (root / ddmlab / secret), work dir $W" >&2
         x509 && [ -f "$W/gunicorn-tls.pid" ] \
           && echo "Rucio over HTTPS for X.509 login: https://127.0.0.1:$TLS_PORT (X509_CERT_DIR=$W/x509/ca, X509_USER_PROXY=$W/x509/proxy.pem)" >&2 ;;
  stop)  stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
