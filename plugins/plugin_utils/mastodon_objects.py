# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The parts that every Mastodon pod shares, built once in Python for the role's templates.

The templates (roles/mastodon/templates/<group>.yml.j2, one per object group) write each object
as YAML and take from here what web, streaming, sidekiq, the Jobs and the CronJob share: the
container's environment and volumes, and the pod spec around it. ``s`` is the dict of role
settings that the role passes as ``mastodon__pod_settings`` (roles/mastodon/vars/main.yml).

Values are written the way the API server stores them (no empty fields), so the objects compare
equal to the live ones on a rerun and nothing is sent.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.fediverse.mastodon.plugins.plugin_utils.inputs import as_bool


def env_sections(raw):
    """The sections of the rendered env.yml.j2, each present: config (with the operator's extra
    settings over it), secret, refs, computed and urls. An empty section renders as null."""
    raw = raw or {}
    config = dict(raw.get("config") or {})
    config.update(raw.get("extra") or {})
    return dict(config=config, secret=dict(raw.get("secret") or {}), refs=list(raw.get("refs") or []),
                computed=dict(raw.get("computed") or {}), urls=list(raw.get("urls") or []))


def str_env(value):
    """An environment value as the API server keeps it: a string, booleans as true/false."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def env_list(env, extra):
    """Container env: secretKeyRefs first, then the $(VAR) entries that use them, then per-process values."""
    items = [dict(name=ref["name"], valueFrom=dict(secretKeyRef=dict(name=ref["secret"], key=ref["key"])))
             for ref in env.get("refs") or []]
    items += [dict(name=name, value=value) for name, value in (env.get("computed") or {}).items()]
    items += [dict(name=name, value=str_env(value)) for name, value in (extra or {}).items() if value is not None]
    return items


def _uses_pvc(s):
    return not as_bool(s["s3_enabled"])


def es_ca_secret(s):
    """The Secret {name, key} with the search server's CA: the operator's, else the in-cluster
    OpenSearch's own (its connection fact's ca_secret), else None."""
    return s.get("elasticsearch_ca_secret") or (s.get("elasticsearch_connection") or {}).get("ca_secret") or None


def _uses_es_ca(s):
    return bool(es_ca_secret(s)) and as_bool((s.get("elasticsearch_connection") or {}).get("enabled", False))


ES_CA_DIR = "/opt/mastodon/es-ca"


def es_ca_file(s):
    """Mastodon's ES_CA_FILE: where the search server's CA is mounted, or None when it is not
    (the same decision as the mount, so the two cannot drift)."""
    return ES_CA_DIR + "/ca.crt" if _uses_es_ca(s) else None


OVERRIDE_KEYS = ("image", "container_security_context", "pod_security_context", "pod_labels", "pod_annotations",
                 "deployment_labels", "deployment_annotations", "extra_env", "otel_service_name_prefix")
"""What a component's overrides (mastodon_<component>_overrides, a sidekiq worker's ``overrides``) may set."""


def overrides(component, worker=None):
    """The overrides of one component, a worker's own over its component's, every key present
    (dicts empty, the rest None); labels, annotations and env are merged key by key."""
    component, worker = component or {}, worker or {}
    out = {}
    for key in OVERRIDE_KEYS:
        if key in ("pod_labels", "pod_annotations", "deployment_labels", "deployment_annotations", "extra_env"):
            out[key] = dict(component.get(key) or {}, **(worker.get(key) or {}))
        else:
            out[key] = worker.get(key) if worker.get(key) not in (None, "") else component.get(key) or None
    return out


def container(spec, s):
    """One container from ``spec``: name, image, command, env (per-process values), resources,
    env_name (the ConfigMap and Secret of its environment), with_volumes, and optional ports and
    probes, which are kept as given. ``spec['overrides']`` (see overrides()) may replace the image
    and the securityContext and add env, which wins over the rest."""
    ov = spec.get("overrides") or {}
    env = dict(spec.get("env") or {})
    if ov.get("otel_service_name_prefix"):
        env["OTEL_SERVICE_NAME_PREFIX"] = ov["otel_service_name_prefix"]
    env.update(ov.get("extra_env") or {})
    out = dict(name=spec["name"], image=ov.get("image") or spec["image"], imagePullPolicy=s["image_pull_policy"],
               command=list(spec["command"]),
               envFrom=[dict(configMapRef=dict(name=spec["env_name"])), dict(secretRef=dict(name=spec["env_name"]))]
               + list(s.get("extra_env_from") or []),
               env=env_list(s["env"], env), securityContext=ov.get("container_security_context") or s["container_security_context"])
    if spec.get("resources"):
        out["resources"] = spec["resources"]
    mounts = []
    if spec.get("with_volumes") and _uses_pvc(s):
        mounts.append(dict(name="system", mountPath="/opt/mastodon/public/system"))
    if spec.get("with_volumes") and _uses_es_ca(s):
        mounts.append(dict(name="es-ca", mountPath=ES_CA_DIR, readOnly=True))
    mounts += list(s.get("extra_volume_mounts") or [])
    if mounts:
        out["volumeMounts"] = mounts
    for key in ("ports", "startupProbe", "readinessProbe", "livenessProbe"):
        if spec.get(key):
            out[key] = spec[key]
    return out


def pod_spec(spec, s):
    """The pod spec around ``spec['containers']``, with the scheduling fields that are set
    (node_selector, tolerations, affinity, spread), the volumes when ``with_volumes``, and
    ``extra`` (restartPolicy of a Job)."""
    ov = spec.get("overrides") or {}
    out = dict(serviceAccountName=s["service_account_name"], automountServiceAccountToken=False, enableServiceLinks=False,
               securityContext=ov.get("pod_security_context") or s["pod_security_context"], containers=spec["containers"])
    out.update(spec.get("extra") or {})
    if s.get("image_pull_secrets"):
        out["imagePullSecrets"] = [dict(name=name) for name in s["image_pull_secrets"]]
    for key, field in (("node_selector", "nodeSelector"), ("tolerations", "tolerations"), ("affinity", "affinity"),
                       ("spread", "topologySpreadConstraints")):
        if spec.get(key):
            out[field] = spec[key]
    volumes = []
    if spec.get("with_volumes") and _uses_pvc(s):
        volumes.append(dict(name="system", persistentVolumeClaim=dict(claimName=s["system_pvc_name"])))
    if spec.get("with_volumes") and _uses_es_ca(s):
        ca = es_ca_secret(s)
        volumes.append(dict(name="es-ca", secret=dict(secretName=ca["name"], defaultMode=420, items=[dict(key=ca["key"], path="ca.crt")])))
    volumes += list(s.get("extra_volumes") or [])
    if volumes:
        out["volumes"] = volumes
    if s.get("host_aliases"):
        out["hostAliases"] = s["host_aliases"]
    return out


# -- egress to the configured endpoints ------------------------------------------------------

# Which endpoints each component talks to (the Jobs run migrations, tootctl and the media clean-up).
ENDPOINT_USERS = dict(db=("web", "streaming", "sidekiq", "jobs"), redis=("web", "streaming", "sidekiq", "jobs"),
                      s3=("web", "sidekiq", "jobs"), search=("web", "sidekiq", "jobs"), smtp=("web", "sidekiq"))


def _host_port(url, default_port):
    match = re.match(r"^(?:[a-z][a-z0-9+.-]*://)?(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?", str(url or ""), re.I)
    if not match:
        return None, None
    host = match.group(1).strip("[]")
    port = int(match.group(2)) if match.group(2) else default_port
    return host, port


def _endpoints(s):
    """(kind, host, port) of every endpoint outside the instance's own in-cluster services."""
    out = []
    db = s.get("db_connection") or {}
    if db.get("mode") != "incluster":
        for host, port in ((db.get("host"), db.get("port")), (db.get("direct_host"), db.get("direct_port"))):
            if host:
                out.append(("db", host, int(port or 5432)))
    replica = s.get("db_replica") or {}
    if replica.get("host"):
        out.append(("db", replica["host"], int(replica.get("port") or db.get("port") or 5432)))
    redis = s.get("redis_connection") or {}
    for conn in (redis if redis.get("mode") != "incluster" else {}, redis.get("cache") or {}, s.get("redis_sidekiq_connection") or {}):
        if conn.get("host") and conn.get("mode") != "incluster":
            out.append(("redis", conn["host"], int(conn.get("port") or 6379)))
    s3 = s.get("s3_connection") or {}
    if as_bool(s.get("s3_enabled")) and s3.get("mode") != "incluster" and s3.get("endpoint"):
        scheme = str(s3["endpoint"]).split(":", 1)[0].lower()
        host, port = _host_port(s3["endpoint"], 80 if scheme == "http" else 443)
        if host:
            out.append(("s3", host, port))
    es = s.get("elasticsearch_connection") or {}
    if as_bool(es.get("enabled", False)) and es.get("mode") != "incluster" and es.get("host"):
        host, dummy = _host_port(es["host"], None)
        out.append(("search", host, int(es.get("port") or 9200)))
    if s.get("smtp_server"):
        out.append(("smtp", s["smtp_server"], int(s.get("smtp_port") or 587)))
    return out


def _peer(host, port, everywhere):
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        to = [dict(ipBlock=dict(cidr="%s/%d" % (address, address.max_prefixlen)))]
    else:
        parts = host.rstrip(".").split(".")
        if len(parts) >= 3 and parts[2] == "svc":
            # a Service of another namespace: <service>.<namespace>.svc[.cluster.local]
            to = [dict(namespaceSelector=dict(matchLabels={"kubernetes.io/metadata.name": parts[1]}))]
        else:
            # A NetworkPolicy cannot name a host: the endpoint's port, anywhere.
            to = everywhere
    return dict(to=to, ports=[dict(protocol="TCP", port=port)])


def endpoint_egress(s, component):
    """The egress rules ``component`` needs for the endpoints outside the instance (an external
    database, Redis, S3, search or SMTP server), one per distinct destination: an IP address is
    allowed alone, a Service of another namespace by its namespace, and a host name (which a
    NetworkPolicy cannot name) as the endpoint's port to any address."""
    everywhere = [dict(ipBlock=dict(cidr="0.0.0.0/0")), dict(ipBlock=dict(cidr="::/0"))]
    rules = []
    for kind, host, port in _endpoints(s):
        if component not in ENDPOINT_USERS[kind]:
            continue
        rule = _peer(host, port, everywhere)
        if rule not in rules:
            rules.append(rule)
    return rules


# -- settings of Mastodon 4.4 to 4.6, Redis users and Sentinel, CDN --------------------------

REDIS_PREFIXES = (("", "redis"), ("SIDEKIQ_", "redis_sidekiq"), ("CACHE_", "redis_cache"))


def _text(value):
    return "" if value is None else str(value).strip()


def _flag(value):
    return "true" if as_bool(value) else "false"


def feature_env(s):
    """The ConfigMap entries of the optional settings, from the role's variables (``s``, keys
    without the ``mastodon_`` prefix); only what is set appears."""
    env = {}
    if _text(s.get("cdn_host")):
        env["CDN_HOST"] = _text(s["cdn_host"])
    hosts = [_text(h) for h in s.get("extra_media_hosts") or [] if _text(h)]
    if hosts:
        env["EXTRA_MEDIA_HOSTS"] = ",".join(hosts)
    features = [_text(f) for f in s.get("experimental_features") or [] if _text(f)]
    if features:
        env["EXPERIMENTAL_FEATURES"] = ",".join(features)
    if _text(s.get("libre_translate_endpoint")):
        env["LIBRE_TRANSLATE_ENDPOINT"] = _text(s["libre_translate_endpoint"])
    if s.get("db_replica"):
        if s.get("db_replica_prepared_statements") is not None:
            env["REPLICA_PREPARED_STATEMENTS"] = _flag(s["db_replica_prepared_statements"])
        env["REPLICA_DB_TASKS"] = _flag(s.get("db_replica_db_tasks"))
    if as_bool(s.get("query_log_tags_enabled")):
        env["QUERY_LOG_TAGS_ENABLED"] = "true"
    for prefix, key in REDIS_PREFIXES:
        conn = s.get(key + "_connection") or {}
        if _text(conn.get("user")):
            env[prefix + "REDIS_USER"] = _text(conn["user"])
        master, sentinels = _text(s.get(key + "_sentinel_master")), [_text(x) for x in s.get(key + "_sentinels") or [] if _text(x)]
        if master and sentinels:
            env[prefix + "REDIS_SENTINEL_MASTER"] = master
            env[prefix + "REDIS_SENTINELS"] = ",".join(sentinels)
    return env


# -- the asset-upload Job ------------------------------------------------------------------

ASSET_SCRIPT = "/opt/asset-upload/asset-upload.sh"


def asset_upload_pod(spec, s):
    """The asset-upload Job's pod (roles/mastodon/files/asset-upload.sh): the init container, from
    the Mastodon image, copies the compiled assets into an emptyDir (``collect``); the container,
    from the uploader image (rclone), copies them into the bucket (``upload``). ``spec``: image,
    uploader_image, config_map (the script's), endpoint, region, bucket, credentials ({name,
    access_key, secret_key}), acl, cache_control, resources, and optional node_selector,
    tolerations, affinity and overrides (the Jobs')."""
    ov = spec.get("overrides") or {}
    security = ov.get("container_security_context") or s["container_security_context"]
    mounts = [dict(name="assets", mountPath="/assets"), dict(name="script", mountPath="/opt/asset-upload", readOnly=True)]
    collect = dict(name="collect", image=ov.get("image") or spec["image"], imagePullPolicy=s["image_pull_policy"],
                   command=["/bin/sh", ASSET_SCRIPT, "collect", "/opt/mastodon/public", "/assets"],
                   securityContext=security, volumeMounts=mounts)
    creds = spec["credentials"]
    env = [dict(name=name, valueFrom=dict(secretKeyRef=dict(name=creds["name"], key=creds[key])))
           for name, key in (("AWS_ACCESS_KEY_ID", "access_key"), ("AWS_SECRET_ACCESS_KEY", "secret_key"))]
    plain = dict(S3_ENDPOINT=spec["endpoint"], S3_REGION=spec.get("region") or "us-east-1", S3_BUCKET=spec["bucket"],
                 S3_ACL=spec.get("acl") or "", CACHE_CONTROL=spec.get("cache_control") or "", HOME="/tmp", TMPDIR="/tmp")
    env += [dict(name=name, value=str_env(value)) for name, value in plain.items() if value != ""]
    upload = dict(name="upload", image=spec["uploader_image"], imagePullPolicy=s["image_pull_policy"],
                  command=["/bin/sh", ASSET_SCRIPT, "upload", "/assets"], env=env, securityContext=security,
                  volumeMounts=mounts + [dict(name="tmp", mountPath="/tmp")])
    if spec.get("resources"):
        collect["resources"] = upload["resources"] = spec["resources"]
    pod = pod_spec(dict(containers=[upload], node_selector=spec.get("node_selector"), tolerations=spec.get("tolerations"),
                        affinity=spec.get("affinity"), overrides=ov,
                        extra=dict(restartPolicy="Never", initContainers=[collect])), s)
    # only its own volumes: the operator's extra volumes are Mastodon's (a PVC would pin the pod)
    pod["volumes"] = [dict(name="assets", emptyDir={}), dict(name="tmp", emptyDir={}),
                      dict(name="script", configMap=dict(name=spec["config_map"], defaultMode=0o555))]
    return pod


# -- the Ingress: its annotations and the controller presets -------------------------------

INGRESS_PRESETS = ("none", "ingress-nginx", "traefik")
TRAEFIK_MIDDLEWARE_API = "traefik.io/v1alpha1"
# Streaming keeps its connections open (WebSocket, server-sent events): ingress-nginx closes an
# idle proxied connection after 60 s unless told otherwise.
NGINX_STREAMING_TIMEOUT = "3600"


def traefik_middlewares(s):
    """The Traefik Middleware objects of the traefik preset (``s``: instance, ingress_preset,
    labels): gzip/brotli compression of web's responses, never of streaming's server-sent events
    (a compressed event stream is held back in the compressor's buffer)."""
    if s.get("ingress_preset") != "traefik":
        return []
    return [dict(apiVersion=TRAEFIK_MIDDLEWARE_API, kind="Middleware",
                 metadata=dict(name="%s-mastodon-compress" % s["instance"], labels=dict(s.get("labels") or {})),
                 spec=dict(compress=dict(excludedContentTypes=["text/event-stream"])))]


def ingress_annotations(s):
    """The Ingress's annotations: the request body limit (ingress-nginx's proxy-body-size), the
    cert-manager issuer, the preset's (``ingress_preset``), then the operator's own
    (``annotations``), which win. ``s``: instance, namespace, ingress_preset, body_size,
    cluster_issuer, issuer, annotations."""
    out = {}
    preset = s.get("ingress_preset") or "none"
    if s.get("body_size"):
        out["nginx.ingress.kubernetes.io/proxy-body-size"] = str(s["body_size"])
    if s.get("cluster_issuer"):
        out["cert-manager.io/cluster-issuer"] = s["cluster_issuer"]
    if s.get("issuer"):
        out["cert-manager.io/issuer"] = s["issuer"]
    if preset == "ingress-nginx":
        for key in ("proxy-read-timeout", "proxy-send-timeout"):
            out["nginx.ingress.kubernetes.io/" + key] = NGINX_STREAMING_TIMEOUT
    elif preset == "traefik":
        out["traefik.ingress.kubernetes.io/router.middlewares"] = ",".join(
            "%s-%s@kubernetescrd" % (s["namespace"], m["metadata"]["name"]) for m in traefik_middlewares(s))
    out.update(s.get("annotations") or {})
    return out


# -- the PodMonitor ------------------------------------------------------------------------


def pod_monitor(s):
    """The PodMonitor of the Prometheus Operator (``s``: instance, enabled, labels, interval),
    or None: web's exporter and sidekiq on their port named metrics, streaming's /metrics on its
    port named streaming (each endpoint matches the pods that have that port)."""
    if not as_bool(s.get("enabled")):
        return None
    instance = s["instance"]
    endpoints = [dict(port=port, path="/metrics", interval=s.get("interval") or "30s") for port in ("metrics", "streaming")]
    return dict(apiVersion="monitoring.coreos.com/v1", kind="PodMonitor",
                metadata=dict(name="%s-mastodon" % instance, labels=dict(s.get("labels") or {})),
                spec=dict(selector=dict(matchLabels={"app.kubernetes.io/instance": instance},
                                        matchExpressions=[{"key": "app.kubernetes.io/name", "operator": "In",
                                                           "values": ["web", "sidekiq", "streaming"]}]),
                          podMetricsEndpoints=endpoints))
