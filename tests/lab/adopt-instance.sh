#!/usr/bin/env bash
# The lab's stand-in for the containers' first boot. In a real cluster the postgres and S3 server
# containers take their admin credentials from the Secrets our roles generate. In the lab the
# pods are simulated and port-forwards reach the lab's own PostgreSQL, SeaweedFS (or, for
# minio_s3_server: minio, Ceph RGW) and OpenSearch, so
# we do the reverse: put the lab servers' admin credentials into those Secrets first (the roles
# keep existing values), as an operator adopting existing servers would.
#   usage: adopt-instance.sh <instance> [namespace]
set -euo pipefail
instance="${1:?usage: adopt-instance.sh <instance> [namespace]}"
namespace="${2:-$instance}"
here="$(cd "$(dirname "$0")" && pwd)"
eval "$(bash "$here/lab.sh" env)"
kubectl="${LAB_KUBECTL:-kubectl}"

"$kubectl" get namespace "$namespace" >/dev/null 2>&1 || "$kubectl" create namespace "$namespace" >/dev/null
apply_secret() {
  local name="$1"; shift
  "$kubectl" -n "$namespace" create secret generic "$name" "$@" --dry-run=client -o yaml \
    | "$kubectl" apply -f - >/dev/null
}
apply_secret "$instance-postgresql" --from-literal=postgres-password="$LAB_PG_PASSWORD"
apply_secret "$instance-seaweedfs" --from-literal=root-user="$LAB_SEAWEEDFS_ACCESS_KEY" --from-literal=root-password="$LAB_SEAWEEDFS_SECRET_KEY"
apply_secret "$instance-minio" --from-literal=root-user="$LAB_S3_ACCESS_KEY" --from-literal=root-password="$LAB_S3_SECRET_KEY"
# The search server's admin password (the role keeps mastodon-password, which it generates).
if [ -n "${LAB_OPENSEARCH_ADMIN_SECRET:-}" ]; then
  "$kubectl" -n "$namespace" get secret "$instance-elasticsearch" >/dev/null 2>&1 ||
    apply_secret "$instance-elasticsearch" --from-literal=admin-password="$LAB_OPENSEARCH_ADMIN_SECRET"
fi

# The postgres image's superuser is `postgres`; the lab cluster's is `lab`: give the lab a
# `postgres` superuser with the same password.
PGPASSWORD="$LAB_PG_PASSWORD" psql -q -h "$LAB_PG_HOST" -p "$LAB_PG_PORT" -U "$LAB_PG_USER" -d postgres -v ON_ERROR_STOP=1 \
  -v pw="$LAB_PG_PASSWORD" >/dev/null <<'SQL'
SELECT format('CREATE ROLE postgres SUPERUSER LOGIN PASSWORD %L', :'pw')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'postgres') \gexec
SELECT format('ALTER ROLE postgres SUPERUSER LOGIN PASSWORD %L', :'pw') \gexec
SQL
echo "adopt-instance: $namespace/$instance uses the lab's PostgreSQL, S3 servers' and OpenSearch admin credentials"
