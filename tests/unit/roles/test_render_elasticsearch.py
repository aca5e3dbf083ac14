"""The elasticsearch role's objects: valid for two Kubernetes minors, and what issue 7 asks for."""

import pytest

from role_render import KUBERNETES_VERSIONS, by_kind, check_pod_security, matches, validate_all

VARIANTS = {
    "opensearch": {},
    "elasticsearch": {"elasticsearch_flavor": "elasticsearch", "elasticsearch_storage_class": "fast",
                      "elasticsearch_mastodon_index_patterns": ["social_*"]},
}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_objects_validate_against_kubernetes_schema(render, variant, version):
    validate_all(render("elasticsearch", **VARIANTS[variant]), version)


@pytest.mark.parametrize("flavor,heap_var", [("opensearch", "OPENSEARCH_JAVA_OPTS"), ("elasticsearch", "ES_JAVA_OPTS")])
def test_heap_follows_the_memory_limit(render, flavor, heap_var):
    objects = render("elasticsearch", elasticsearch_flavor=flavor, elasticsearch_memory_limit="3G",
                     elasticsearch_memory_request="3G")
    container = by_kind(objects, "StatefulSet")[0]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env[heap_var]["value"] == "-Xms1536m -Xmx1536m"
    assert env["discovery.type"]["value"] == "single-node"
    assert container["resources"]["limits"]["memory"] == "3Gi"


def test_security_is_on_with_generated_passwords(render):
    os_objects = render("elasticsearch")
    os_env = {e["name"]: e for e in by_kind(os_objects, "StatefulSet")[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "DISABLE_SECURITY_PLUGIN" not in os_env
    assert os_env["ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "localhost-elasticsearch", "key": "admin-password"}
    es_objects = render("elasticsearch", elasticsearch_flavor="elasticsearch")
    es_env = {e["name"]: e for e in by_kind(es_objects, "StatefulSet")[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert es_env["xpack.security.enabled"]["value"] == "true"
    assert es_env["ELASTIC_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "admin-password"
    for objects, api in ((os_objects, "/_plugins/_security/api/internalusers/mastodon"), (es_objects, "/_security/user/mastodon")):
        job = by_kind(objects, "Job")[0]
        script = job["spec"]["template"]["spec"]["containers"][0]["command"][2]
        assert api in script
        env = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env == {"ADMIN_PASSWORD": "admin-password", "MASTODON_PASSWORD": "mastodon-password"}
        check_pod_security(job["spec"]["template"]["spec"])


def test_selectors(render):
    objects = render("elasticsearch")
    sts = by_kind(objects, "StatefulSet")[0]
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    check_pod_security(sts["spec"]["template"]["spec"])
    job_labels = by_kind(objects, "Job")[0]["spec"]["template"]["metadata"]["labels"]
    for svc in by_kind(objects, "Service"):
        assert matches(svc["spec"]["selector"], pod_labels)
        assert not matches(svc["spec"]["selector"], job_labels)  # the setup Job's pod is no endpoint
    assert not matches(sts["spec"]["selector"]["matchLabels"], job_labels)
    netpol = by_kind(objects, "NetworkPolicy")[0]
    assert matches(netpol["spec"]["podSelector"]["matchLabels"], pod_labels)
    assert any(matches(p["podSelector"]["matchLabels"], job_labels) for p in netpol["spec"]["ingress"][0]["from"])


def test_setup_job_name_changes_with_its_script(render):
    a = by_kind(render("elasticsearch"), "Job")[0]["metadata"]["name"]
    b = by_kind(render("elasticsearch", elasticsearch_mastodon_index_patterns=["x_*"]), "Job")[0]["metadata"]["name"]
    assert a.startswith("localhost-elasticsearch-setup-") and b.startswith("localhost-elasticsearch-setup-")
    assert a != b
