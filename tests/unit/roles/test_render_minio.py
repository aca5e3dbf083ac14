"""The minio role's objects: valid for two Kubernetes minors, and what issue 7 asks for."""

import pytest

from role_render import KUBERNETES_VERSIONS, by_kind, check_pod_security, matches, validate_all

VARIANTS = {
    "defaults": {},
    "ingress": {"minio_ingress_enabled": True, "minio_ingress_host": "files.example.com",
                "minio_ingress_class": "nginx", "minio_ingress_tls_secret": "files-tls",
                "minio_ingress_annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                "minio_storage_class": "fast"},
}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_objects_validate_against_kubernetes_schema(render, variant, version):
    validate_all(render("minio", **VARIANTS[variant]), version)


def test_statefulset_spec(render):
    objects = render("minio", minio_storage_size="100G")
    sts = by_kind(objects, "StatefulSet", "localhost-minio")[0]
    pod = sts["spec"]["template"]["spec"]
    check_pod_security(pod)
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["MINIO_ROOT_USER"]["valueFrom"]["secretKeyRef"] == {"name": "localhost-minio", "key": "root-user"}
    assert env["MINIO_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "localhost-minio", "key": "root-password"}
    assert env["MINIO_BROWSER"]["value"] == "off"
    assert container["args"][:2] == ["server", "/data"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/minio/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/minio/health/live"
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "100Gi"


def test_selectors_and_ingress(render):
    objects = render("minio", minio_ingress_enabled=True, minio_ingress_host="files.example.com")
    labels = by_kind(objects, "StatefulSet")[0]["spec"]["template"]["metadata"]["labels"]
    for svc in by_kind(objects, "Service"):
        assert matches(svc["spec"]["selector"], labels)
    netpol = by_kind(objects, "NetworkPolicy")[0]
    assert matches(netpol["spec"]["podSelector"]["matchLabels"], labels)
    peers = netpol["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}} in peers
    ingress = by_kind(objects, "Ingress")[0]
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "files.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "localhost-minio", "port": {"name": "s3"}}
    assert "Ingress" not in [o["kind"] for o in render("minio")]
