#!/usr/bin/env bash
# The lab's OpenSearch: 127.0.0.1:19200 (HTTPS) and 19300 (transport) only, with the security plugin,
# started from the elasticsearch role's own opensearch.yml and init script, the way the in-cluster
# pod starts (no demo installer, no demo users). Data under $LAB_STATE/opensearch.
# The distribution and the plugin come from Maven Central (mvn), built once into $LAB_CACHE.
# Usage: opensearch.sh up|down|status|env
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(cd "$(dirname "$0")/.." && pwd)/lib.sh"
# shellcheck source=tests/lab/versions.env
. "$LAB_DIR/versions.env"

ROLE_FILES="$(cd "$LAB_DIR/../.." && pwd)/roles/elasticsearch/files"
ODIR="$LAB_STATE/opensearch"
PIDFILE="$ODIR/opensearch.pid"
DIST="$LAB_CACHE/opensearch-$OPENSEARCH_VERSION-security-$OPENSEARCH_SECURITY_VERSION"
JAVA_HOME="${LAB_JAVA_HOME:-${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}}"
export JAVA_HOME
# The role's admin password is its prefix followed by the Secret's value (elasticsearch__admin_prefix).
ADMIN_PREFIX=Os1-

os_running() { pidfile_alive "$PIDFILE" org.opensearch.bootstrap.OpenSearch; }
os_health() {
  printf 'user = "admin:%s%s"\n' "$ADMIN_PREFIX" "$(secret opensearch-admin)" |
    curl -K - --cacert "$ODIR/tls/ca.crt" -fsS -o /dev/null -m 5 \
      "https://$LAB_HOST:$LAB_OPENSEARCH_PORT/_cluster/health?wait_for_status=yellow&timeout=4s" 2>/dev/null
}

# OpenSearch refuses to run as root: as root, run it in a user namespace where we are uid 1000.
as_user() {
  if [ "$(id -u)" -eq 0 ]; then unshare --user --map-user=1000 --map-group=1000 -- "$@"; else "$@"; fi
}

build() {
  [ -x "$DIST/bin/opensearch" ] && [ -d "$DIST/plugins/opensearch-security" ] && return 0
  command -v mvn >/dev/null || die "opensearch: mvn (Maven) is needed to fetch OpenSearch from Maven Central"
  [ -x "$JAVA_HOME/bin/java" ] || die "opensearch: no Java at JAVA_HOME=$JAVA_HOME (JDK 17 is needed)"
  local tmp t0=$SECONDS
  tmp="$(mktemp -d "$LAB_CACHE/.opensearch.XXXXXX")"
  log "opensearch: fetching OpenSearch $OPENSEARCH_VERSION and its security plugin from Maven Central"
  local a
  for a in "org.opensearch.distribution.integ-test-zip:opensearch:$OPENSEARCH_VERSION:zip" \
           "org.opensearch.plugin:opensearch-security:$OPENSEARCH_SECURITY_VERSION:zip"; do
    mvn -q -B org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy -Dartifact="$a" \
      -DoutputDirectory="$tmp" >&2 || die "opensearch: mvn could not fetch $a"
  done
  (cd "$tmp" && unzip -q "opensearch-$OPENSEARCH_VERSION.zip") || die "opensearch: unzip failed"
  "$tmp/opensearch-$OPENSEARCH_VERSION/bin/opensearch-plugin" install --batch \
    "file://$tmp/opensearch-security-$OPENSEARCH_SECURITY_VERSION.zip" >/dev/null 2>&1 ||
    die "opensearch: installing the security plugin failed"
  rm -rf "$DIST" && mv "$tmp/opensearch-$OPENSEARCH_VERSION" "$DIST" && rm -rf "$tmp"
  log "opensearch: built $DIST ($((SECONDS - t0))s)"
}

# The instance's certificates, made by the same generator the role uses for its TLS Secret
# (secret_formats.generate_tls_bundle, with the project's venv); openssl when there is no venv yet.
certificates() {
  local tls="$ODIR/tls" repo python
  [ -s "$tls/tls.key" ] && return 0
  mkdir -p "$tls"
  repo="$(cd "$LAB_DIR/../.." && pwd)"
  python="${LAB_PYTHON:-$repo/.venv/bin/python}"
  if [ -x "$python" ] && (umask 077 && "$python" - "$repo/collections" "$tls" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.fediverse.mastodon.plugins.module_utils.secret_formats import generate_tls_bundle
for name, text in generate_tls_bundle("opensearch-node", "fediverse.mastodon", ["localhost", "127.0.0.1"]).items():
    with open(os.path.join(sys.argv[2], name), "w") as f:
        f.write(text)
PY
  ); then
    log "opensearch: certificates made by the role's generator"
    return 0
  fi
  log "opensearch: no project venv; making the certificates with openssl"
  (umask 077
   openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/O=fediverse.mastodon/CN=lab opensearch CA" \
     -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
   openssl req -newkey rsa:2048 -nodes -subj "/O=fediverse.mastodon/CN=opensearch-node" \
     -keyout "$tls/node.key" -out "$tls/node.csr" 2>/dev/null
   printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$tls/ext"
   openssl x509 -req -in "$tls/node.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -days 3650 \
     -extfile "$tls/ext" -out "$tls/tls.crt" 2>/dev/null
   openssl pkcs8 -topk8 -nocrypt -in "$tls/node.key" -out "$tls/tls.key"
   rm -f "$tls/node.csr" "$tls/node.key" "$tls/ext" "$tls/ca.srl" "$tls/ca.key") || die "opensearch: openssl failed"
}

up() {
  command -v unzip >/dev/null && command -v curl >/dev/null || apt_install unzip curl
  mkdir -p "$LAB_CACHE" "$ODIR" && chmod 700 "$ODIR"
  if os_running; then
    local i
    for ((i = 0; i < 600; i++)); do os_health && break; sleep 0.2; done
    os_health || die "opensearch: pid $(cat "$PIDFILE") runs but does not answer on $LAB_HOST:$LAB_OPENSEARCH_PORT"
    log "opensearch: already running (pid $(cat "$PIDFILE"))"
    return 0
  fi
  port_in_use "$LAB_OPENSEARCH_PORT" && die "opensearch: 127.0.0.1:$LAB_OPENSEARCH_PORT is taken by a process the lab did not start"
  build
  certificates
  mkdir -p "$ODIR/config" "$ODIR/data" "$ODIR/logs" "$ODIR/tmp"
  # The role's init container, run here with the same environment it has in the pod.
  ADMIN_PASSWORD="$(secret opensearch-admin)" ADMIN_PASSWORD_PREFIX="$ADMIN_PREFIX" OPENSEARCH_HOME="$DIST" \
    SOURCE_CONFIG="$DIST/config" TARGET_CONFIG="$ODIR/config" SERVER_CONFIG="$ROLE_FILES/opensearch.yml" \
    TLS_DIR="$ODIR/tls" OPENSEARCH_JAVA_HOME="$JAVA_HOME" \
    bash "$ROLE_FILES/opensearch-security.sh" >"$ODIR/init.log" 2>&1 ||
    { cat "$ODIR/init.log" >&2; die "opensearch: the role's init script failed"; }
  log "opensearch: starting on $LAB_HOST:$LAB_OPENSEARCH_PORT"
  rm -f "$PIDFILE"
  local t0=$SECONDS
  OPENSEARCH_PATH_CONF="$ODIR/config" OPENSEARCH_JAVA_HOME="$JAVA_HOME" OPENSEARCH_TMPDIR="$ODIR/tmp" \
    OPENSEARCH_JAVA_OPTS="-Xms512m -Xmx512m -Djava.net.preferIPv4Stack=true" \
    as_user "$DIST/bin/opensearch" -d -p "$PIDFILE" \
      -Ecluster.name=lab-opensearch -Enode.name=lab-opensearch-0 -Enetwork.host="$LAB_HOST" \
      -Ehttp.port="$LAB_OPENSEARCH_PORT" -Etransport.port="$LAB_OPENSEARCH_TRANSPORT_PORT" \
      -Epath.data="$ODIR/data" -Epath.logs="$ODIR/logs" >"$ODIR/start.log" 2>&1 ||
    { tail -n 30 "$ODIR/start.log" "$ODIR/logs/lab-opensearch.log" >&2 2>/dev/null; die "opensearch: start failed"; }
  local i
  # The pid file appears once the node has bootstrapped; a pid file whose process is gone means it died.
  for ((i = 0; i < 900; i++)); do
    os_health && break
    [ -s "$PIDFILE" ] && ! os_running && break
    sleep 0.2
  done
  os_health || { tail -n 30 "$ODIR/logs/lab-opensearch.log" >&2 2>/dev/null; die "opensearch: not answering on $LAB_HOST:$LAB_OPENSEARCH_PORT"; }
  log "opensearch: running (pid $(cat "$PIDFILE"), $((SECONDS - t0))s)"
}

down() { stop_pidfile opensearch "$PIDFILE" org.opensearch.bootstrap.OpenSearch 30; }

status() {
  if os_running && os_health; then status_line opensearch up "pid $(cat "$PIDFILE") $LAB_HOST:$LAB_OPENSEARCH_PORT"
  elif os_running; then status_line opensearch starting "pid $(cat "$PIDFILE") not answering"
  else status_line opensearch down "$ODIR"; return 1
  fi
}

env_lines() {
  echo "export LAB_OPENSEARCH_URL=https://$LAB_HOST:$LAB_OPENSEARCH_PORT"
  echo "export LAB_OPENSEARCH_CA=$ODIR/tls/ca.crt"
  echo "export LAB_OPENSEARCH_USER=admin"
  # The value of the instance Secret's admin-password, and the password the server accepts.
  echo "export LAB_OPENSEARCH_ADMIN_SECRET=$(secret opensearch-admin)"
  echo "export LAB_OPENSEARCH_PASSWORD=$ADMIN_PREFIX$(secret opensearch-admin)"
  echo "export LAB_OPENSEARCH_HOME=$DIST"
  echo "export LAB_OPENSEARCH_TLS_DIR=$ODIR/tls"
}

service_main "$@"
