"""The redis role's objects: valid for two Kubernetes minors, and what issue 7 asks for."""

import pytest

from role_render import KUBERNETES_VERSIONS, by_kind, check_pod_security, matches, validate_all

VARIANTS = {
    "defaults": {},
    "cache": {"redis_cache": True, "redis_storage_class": "fast", "redis_cpu_limit": None,
              "redis_networkpolicy_extra_peers": [{"podSelector": {"matchLabels": {"app": "awx"}}}]},
}


def conf_lines(objects, name):
    text = by_kind(objects, "ConfigMap", name)[0]["data"]["redis.conf"]
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_objects_validate_against_kubernetes_schema(render, variant, version):
    validate_all(render("redis", **VARIANTS[variant]), version)


def test_main_instance_persists_and_never_evicts(render):
    objects = render("redis", redis_memory_limit="1G")
    lines = conf_lines(objects, "localhost-redis")
    assert "appendonly yes" in lines
    assert "maxmemory-policy noeviction" in lines
    assert "maxmemory %d" % (1024 ** 3 * 8 // 10) in lines
    assert "include /run/redis/auth.conf" in lines
    assert not any(line.startswith("requirepass") for line in lines)  # the password is not in the ConfigMap
    sts = by_kind(objects, "StatefulSet", "localhost-redis")[0]
    pod = sts["spec"]["template"]["spec"]
    check_pod_security(pod)
    container = pod["containers"][0]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env["REDIS_PASSWORD"] == {"name": "localhost-redis", "key": "redis-password"}
    assert env["REDISCLI_AUTH"] == env["REDIS_PASSWORD"]
    assert "requirepass" in container["command"][2] and "$REDIS_PASSWORD" in container["command"][2]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "redis-cli" in container[probe]["exec"]["command"][2]
    (vct,) = sts["spec"]["volumeClaimTemplates"]
    assert vct["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert sts["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


def test_cache_instance_is_lru_without_persistence(render):
    objects = render("redis", redis_cache=True)
    lines = conf_lines(objects, "localhost-redis-cache")
    assert "maxmemory-policy allkeys-lru" in lines
    assert "appendonly no" in lines
    sts = by_kind(objects, "StatefulSet", "localhost-redis-cache")[0]
    assert "volumeClaimTemplates" not in sts["spec"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["REDIS_PASSWORD"]["key"] == "cache-password"


def test_selectors_match_and_do_not_mix_main_and_cache(render):
    objects = render("redis", redis_cache=True)
    for name in ("localhost-redis", "localhost-redis-cache"):
        other = "localhost-redis-cache" if name == "localhost-redis" else "localhost-redis"
        labels = by_kind(objects, "StatefulSet", name)[0]["spec"]["template"]["metadata"]["labels"]
        other_labels = by_kind(objects, "StatefulSet", other)[0]["spec"]["template"]["metadata"]["labels"]
        for obj in by_kind(objects, "Service", name) + by_kind(objects, "Service", name + "-headless"):
            assert matches(obj["spec"]["selector"], labels)
            assert not matches(obj["spec"]["selector"], other_labels)
        netpol = by_kind(objects, "NetworkPolicy", name)[0]
        assert matches(netpol["spec"]["podSelector"]["matchLabels"], labels)
        client = {"app.kubernetes.io/part-of": "mastodon", "app.kubernetes.io/instance": "localhost",
                  "mastodon.fediverse/client": "true"}
        assert any(matches(p["podSelector"]["matchLabels"], client) for p in netpol["spec"]["ingress"][0]["from"])


def test_no_cpu_limit_when_null(render):
    objects = render("redis", redis_cpu_limit=None)
    resources = by_kind(objects, "StatefulSet", "localhost-redis")[0]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
