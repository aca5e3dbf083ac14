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
    if flavor == "elasticsearch":
        assert env["discovery.type"]["value"] == "single-node"
    assert container["resources"]["limits"]["memory"] == "3Gi"


def test_security_is_on_with_generated_passwords(render):
    os_objects = render("elasticsearch")
    pod = by_kind(os_objects, "StatefulSet")[0]["spec"]["template"]["spec"]
    os_env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert "DISABLE_SECURITY_PLUGIN" not in os_env
    # The demo installer never runs: the init container writes the security config instead.
    assert os_env["DISABLE_INSTALL_DEMO_CONFIG"]["value"] == "true"
    assert "OPENSEARCH_INITIAL_ADMIN_PASSWORD" not in str(pod)
    init = pod["initContainers"][0]
    init_env = {e["name"]: e for e in init["env"]}
    assert init["command"] == ["/bin/bash", "/etc/fediverse-mastodon/opensearch-security.sh"]
    assert init_env["ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "localhost-elasticsearch", "key": "admin-password"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "localhost-elasticsearch-tls"
    assert volumes["files"]["configMap"]["name"] == "localhost-elasticsearch-config"
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["config"] == "/usr/share/opensearch/config"
    configmap = by_kind(os_objects, "ConfigMap")[0]
    assert sorted(configmap["data"]) == ["opensearch-security.sh", "opensearch.yml", "search-setup.sh"]
    assert "plugins.security.nodes_dn" in configmap["data"]["opensearch.yml"]
    es_objects = render("elasticsearch", elasticsearch_flavor="elasticsearch")
    es_env = {e["name"]: e for e in by_kind(es_objects, "StatefulSet")[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert es_env["xpack.security.enabled"]["value"] == "true"
    assert es_env["ELASTIC_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "admin-password"
    for objects, flavor in ((os_objects, "opensearch"), (es_objects, "elasticsearch")):
        job = by_kind(objects, "Job")[0]
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["/bin/bash", "/etc/fediverse-mastodon/search-setup.sh"]
        assert "$SEARCH_URL" in by_kind(objects, "ConfigMap")[0]["data"]["search-setup.sh"]
        assert {"name": "SEARCH_FLAVOR", "value": flavor} in container["env"]
        env = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
        assert env == {"ADMIN_PASSWORD": "admin-password", "MASTODON_PASSWORD": "mastodon-password"}
        check_pod_security(job["spec"]["template"]["spec"])


def test_a_changed_config_file_restarts_the_server(render, monkeypatch):
    a = by_kind(render("elasticsearch"), "StatefulSet")[0]["spec"]["template"]["metadata"]["annotations"]
    b = by_kind(render("elasticsearch", elasticsearch_pod_annotations={"x": "y"}), "StatefulSet")[0]["spec"]["template"]["metadata"]["annotations"]
    assert a["fediverse.mastodon/config-checksum"] == b["fediverse.mastodon/config-checksum"] and b["x"] == "y"


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
