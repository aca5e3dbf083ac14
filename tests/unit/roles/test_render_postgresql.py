"""The postgresql role's objects: valid for two Kubernetes minors, and what issue 7 asks for."""

import pytest

from role_render import KUBERNETES_VERSIONS, by_kind, check_pod_security, matches, validate_all

VARIANTS = {
    "defaults": {},
    "pgbouncer": {"postgresql_pgbouncer": True, "postgresql_storage_class": "fast",
                  "postgresql_parameters": {"work_mem": "8MB"},
                  "postgresql_networkpolicy_extra_peers": [
                      {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "awx"}}}]},
}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_objects_validate_against_kubernetes_schema(render, variant, version):
    validate_all(render("postgresql", **VARIANTS[variant]), version)


def test_statefulset_spec(render):
    objects = render("postgresql", postgresql_instance="social", postgresql_namespace="social",
                     postgresql_storage_size="20G", postgresql_memory_limit="1536M", postgresql_cpu_limit="1000m")
    sts = by_kind(objects, "StatefulSet", "social-postgresql")[0]
    pod = sts["spec"]["template"]["spec"]
    check_pod_security(pod)
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["PGDATA"]["value"] == "/var/lib/postgresql/data/pgdata"
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "social-postgresql", "key": "postgres-password"}
    assert "value" not in env["POSTGRES_PASSWORD"]
    assert container["args"] == ["-c", "max_connections=200", "-c", "shared_buffers=256MB"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"][0] == "pg_isready"
    # canonical quantities, so the live object equals the rendered one
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"},
                                      "limits": {"cpu": "1", "memory": "1536Mi"}}
    (vct,) = sts["spec"]["volumeClaimTemplates"]
    assert vct["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert "storageClassName" not in vct["spec"]
    assert {"name": "data", "mountPath": "/var/lib/postgresql/data"} in container["volumeMounts"]
    assert matches(sts["spec"]["selector"]["matchLabels"], sts["spec"]["template"]["metadata"]["labels"])


def test_services_and_networkpolicy_select_the_pods(render):
    objects = render("postgresql", postgresql_pgbouncer=True)
    sts = by_kind(objects, "StatefulSet")[0]
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    for svc in by_kind(objects, "Service"):
        if svc["metadata"]["name"].endswith("postgresql") or svc["metadata"]["name"].endswith("headless"):
            assert matches(svc["spec"]["selector"], pod_labels)
    netpol = by_kind(objects, "NetworkPolicy", "localhost-postgresql")[0]
    assert matches(netpol["spec"]["podSelector"]["matchLabels"], pod_labels)
    peers = netpol["spec"]["ingress"][0]["from"]
    client = {"app.kubernetes.io/part-of": "mastodon", "app.kubernetes.io/instance": "localhost",
              "mastodon.fediverse/client": "true", "app.kubernetes.io/name": "web"}
    bouncer = by_kind(objects, "Deployment", "localhost-pgbouncer")[0]
    bouncer_labels = bouncer["spec"]["template"]["metadata"]["labels"]
    assert any(matches(p["podSelector"]["matchLabels"], client) for p in peers)
    assert any(matches(p["podSelector"]["matchLabels"], bouncer_labels) for p in peers)
    other_instance = dict(client, **{"app.kubernetes.io/instance": "other"})
    assert not any(matches(p["podSelector"]["matchLabels"], other_instance) for p in peers)


def test_pgbouncer_is_transaction_mode_and_keeps_the_password_out_of_the_spec(render):
    objects = render("postgresql", postgresql_pgbouncer=True)
    ini = by_kind(objects, "ConfigMap", "localhost-pgbouncer")[0]["data"]["pgbouncer.ini"]
    assert "pool_mode = transaction" in ini
    assert "* = host=localhost-postgresql.localhost.svc port=5432" in ini
    deploy = by_kind(objects, "Deployment", "localhost-pgbouncer")[0]
    pod = deploy["spec"]["template"]["spec"]
    check_pod_security(pod)
    assert pod["initContainers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["key"] == "postgres-password"
    assert deploy["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


def test_without_pgbouncer_there_is_no_pooler(render):
    kinds = [(o["kind"], o["metadata"]["name"]) for o in render("postgresql")]
    assert ("Deployment", "localhost-pgbouncer") not in kinds
    assert ("ConfigMap", "localhost-pgbouncer") not in kinds
