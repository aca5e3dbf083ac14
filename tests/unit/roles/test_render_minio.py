"""The minio role's objects: valid for two Kubernetes minors, and what issue 7 asks for."""

import pytest

from role_render import KUBERNETES_VERSIONS, by_kind, check_pod_security, matches, validate_all

VARIANTS = {
    "defaults": {},
    "minio": {"minio_s3_server": "minio"},
    "ingress": {"minio_ingress_enabled": True, "minio_ingress_host": "files.example.com",
                "minio_ingress_class": "nginx", "minio_ingress_tls_secret": "files-tls",
                "minio_ingress_annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                "minio_storage_class": "fast"},
}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_objects_validate_against_kubernetes_schema(render, variant, version):
    validate_all(render("minio", **VARIANTS[variant]), version)


def test_seaweedfs_statefulset_spec(render):
    """The default server: SeaweedFS, started by the role's script from the ConfigMap, its admin
    identity from the generated Secret, only the S3 port exposed, probes on /healthz."""
    objects = render("minio", minio_storage_size="100G")
    sts = by_kind(objects, "StatefulSet", "localhost-seaweedfs")[0]
    pod = sts["spec"]["template"]["spec"]
    check_pod_security(pod)
    container = pod["containers"][0]
    assert container["image"].startswith("chrislusf/seaweedfs:")
    assert container["command"] == ["/bin/sh", "/etc/fediverse-mastodon/seaweedfs-server.sh"]
    env = {e["name"]: e for e in container["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "localhost-seaweedfs", "key": "root-user"}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "localhost-seaweedfs",
                                                                         "key": "root-password"}
    assert env["S3_PORT"]["value"] == "8333"
    assert [p["containerPort"] for p in container["ports"]] == [8333]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "s3", "scheme": "HTTP"}
    config = by_kind(objects, "ConfigMap", "localhost-seaweedfs-scripts")[0]
    with open("roles/minio/files/seaweedfs-server.sh") as f:
        assert config["data"]["seaweedfs-server.sh"] == f.read().rstrip("\n")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["scripts"]["configMap"]["name"] == "localhost-seaweedfs-scripts"
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert {s["metadata"]["name"]: s["spec"]["ports"][0]["port"] for s in by_kind(objects, "Service")} == {
        "localhost-seaweedfs": 8333, "localhost-seaweedfs-headless": 8333}
    assert by_kind(objects, "NetworkPolicy")[0]["spec"]["ingress"][0]["ports"] == [{"port": 8333, "protocol": "TCP"}]


def test_statefulset_spec(render):
    objects = render("minio", minio_storage_size="100G", minio_s3_server="minio")
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
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "localhost-seaweedfs", "port": {"name": "s3"}}
    assert "Ingress" not in [o["kind"] for o in render("minio")]
