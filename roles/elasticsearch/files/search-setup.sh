#!/usr/bin/env bash
# The in-cluster search server's setup Job. Creates (or updates to the same values) the role and
# the user Mastodon connects as, through the security REST API with the admin credentials, then
# logs in as that user. Every call is an idempotent PUT. Passwords come from the environment and
# reach curl through files in a private temporary directory or stdin, never through arguments.
# The lab's tests run this same file on the host against the lab's real OpenSearch.
#
# Environment:
#   SEARCH_URL              e.g. https://<instance>-elasticsearch:9200 (required)
#   SEARCH_CA_FILE          the CA that signed the server's certificate (https; default: the system's)
#   SEARCH_FLAVOR           opensearch (default) or elasticsearch
#   ADMIN_USER              admin (OpenSearch) or elastic (Elasticsearch)
#   ADMIN_PASSWORD          the Secret's admin-password (required)
#   ADMIN_PASSWORD_PREFIX   prepended to it (the role's elasticsearch__admin_prefix)
#   MASTODON_USER           the user to create (default mastodon); its role is <user>_full_access
#   MASTODON_PASSWORD       its password, the Secret's mastodon-password (required)
#   INDEX_PATTERNS          JSON list of the index patterns the user may use (default ["*"])
#   WAIT_SECONDS            how long to wait for the server (default 900)
set -euo pipefail
umask 077
: "${SEARCH_URL:?SEARCH_URL is not set}" "${ADMIN_PASSWORD:?ADMIN_PASSWORD is not set}" "${MASTODON_PASSWORD:?MASTODON_PASSWORD is not set}"
flavor="${SEARCH_FLAVOR:-opensearch}"
admin_user="${ADMIN_USER:-admin}"
user="${MASTODON_USER:-mastodon}"
# The role is named after the user (mastodon_full_access for the default user), so that instances
# sharing one server each keep their own index patterns.
role="${user}_full_access"
patterns="${INDEX_PATTERNS:-[\"*\"]}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cacert=""
[ -n "${SEARCH_CA_FILE:-}" ] && cacert="$(printf 'cacert = "%s"' "$SEARCH_CA_FILE")"
printf 'user = "%s:%s%s"\n%s\n' "$admin_user" "${ADMIN_PASSWORD_PREFIX:-}" "$ADMIN_PASSWORD" "$cacert" >"$work/admin.curlrc"
printf 'user = "%s:%s"\n%s\n' "$user" "$MASTODON_PASSWORD" "$cacert" >"$work/mastodon.curlrc"

echo "Waiting for $SEARCH_URL"
deadline=$((SECONDS + ${WAIT_SECONDS:-900}))
until curl -K "$work/admin.curlrc" -fsS -o /dev/null "$SEARCH_URL/_cluster/health?wait_for_status=yellow&timeout=10s"; do
  [ "$SECONDS" -lt "$deadline" ] || { echo "$SEARCH_URL did not answer as $admin_user in time"; exit 1; }
  sleep 5
done
put() {
  local code
  code=$(curl -K "$work/admin.curlrc" -sS -o "$work/response" -w '%{http_code}' -X PUT \
    -H 'Content-Type: application/json' --data-binary @- "$SEARCH_URL$1")
  case "$code" in
    200|201) echo "PUT $1: $code" ;;
    *) echo "PUT $1 failed with HTTP $code:"; cat "$work/response"; echo; exit 1 ;;
  esac
}
if [ "$flavor" = opensearch ]; then
  printf '{"cluster_permissions": ["cluster_monitor", "cluster_composite_ops"], "index_permissions": [{"index_patterns": %s, "allowed_actions": ["read", "write", "manage", "indices_monitor"]}]}' "$patterns" \
    | put "/_plugins/_security/api/roles/$role"
  printf '{"password": "%s", "backend_roles": [], "attributes": {}}' "$MASTODON_PASSWORD" \
    | put "/_plugins/_security/api/internalusers/$user"
  printf '{"users": ["%s"], "backend_roles": [], "hosts": []}' "$user" \
    | put "/_plugins/_security/api/rolesmapping/$role"
else
  printf '{"cluster": ["monitor"], "indices": [{"names": %s, "privileges": ["read", "monitor", "write", "manage"]}]}' "$patterns" \
    | put "/_security/role/$role"
  printf '{"password": "%s", "roles": ["%s"]}' "$MASTODON_PASSWORD" \
    | put "/_security/user/$user"
fi
curl -K "$work/mastodon.curlrc" -fsS -o /dev/null "$SEARCH_URL/_cluster/health"
echo "User $user can log in."
