"""The mastodon role's objects rendered offline: valid for two Kubernetes minors, no secret in a
ConfigMap, hardened pods, and exactly one process on the scheduler queue."""

import os

import pytest

from role_render import KUBERNETES_VERSIONS, REPO, by_kind, render_role, validate_all

CONNECTIONS = {
    "mastodon_local_domain": "social.example.org",
    "postgresql_connection": {
        "mode": "incluster", "host": "localhost-postgresql.localhost.svc", "port": 5432,
        "direct_host": "localhost-postgresql.localhost.svc", "direct_port": 5432, "pooled": False,
        "sslmode": "prefer", "admin_user": "postgres",
        "admin_secret": {"name": "localhost-postgresql", "key": "postgres-password"},
        "service": "localhost-postgresql",
        "port_forward": {"namespace": "localhost", "service": "localhost-postgresql", "port": 5432}},
    "redis_connection": {
        "mode": "incluster", "host": "localhost-redis.localhost.svc", "port": 6379, "tls": False,
        "password_secret": {"name": "localhost-redis", "key": "redis-password"}, "cache": None},
    "minio_connection": {
        "mode": "incluster", "endpoint": "http://localhost-minio.localhost.svc:9000", "region": "us-east-1",
        "alias_host": None, "api": "minio",
        "admin_secret": {"name": "localhost-minio", "access_key": "root-user", "secret_key": "root-password"},
        "port_forward": {"namespace": "localhost", "service": "localhost-minio", "port": 9000}},
}


@pytest.fixture(scope="module")
def objects():
    return render_role("mastodon", CONNECTIONS)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_objects_validate_against_kubernetes_schema(objects, version):
    validate_all([o for o in objects if o["apiVersion"] != "gateway.networking.k8s.io/v1"], version)


def test_no_secret_in_any_config_map(objects):
    secret_words = ("PASSWORD", "SECRET", "PRIVATE_KEY", "_PASS", "ENCRYPTION")
    for config_map in by_kind(objects, "ConfigMap"):
        for key in config_map.get("data", {}):
            assert not any(word in key for word in secret_words), (config_map["metadata"]["name"], key)


def test_web_streaming_and_sidekiq_run_hardened_as_991(objects):
    deployments = by_kind(objects, "Deployment")
    assert len(deployments) >= 3
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == 991 and pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert any("checksum" in key for key in annotations), deployment["metadata"]["name"]


def test_scheduler_queue_is_served_once(objects):
    served = 0
    for deployment in by_kind(objects, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            command = " ".join(container.get("command", []) + container.get("args", []))
            if "sidekiq" in command and "scheduler" in command:
                served += deployment["spec"].get("replicas", 1)
    assert served == 1


def test_a_tls_redis_password_reaches_redis_url_percent_encoded_through_a_secret():
    """REDIS_URL for a TLS Redis comes from the URL Secret (url_secret percent-encodes the password),
    never from a $(REDIS_PASSWORD) interpolation that pastes the raw password into the URL."""
    tls = dict(CONNECTIONS)
    tls["redis_connection"] = dict(CONNECTIONS["redis_connection"], tls=True, port=6380)
    objects = render_role("mastodon", tls)
    web = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"].endswith("-web")][0]
    env = dict((e["name"], e) for e in web["spec"]["template"]["spec"]["containers"][0]["env"])
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "localhost-mastodon-redis-urls", "key": "REDIS_URL"}
    assert not any("$(REDIS_PASSWORD)" in str(e.get("value", "")) for e in env.values())


def test_with_pgbouncer_the_pods_pool_without_prepared_statements_and_the_migrations_go_direct():
    """Transaction pooling breaks server-side prepared statements and the migrations' advisory
    lock: the pods go through PgBouncer with PREPARED_STATEMENTS=false, every Job to the server
    itself (tests/integration/test_rendered_servers.py runs that PgBouncer for real)."""
    import copy
    connections = copy.deepcopy(CONNECTIONS)
    connections["postgresql_connection"].update(host="localhost-postgresql-pgbouncer.localhost.svc", port=6432, pooled=True)
    objects = render_role("mastodon", connections)
    env = [c["data"] for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"] == "localhost-mastodon-env"][0]
    assert (env["DB_HOST"], env["DB_PORT"], env["PREPARED_STATEMENTS"]) == ("localhost-postgresql-pgbouncer.localhost.svc", "6432", "false")
    jobs = by_kind(objects, "Job")
    assert any(j["metadata"]["name"].startswith("localhost-db-migrate-pre-") for j in jobs)
    for job in jobs:
        job_env = dict((e["name"], e.get("value")) for e in job["spec"]["template"]["spec"]["containers"][0]["env"])
        assert (job_env["DB_HOST"], job_env["DB_PORT"], job_env["PREPARED_STATEMENTS"]) == (
            "localhost-postgresql.localhost.svc", "5432", "true"), job["metadata"]["name"]


def test_the_in_cluster_opensearch_ca_reaches_mastodon_as_es_ca_file():
    import copy
    connections = copy.deepcopy(CONNECTIONS)
    connections["elasticsearch_connection"] = {
        "enabled": True, "mode": "incluster", "flavor": "opensearch", "scheme": "https", "host": "localhost-elasticsearch.localhost.svc",
        "port": 9200, "user": "mastodon", "password_secret": {"name": "localhost-elasticsearch", "key": "mastodon-password"},
        "ca_secret": {"name": "localhost-elasticsearch-tls", "key": "ca.crt"}}
    objects = render_role("mastodon", connections)
    env = [c["data"] for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"] == "localhost-mastodon-env"][0]
    assert env["ES_HOST"] == "https://localhost-elasticsearch.localhost.svc" and env["ES_CA_FILE"] == "/opt/mastodon/es-ca/ca.crt"
    web = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "localhost-web"][0]["spec"]["template"]["spec"]
    volume = [v for v in web["volumes"] if v["name"] == "es-ca"][0]
    assert volume["secret"]["secretName"] == "localhost-elasticsearch-tls" and volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    assert {"name": "es-ca", "mountPath": "/opt/mastodon/es-ca", "readOnly": True} in web["containers"][0]["volumeMounts"]


def _deployment(objects, name):
    return [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == name][0]["spec"]["template"]["spec"]


def _env(container):
    return dict((e["name"], e.get("value")) for e in container.get("env", []))


def test_metrics_web_through_its_exporter_container_sidekiq_in_process_streaming_on_its_port():
    """Puma runs several processes, which Mastodon's in-process exporter cannot serve: web's
    processes report to an exporter container of the pod; sidekiq serves its own; the metrics
    namespace may reach all three (streaming on its own port)."""
    objects = render_role("mastodon", dict(CONNECTIONS, mastodon_prometheus_enabled=True, mastodon_networkpolicy_enabled=True,
                                           mastodon_networkpolicy_metrics_namespace="monitoring"))
    config = [c["data"] for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"] == "localhost-mastodon-env"][0]
    assert config["MASTODON_PROMETHEUS_EXPORTER_ENABLED"] == "true" and "MASTODON_PROMETHEUS_EXPORTER_LOCAL" not in config
    web = _deployment(objects, "localhost-web")
    assert [c["name"] for c in web["containers"]] == ["web", "prometheus-exporter"]
    puma, exporter = web["containers"]
    assert [p["name"] for p in puma["ports"]] == ["http"]
    assert (_env(puma)["PROMETHEUS_EXPORTER_HOST"], _env(puma)["PROMETHEUS_EXPORTER_PORT"]) == ("localhost", "9394")
    assert "MASTODON_PROMETHEUS_EXPORTER_LOCAL" not in _env(puma)
    assert exporter["command"] == ["bundle", "exec", "prometheus_exporter", "--bind", "0.0.0.0", "--port", "9394"]
    assert exporter["ports"] == [{"name": "metrics", "containerPort": 9394, "protocol": "TCP"}]
    assert not any(k in exporter for k in ("readinessProbe", "livenessProbe", "startupProbe", "volumeMounts"))
    for worker in [d for d in by_kind(objects, "Deployment") if "-sidekiq-" in d["metadata"]["name"]]:
        container = worker["spec"]["template"]["spec"]["containers"][0]
        env = _env(container)
        assert (env["MASTODON_PROMETHEUS_EXPORTER_LOCAL"], env["MASTODON_PROMETHEUS_EXPORTER_HOST"]) == ("true", "0.0.0.0")
        assert {"name": "metrics", "containerPort": 9394, "protocol": "TCP"} in container["ports"]
    policies = dict((p["metadata"]["name"], p) for p in by_kind(objects, "NetworkPolicy"))
    for component, port in (("web", 9394), ("sidekiq", 9394), ("streaming", 4000)):
        rules = policies["localhost-" + component]["spec"]["ingress"]
        assert {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                "ports": [{"protocol": "TCP", "port": port}]} in rules, component
    off = render_role("mastodon", CONNECTIONS)
    assert [c["name"] for c in _deployment(off, "localhost-web")["containers"]] == ["web"]


def test_the_jobs_reach_an_external_s3_and_streaming_an_external_database():
    """The media clean-up CronJob (a Job) gets no internet egress: an external S3 must be allowed
    by name of its endpoint, and streaming must reach an external database."""
    import copy
    connections = copy.deepcopy(CONNECTIONS)
    connections["minio_connection"].update(mode="external", endpoint="https://s3.example.org")
    connections["postgresql_connection"].update(mode="external", host="192.0.2.10", direct_host="192.0.2.10")
    objects = render_role("mastodon", dict(connections, mastodon_networkpolicy_enabled=True))
    policies = dict((p["metadata"]["name"], p["spec"]["egress"]) for p in by_kind(objects, "NetworkPolicy"))
    s3 = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}], "ports": [{"protocol": "TCP", "port": 443}]}
    db = {"to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}], "ports": [{"protocol": "TCP", "port": 5432}]}
    assert s3 in policies["localhost-jobs"] and db in policies["localhost-jobs"]
    assert db in policies["localhost-streaming"] and s3 not in policies["localhost-streaming"]
    off = render_role("mastodon", dict(connections, mastodon_networkpolicy_enabled=True, mastodon_networkpolicy_endpoint_egress=False))
    assert s3 not in [r for p in by_kind(off, "NetworkPolicy") if p["metadata"]["name"] == "localhost-jobs" for r in p["spec"]["egress"]]


EVERYTHING_ON = dict(mastodon_prometheus_enabled=True, mastodon_networkpolicy_enabled=True,
                     mastodon_networkpolicy_metrics_namespace="monitoring",
                     mastodon_media_remove_enabled=True, mastodon_media_remove_keep_interacted=True,
                     mastodon_media_prune_profiles_enabled=True, mastodon_preview_cards_remove_enabled=True,
                     mastodon_media_remove_orphans_enabled=True, mastodon_statuses_remove_enabled=True,
                     mastodon_accounts_prune_enabled=True, mastodon_asset_upload_enabled=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_optional_object_validates_against_kubernetes_schema(version):
    objects = render_role("mastodon", dict(CONNECTIONS, **EVERYTHING_ON))
    assert len(by_kind(objects, "CronJob")) == 6
    validate_all([o for o in objects if o["apiVersion"] != "gateway.networking.k8s.io/v1"], version)


def test_the_optional_settings_reach_the_environment_and_the_api_key_the_secret():
    objects = render_role("mastodon", dict(
        CONNECTIONS, mastodon_cdn_host="https://assets.example.org", mastodon_extra_media_hosts=["https://media2.example.org"],
        mastodon_experimental_features=["fasp"], mastodon_libre_translate_endpoint="https://translate.example.org",
        mastodon_libre_translate_api_key="not-a-real-key", mastodon_query_log_tags_enabled=True,
        mastodon_redis_sentinel_master="mymaster", mastodon_redis_sentinels=["sentinel-0:26379", "sentinel-1:26379"],
        mastodon_db_replica={"host": "replica.example.org"}, mastodon_search_deploy_only_mapping=True))
    env = [c["data"] for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"] == "localhost-mastodon-env"][0]
    assert (env["CDN_HOST"], env["EXTRA_MEDIA_HOSTS"], env["EXPERIMENTAL_FEATURES"]) == (
        "https://assets.example.org", "https://media2.example.org", "fasp")
    assert (env["LIBRE_TRANSLATE_ENDPOINT"], env["QUERY_LOG_TAGS_ENABLED"], env["REPLICA_DB_TASKS"]) == (
        "https://translate.example.org", "true", "false")
    assert (env["REDIS_SENTINEL_MASTER"], env["REDIS_SENTINELS"]) == ("mymaster", "sentinel-0:26379,sentinel-1:26379")
    assert "LIBRE_TRANSLATE_API_KEY" not in env and "not-a-real-key" not in str(env)
    secrets = [s for s in by_kind(objects, "Secret") if s["metadata"]["name"] == "localhost-mastodon-env"]
    assert secrets and "LIBRE_TRANSLATE_API_KEY" in (secrets[0].get("stringData") or secrets[0].get("data"))


def test_component_overrides_reach_their_component_only():
    fork = "registry.example.org/mastodon-fork:v4.6.3-patch1"
    objects = render_role("mastodon", dict(
        CONNECTIONS, mastodon_web_overrides={"image": fork, "pod_annotations": {"a": "1"}, "deployment_labels": {"tier": "front"},
                                             "extra_env": {"WEB_ONLY": "yes"}, "otel_service_name_prefix": "social"},
        mastodon_jobs_overrides={"pod_labels": {"job-team": "db"}},
        mastodon_sidekiq_workers=[{"name": "all", "queues": ["default", "scheduler"],
                                   "overrides": {"pod_security_context": {"runAsNonRoot": True, "runAsUser": 1001, "fsGroup": 1001}}}]))
    web = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "localhost-web"][0]
    pod = web["spec"]["template"]
    assert pod["spec"]["containers"][0]["image"] == fork and pod["metadata"]["annotations"]["a"] == "1"
    assert web["metadata"]["labels"]["tier"] == "front" and web["metadata"]["labels"]["app.kubernetes.io/name"] == "web"
    assert {"name": "WEB_ONLY", "value": "yes"} in pod["spec"]["containers"][0]["env"]
    assert {"name": "OTEL_SERVICE_NAME_PREFIX", "value": "social"} in pod["spec"]["containers"][0]["env"]
    streaming = _deployment(objects, "localhost-streaming")
    assert streaming["containers"][0]["image"].startswith("ghcr.io/mastodon/mastodon-streaming:")
    assert not any(e["name"] == "WEB_ONLY" for e in streaming["containers"][0]["env"])
    sidekiq = _deployment(objects, "localhost-sidekiq-all")
    assert sidekiq["securityContext"]["runAsUser"] == 1001
    for job in by_kind(objects, "Job"):
        assert job["spec"]["template"]["metadata"]["labels"]["job-team"] == "db"
        assert job["spec"]["template"]["spec"]["containers"][0]["image"].startswith("ghcr.io/mastodon/mastodon:")


def test_the_asset_upload_job_copies_the_images_assets_with_the_media_keys_only():
    objects = render_role("mastodon", dict(CONNECTIONS, mastodon_asset_upload_enabled=True, mastodon_asset_upload_acl="public-read",
                                           mastodon_jobs_overrides={"pod_labels": {"job-team": "db"}}))
    job = [j for j in by_kind(objects, "Job") if j["metadata"]["name"] == "localhost-asset-upload-v4-6-3"][0]
    assert job["metadata"]["labels"]["mastodon.fediverse/job"] == "asset-upload"
    template = job["spec"]["template"]
    labels = template["metadata"]["labels"]
    # the S3 server admits it, the database and Redis do not (no client label); the jobs' overrides apply
    assert labels["mastodon.fediverse/s3-client"] == "true" and "mastodon.fediverse/client" not in labels
    assert labels["job-team"] == "db" and labels["app.kubernetes.io/name"] == "jobs"
    pod = template["spec"]
    assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"] is True
    (collect,), (upload,) = pod["initContainers"], pod["containers"]
    assert collect["image"] == "ghcr.io/mastodon/mastodon:v4.6.3"
    assert collect["command"] == ["/bin/sh", "/opt/asset-upload/asset-upload.sh", "collect", "/opt/mastodon/public", "/assets"]
    assert upload["image"].startswith("docker.io/rclone/rclone:")
    assert upload["command"] == ["/bin/sh", "/opt/asset-upload/asset-upload.sh", "upload", "/assets"]
    env = dict((e["name"], e.get("value", e.get("valueFrom"))) for e in upload["env"])
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "localhost-mastodon-s3", "key": "AWS_SECRET_ACCESS_KEY"}}
    assert (env["S3_ENDPOINT"], env["S3_BUCKET"], env["S3_ACL"]) == ("http://localhost-minio.localhost.svc:9000", "localhost-media", "public-read")
    # no Mastodon environment: neither the database password nor Mastodon's keys reach this pod
    assert "envFrom" not in upload and not any(n.startswith(("DB_", "SECRET_KEY", "REDIS")) for n in env)
    assert {v["name"] for v in pod["volumes"]} == {"assets", "tmp", "script"}
    script = [c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"] == "localhost-mastodon-asset-upload"][0]
    with open(os.path.join(REPO, "roles", "mastodon", "files", "asset-upload.sh"), encoding="utf-8") as fh:
        assert script["data"]["asset-upload.sh"] == fh.read().rstrip("\n")
    web = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "localhost-web"][0]
    assert "ConfigMap/localhost-mastodon-asset-upload" in web["metadata"]["annotations"]["mastodon.fediverse/managed-objects"]


def test_the_asset_upload_is_refused_without_s3_media():
    with pytest.raises(AssertionError, match="mastodon_asset_upload_enabled: the assets go to the media S3 endpoint"):
        render_role("mastodon", dict(CONNECTIONS, mastodon_asset_upload_enabled=True, mastodon_s3_enabled=False))


@pytest.mark.parametrize("preset", ["none", "ingress-nginx", "traefik"])
def test_the_ingress_presets(preset):
    objects = render_role("mastodon", dict(CONNECTIONS, mastodon_ingress_preset=preset,
                                           mastodon_ingress_annotations={"nginx.ingress.kubernetes.io/proxy-read-timeout": "7200"}))
    (ingress,) = by_kind(objects, "Ingress")
    ann = ingress["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/proxy-body-size"] == "100m"
    # the operator's annotation wins over the preset's
    assert ann["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "7200"
    assert ("nginx.ingress.kubernetes.io/proxy-send-timeout" in ann) == (preset == "ingress-nginx")
    middlewares = [o for o in objects if o["kind"] == "Middleware"]
    web = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "localhost-web"][0]
    managed = web["metadata"]["annotations"]["mastodon.fediverse/managed-objects"]
    if preset == "traefik":
        (middleware,) = middlewares
        assert middleware["apiVersion"] == "traefik.io/v1alpha1" and middleware["metadata"]["name"] == "localhost-mastodon-compress"
        assert middleware["spec"] == {"compress": {"excludedContentTypes": ["text/event-stream"]}}
        assert ann["traefik.ingress.kubernetes.io/router.middlewares"] == "localhost-localhost-mastodon-compress@kubernetescrd"
        assert "Middleware/localhost-mastodon-compress" in managed
    else:
        assert middlewares == [] and not any(k.startswith("traefik.") for k in ann) and "Middleware/" not in managed


def test_the_pod_monitor_scrapes_the_three_metrics_ports():
    objects = render_role("mastodon", dict(CONNECTIONS, mastodon_prometheus_enabled=True, mastodon_prometheus_podmonitor_enabled=True,
                                           mastodon_prometheus_podmonitor_labels={"release": "prometheus"}))
    (monitor,) = [o for o in objects if o["kind"] == "PodMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["metadata"]["labels"]["release"] == "prometheus"
    assert [(e["port"], e["path"]) for e in monitor["spec"]["podMetricsEndpoints"]] == [("metrics", "/metrics"), ("streaming", "/metrics")]
    selector = monitor["spec"]["selector"]
    ports = {}
    for deployment in by_kind(objects, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if labels["app.kubernetes.io/instance"] == selector["matchLabels"]["app.kubernetes.io/instance"] \
                and labels["app.kubernetes.io/name"] in selector["matchExpressions"][0]["values"]:
            ports[labels["app.kubernetes.io/name"]] = {p["name"] for c in deployment["spec"]["template"]["spec"]["containers"]
                                                       for p in c.get("ports", [])}
    # every component it selects has a port that one of its endpoints names
    assert set(ports) == {"web", "sidekiq", "streaming"}
    assert all(names & {"metrics", "streaming"} for names in ports.values()), ports
    web = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "localhost-web"][0]
    assert "PodMonitor/localhost-mastodon" in web["metadata"]["annotations"]["mastodon.fediverse/managed-objects"]
    with pytest.raises(AssertionError, match="mastodon_prometheus_podmonitor_enabled: the PodMonitor scrapes the metrics"):
        render_role("mastodon", dict(CONNECTIONS, mastodon_prometheus_podmonitor_enabled=True))


@pytest.mark.parametrize("routing", ["ingress", "httproute"])
def test_the_streaming_host_routes_the_streaming_api_only(routing):
    """Streaming serves /metrics without authentication: no route may reach any other path of it."""
    objects = render_role("mastodon", dict(CONNECTIONS, mastodon_routing=routing, mastodon_streaming_host="streaming.example.org",
                                           mastodon_httproute_parent_refs=[{"name": "gw"}]))
    paths = []
    for obj in objects:
        if obj["kind"] == "Ingress":
            paths += [p["path"] for rule in obj["spec"]["rules"] for p in rule["http"]["paths"]
                      if p["backend"]["service"]["name"] == "localhost-streaming"]
        elif obj["kind"] == "HTTPRoute":
            paths += [m["path"]["value"] for rule in obj["spec"]["rules"] for m in rule["matches"]
                      if rule["backendRefs"][0]["name"] == "localhost-streaming"]
    assert paths and set(paths) == {"/api/v1/streaming"}, paths
