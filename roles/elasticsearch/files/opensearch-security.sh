#!/usr/bin/env bash
# The in-cluster OpenSearch server's init container (elasticsearch_flavor: opensearch). It builds
# the config directory the server starts with, so that the security plugin's demo installer
# (demo certificates, default users and passwords) is never needed:
#   - a copy of the image's config directory, with the role's opensearch.yml;
#   - the instance's certificates (from its TLS Secret) under tls/;
#   - opensearch-security/: one internal user, `admin`, whose bcrypt hash is made here from the
#     generated password; the demo users are gone. Only `admin` is mapped to all_access; the
#     setup Job adds Mastodon's user through the REST API. HTTP basic auth only, no anonymous.
# The lab runs this same file on the host before it starts its real OpenSearch.
#
# Environment:
#   ADMIN_PASSWORD          the Secret's admin-password (required; never an argument)
#   ADMIN_PASSWORD_PREFIX   prepended to it (the role's elasticsearch__admin_prefix)
#   OPENSEARCH_HOME         the distribution (default /usr/share/opensearch)
#   SOURCE_CONFIG           the distribution's config directory (default $OPENSEARCH_HOME/config)
#   TARGET_CONFIG           the directory to write (required; emptied first)
#   SERVER_CONFIG           the role's opensearch.yml (required)
#   TLS_DIR                 holds ca.crt, tls.crt and tls.key (required)
set -euo pipefail
umask 077
: "${ADMIN_PASSWORD:?ADMIN_PASSWORD is not set}"
: "${TARGET_CONFIG:?TARGET_CONFIG is not set}" "${SERVER_CONFIG:?SERVER_CONFIG is not set}" "${TLS_DIR:?TLS_DIR is not set}"
home="${OPENSEARCH_HOME:-/usr/share/opensearch}"
source_config="${SOURCE_CONFIG:-$home/config}"
for f in ca.crt tls.crt tls.key; do
  [ -s "$TLS_DIR/$f" ] || { echo "opensearch-security: $TLS_DIR/$f is missing or empty" >&2; exit 1; }
done

find "$TARGET_CONFIG" -mindepth 1 -delete
cp -R "$source_config/." "$TARGET_CONFIG/"
cp "$SERVER_CONFIG" "$TARGET_CONFIG/opensearch.yml"
mkdir -p "$TARGET_CONFIG/tls"
cp "$TLS_DIR/ca.crt" "$TLS_DIR/tls.crt" "$TLS_DIR/tls.key" "$TARGET_CONFIG/tls/"

# The hash tool reads the password from the variable it is named, never from an argument.
export OPENSEARCH_SECURITY_PASSWORD="${ADMIN_PASSWORD_PREFIX:-}$ADMIN_PASSWORD"
export OPENSEARCH_JAVA_HOME="${OPENSEARCH_JAVA_HOME:-${JAVA_HOME:-$home/jdk}}"
hash="$(bash "$home/plugins/opensearch-security/tools/hash.sh" -env OPENSEARCH_SECURITY_PASSWORD | tail -n 1)"
unset OPENSEARCH_SECURITY_PASSWORD
case "$hash" in
  '$2'?'$'*) ;;
  *) echo "opensearch-security: the hash tool did not print a bcrypt hash" >&2; exit 1 ;;
esac

security="$TARGET_CONFIG/opensearch-security"
cat >"$security/internal_users.yml" <<USERS
---
_meta:
  type: "internalusers"
  config_version: 2
admin:
  hash: "$hash"
  reserved: true
  backend_roles:
    - "admin"
  description: "Administrator (fediverse.mastodon; the password is in the instance's Secret)"
USERS
cat >"$security/roles_mapping.yml" <<'MAPPING'
---
_meta:
  type: "rolesmapping"
  config_version: 2
all_access:
  reserved: true
  backend_roles:
    - "admin"
  description: "Only the administrator has all access"
MAPPING
cat >"$security/config.yml" <<'CONFIG'
---
_meta:
  type: "config"
  config_version: 2
config:
  dynamic:
    http:
      anonymous_auth_enabled: false
    authc:
      basic_internal_auth_domain:
        description: "HTTP basic authentication against the internal users"
        http_enabled: true
        transport_enabled: true
        order: 0
        http_authenticator:
          type: basic
          challenge: true
        authentication_backend:
          type: intern
CONFIG
echo "opensearch-security: $TARGET_CONFIG is ready (one user, admin; no demo users or certificates)"
