# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks preflight runs on the complete, merged input of every role, before any change.

Pure functions over plain data, so pytest covers them without Ansible: the action plugin
``preflight_inputs`` merges each role's defaults with the inventory, templates the result and
hands it here as one dict ``v`` (variable name -> value).

Every problem is one line: ``<variable>: <what is wrong>; <the fix>``. No line ever carries the
value of a variable that may hold a secret (see ``is_secret_name``).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ansible_collections.fediverse.mastodon.plugins.module_utils.instance_record import parse_version
from ansible_collections.fediverse.mastodon.plugins.plugin_utils import quantities

DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
INSTANCE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
IMAGE_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
SECRET_NAME_RE = re.compile(r"(password|passwd|secret(?!_name|_refs$)|_key$|_keys$|token|kubeconfig|otp)", re.I)

# The longest suffixes the mastodon role appends to the instance name (Job names carry the version).
JOB_SUFFIXES = ("-db-migrate-post-", "-db-migrate-pre-", "-search-deploy-", "-db-prepare-")
CRONJOB_SUFFIXES = ("-media-prune-profiles", "-media-remove-orphans", "-preview-cards-remove")
MODES = ("incluster", "external")


def version_slug(version):
    """The version as the mastodon role puts it in Job names: v4.6.3 -> v4-6-3."""
    return re.sub(r"^-|-$", "", re.sub(r"[^a-z0-9]+", "-", str(version).lower()))


def is_secret_name(name):
    """True for variables whose value must never be printed (passwords, keys, tokens, kubeconfigs)."""
    return bool(SECRET_NAME_RE.search(name or ""))


def as_bool(value):
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).strip().lower() in ("1", "true", "yes", "on", "y")


def _show(value):
    return "'%s'" % (value,)


def min_server_versions(mastodon_version):
    """(PostgreSQL, Redis) minimum versions for a Mastodon version: 14 and 7.0 from 4.5 on."""
    parsed = parse_version(mastodon_version)
    if parsed is not None and parsed[:2] < (4, 5):
        return "13", "6.2"
    return "14", "7.0"


def _image_major_minor(image):
    """(major, minor) of an image tag such as postgres:17.7-alpine; None when the tag has no number."""
    if not image or ":" not in str(image).rsplit("/", 1)[-1]:
        return None
    tag = str(image).rsplit(":", 1)[1]
    m = re.match(r"^v?(\d+)(?:\.(\d+))?", tag)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2) or 0)


def _version_tuple(text):
    return tuple(int(p) for p in re.findall(r"\d+", str(text))[:2]) + (0,) * (2 - len(re.findall(r"\d+", str(text))[:2]))


def check_identity(v):
    p = []
    local = v.get("mastodon_local_domain") or v.get("mastodon_domain")
    if not local:
        p.append("mastodon_local_domain: not set; give the domain of the instance, the one in user handles (like social.example.org)")
    elif not DOMAIN_RE.match(str(local)):
        p.append("mastodon_local_domain: %s is not a domain name; use lowercase labels of letters, digits and hyphens "
                 "separated by dots, like social.example.org" % _show(local))
    web = v.get("mastodon_web_domain")
    if web and not DOMAIN_RE.match(str(web)):
        p.append("mastodon_web_domain: %s is not a domain name; use one like www.example.org, or leave it null" % _show(web))
    for d in v.get("mastodon_alternate_domains") or []:
        if not DOMAIN_RE.match(str(d)):
            p.append("mastodon_alternate_domains: %s is not a domain name; list only domains like alt.example.org" % _show(d))
    instance = v.get("mastodon_instance")
    if not instance or not INSTANCE_RE.match(str(instance)):
        p.append("mastodon_instance: %s must be a DNS label of at most 40 characters (lowercase letters, digits, '-'); "
                 "it defaults to the inventory host name, so rename the host or set mastodon_instance" % _show(instance))
    ns = v.get("mastodon_namespace")
    if not ns or not LABEL_RE.match(str(ns)):
        p.append("mastodon_namespace: %s is not a valid namespace name; use a DNS label (lowercase letters, digits, '-', "
                 "at most 63 characters)" % _show(ns))
    return p


def check_version(v):
    p = []
    version = v.get("mastodon_version")
    guard = as_bool(v.get("mastodon_version_guard", True))
    if not version:
        return ["mastodon_version: not set; give the Mastodon release to run, like v4.6.3"]
    version = str(version)
    if guard:
        if parse_version(version) is not None and not version.startswith("v"):
            p.append("mastodon_version: %s has no leading 'v'; Mastodon's image tags look like v4.6.3, so write v%s"
                     % (_show(version), version))
        elif parse_version(version) is None:
            if re.match(r"^\d+\.\d+\.\d+$", version):
                p.append("mastodon_version: %s has no leading 'v'; Mastodon's image tags look like v4.6.3, so write v%s"
                         % (_show(version), version))
            elif "+" in version:
                p.append("mastodon_version: %s carries build metadata ('+...'), which is not an image tag; "
                         "use the release tag, like v4.6.3" % _show(version))
            else:
                p.append("mastodon_version: %s does not look like v4.6.3; give a release tag, or set "
                         "mastodon_version_guard=false to run a custom image tag" % _show(version))
    elif not IMAGE_TAG_RE.match(version):
        p.append("mastodon_version: %s is not a valid image tag (letters, digits, '.', '_', '-', at most 128 characters)"
                 % _show(version))
    instance = str(v.get("mastodon_instance") or "")
    if instance and IMAGE_TAG_RE.match(version):
        slug = version_slug(version)
        longest = max(len(instance + s + slug) for s in JOB_SUFFIXES)
        if longest > 63:
            p.append("mastodon_instance: the Job name %s%s%s would have %d characters, over Kubernetes' 63; "
                     "shorten mastodon_instance (or the version tag)" % (instance, JOB_SUFFIXES[0], slug, longest))
        cron = max(len(instance + s) for s in CRONJOB_SUFFIXES)
        if cron > 52:
            p.append("mastodon_instance: the CronJob names would have %d characters, over Kubernetes' 52; "
                     "shorten mastodon_instance" % cron)
    return p


def check_services(v):
    p = []
    for svc in ("postgresql", "redis", "elasticsearch", "minio"):
        mode = v.get(svc + "_mode", "incluster")
        if mode not in MODES:
            p.append("%s_mode: %s must be incluster or external" % (svc, _show(mode)))
    if v.get("postgresql_mode") == "external" and not v.get("postgresql_external_host"):
        p.append("postgresql_external_host: required when postgresql_mode is external; give the database server's host name")
    if v.get("redis_mode") == "external" and not v.get("redis_external_host"):
        p.append("redis_external_host: required when redis_mode is external; give the Redis server's host name")
    search = as_bool(v.get("elasticsearch_enabled", True))
    if search and v.get("elasticsearch_mode") == "external" and not v.get("elasticsearch_external_host"):
        p.append("elasticsearch_external_host: required when elasticsearch_mode is external (or set elasticsearch_enabled=false)")
    if not search and as_bool(v.get("mastodon_search_reindex")):
        p.append("mastodon_search_reindex: true, but search is disabled (elasticsearch_enabled=false); "
                 "enable search, or drop mastodon_search_reindex")
    s3 = as_bool(v.get("mastodon_s3_enabled", True))
    if s3 and v.get("minio_mode") == "external":
        endpoint = v.get("minio_external_endpoint")
        if not endpoint:
            p.append("minio_external_endpoint: required when minio_mode is external (the S3 URL, like https://s3.eu-central-1.amazonaws.com)")
        else:
            p.extend(check_s3_endpoint("minio_external_endpoint", endpoint))
    return p


def check_s3_endpoint(name, endpoint):
    """An S3 endpoint is scheme://host[:port] and nothing else: the bucket is never part of it."""
    try:
        parts = urlsplit(str(endpoint))
        if parts.port == 0:  # reading .port also raises ValueError for a port out of range
            raise ValueError("port 0")
    except ValueError:
        return ["%s: %s is not a URL; give scheme, host and port only, like https://s3.example.org" % (name, _show(endpoint))]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ["%s: %s must start with https:// (or http://) and name a host, like https://s3.example.org" % (name, _show(endpoint))]
    if parts.username or parts.password:
        return ["%s: must not carry credentials in the URL; put the keys in the vault (preflight_s3_access_key, "
                "preflight_s3_secret_key) or in minio_external_admin_secret" % name]
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return ["%s: %s has a path or query (%s); give only scheme, host and port (the bucket is mastodon_s3_bucket), "
                "like %s://%s" % (name, _show(endpoint), parts.path + ("?" + parts.query if parts.query else ""),
                                  parts.scheme, parts.netloc)]
    return []


def check_server_versions(v):
    """Mastodon 4.5+ needs PostgreSQL 14 and Redis 7.0: the in-cluster images must meet that too."""
    p = []
    pg_min, redis_min = min_server_versions(v.get("mastodon_version"))
    if v.get("postgresql_mode", "incluster") == "incluster":
        got = _image_major_minor(v.get("postgresql_image"))
        if got is not None and got < _version_tuple(pg_min):
            p.append("postgresql_image: %s is PostgreSQL %d, but Mastodon %s needs PostgreSQL %s or newer; "
                     "use a newer image, like postgres:17.7-alpine"
                     % (_show(v.get("postgresql_image")), got[0], v.get("mastodon_version"), pg_min))
    if v.get("redis_mode", "incluster") == "incluster":
        got = _image_major_minor(v.get("redis_image"))
        if got is not None and got < _version_tuple(redis_min):
            p.append("redis_image: %s is Redis %d.%d, but Mastodon %s needs Redis %s or newer; use a newer image, "
                     "like redis:7.4.10-alpine" % (_show(v.get("redis_image")), got[0], got[1], v.get("mastodon_version"), redis_min))
    for name, floor in (("preflight_postgresql_min_version", pg_min), ("preflight_redis_min_version", redis_min)):
        given = v.get(name)
        if given and _version_tuple(given) < _version_tuple(floor):
            p.append("%s: %s is below what Mastodon %s needs (%s); raise it to %s or remove it"
                     % (name, _show(given), v.get("mastodon_version"), floor, floor))
    return p


def worker_pods(worker):
    """Sidekiq pods of one worker at full scale: its replicas, or its HPA maximum."""
    hpa = worker.get("hpa") or {}
    if as_bool(hpa.get("enabled")):
        return int(hpa.get("max_replicas") or 4)
    return int(worker.get("replicas") if worker.get("replicas") is not None else 1)


def scheduler_count(workers):
    """How many sidekiq processes serve the scheduler queue (replicas, or the HPA maximum), and which."""
    count, detail = 0, []
    for w in workers or []:
        if not isinstance(w, dict):
            continue
        pods = worker_pods(w)
        queues = [str(q).split(",", maxsplit=1)[0] for q in (w.get("queues") or [])]
        if "scheduler" in queues:
            count += pods
            detail.append("%s (%d)" % (w.get("name", "?"), pods))
    return count, detail


def check_sidekiq(v):
    workers = v.get("mastodon_sidekiq_workers")
    if workers is None:
        return []
    p = []
    count, detail = scheduler_count(workers)
    if count != 1:
        p.append("mastodon_sidekiq_workers: exactly one sidekiq process must serve the scheduler queue (replicas and HPA "
                 "maximum counted), or cron jobs run twice or never; found %d: %s. Put 'scheduler' in the queues of one "
                 "worker with replicas 1 and no HPA" % (count, ", ".join(detail) or "none"))
    names = [w.get("name") for w in workers if isinstance(w, dict)]
    if not names:
        p.append("mastodon_sidekiq_workers: needs at least one worker")
    bad = [n for n in names if not n or not LABEL_RE.match(str(n))]
    if bad:
        p.append("mastodon_sidekiq_workers: worker names %s must be DNS labels (lowercase letters, digits, '-'); "
                 "they become Deployment names" % ", ".join(_show(n) for n in bad))
    dup = sorted(set(n for n in names if names.count(n) > 1 and n))
    if dup:
        p.append("mastodon_sidekiq_workers: worker names must be unique; %s appear more than once" % ", ".join(dup))
    return p


def check_smtp(v):
    p = []
    refs = v.get("mastodon_secret_refs") or {}
    if (v.get("mastodon_smtp_server") and v.get("mastodon_smtp_login") and not v.get("mastodon_smtp_password")
            and "SMTP_PASSWORD" not in refs):
        p.append("mastodon_smtp_password: not set although mastodon_smtp_login is; put it in the vault, or reference a "
                 "Secret in mastodon_secret_refs.SMTP_PASSWORD")
    return p


def check_cluster_access(v):
    p = []
    for name in ("mastodon_k8s_kubeconfig", "preflight_kubeconfig", "postgresql_kubeconfig", "redis_kubeconfig",
                 "elasticsearch_kubeconfig", "minio_kubeconfig"):
        value = v.get(name)
        if value is not None and not isinstance(value, str):
            p.append("%s: must be the path of a kubeconfig file; an inline kubeconfig would be copied into facts and "
                     "logs. Write it to a file (mode 0600) and give its path" % name)
    return p


def check_routing(v):
    """What the cluster must offer for the routing chosen: returned as requirements for cluster_check."""
    req = []
    routing = v.get("mastodon_routing", "ingress")
    if routing == "httproute":
        req.append({"api_version": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "name": None,
                    "variables": ["mastodon_routing"],
                    "fix": "install the Gateway API CRDs (and a Gateway), or set mastodon_routing=ingress"})
    elif routing == "ingress":
        cls = v.get("mastodon_ingress_class_name")
        if cls:
            req.append({"api_version": "networking.k8s.io/v1", "kind": "IngressClass", "name": cls,
                        "variables": ["mastodon_ingress_class_name"],
                        "fix": "name an IngressClass of the cluster (kubectl get ingressclass), or null for the default"})
        issuer = v.get("mastodon_ingress_cluster_issuer")
        if issuer:
            req.append({"api_version": "cert-manager.io/v1", "kind": "ClusterIssuer", "name": issuer,
                        "variables": ["mastodon_ingress_cluster_issuer"],
                        "fix": "install cert-manager and create that ClusterIssuer, or set mastodon_ingress_cluster_issuer=null"})
        if v.get("mastodon_ingress_issuer"):
            req.append({"api_version": "cert-manager.io/v1", "kind": "Issuer", "name": None,
                        "variables": ["mastodon_ingress_issuer"],
                        "fix": "install cert-manager, or set mastodon_ingress_issuer=null"})
    return req


def check_shared_database(me, others):
    """Two instances on one external database server must not share the role or the database.

    ``me`` and each of ``others`` are dicts: instance, mode, host, port, db_user, db_name.
    """
    p = []
    if me.get("mode") != "external" or not me.get("host"):
        return p

    def where(entry):
        try:
            return str(entry.get("host")).lower(), int(entry.get("port") or 5432)
        except (TypeError, ValueError):  # a port that is not a number is reported for its own instance
            return str(entry.get("host")).lower(), entry.get("port")

    for o in others:
        if o.get("mode") != "external" or o.get("instance") == me.get("instance"):
            continue
        if where(o) != where(me):
            continue
        if o.get("db_user") == me.get("db_user"):
            p.append("mastodon_db_user: instance %s uses the role %s on %s:%s, and so does instance %s; each instance "
                     "needs its own role there: set mastodon_db_user (and mastodon_db_name) per instance in host_vars"
                     % (me["instance"], _show(me.get("db_user")), me["host"], me.get("port") or 5432, o.get("instance")))
        if o.get("db_name") == me.get("db_name"):
            p.append("mastodon_db_name: instance %s uses the database %s on %s:%s, and so does instance %s; set "
                     "mastodon_db_name per instance in host_vars"
                     % (me["instance"], _show(me.get("db_name")), me["host"], me.get("port") or 5432, o.get("instance")))
    return p


RECORD_VARIABLES = dict(version="mastodon_version", local_domain="mastodon_local_domain",
                        db_host="postgresql_external_host", db_name="mastodon_db_name", db_user="mastodon_db_user",
                        s3_bucket="mastodon_s3_bucket", s3_endpoint="minio_external_endpoint")


def incluster_s3_identity(server):
    """The record's s3_endpoint of an in-cluster S3 server."""
    return "incluster" if (server or "seaweedfs") == "minio" else "incluster:%s" % (server or "seaweedfs")


def record_identity(v):
    """What the durable instance record holds about where the instance lives (no secret in it).

    In-cluster services are named ``incluster``: their address follows the instance name, and a
    move between in-cluster and external is exactly the change the record must catch. The
    in-cluster S3 server is named too (``incluster:seaweedfs``), because another server holds none
    of the media; MinIO keeps the plain ``incluster`` that records made before SeaweedFS hold."""
    external_db = v.get("postgresql_mode") == "external"
    s3 = as_bool(v.get("mastodon_s3_enabled", True))
    external_s3 = v.get("minio_mode") == "external"
    return dict(
        local_domain=v.get("mastodon_local_domain") or v.get("mastodon_domain"),
        db_host=(v.get("postgresql_external_direct_host") or v.get("postgresql_external_host")) if external_db else "incluster",
        db_name=v.get("provision_db_name") or v.get("mastodon_db_name"),
        db_user=v.get("provision_db_user") or v.get("mastodon_db_user"),
        s3_bucket=(v.get("provision_s3_bucket") or v.get("mastodon_s3_bucket")) if s3 else None,
        s3_endpoint=(v.get("minio_external_endpoint") if external_s3 else incluster_s3_identity(v.get("minio_s3_server")))
        if s3 else None,
    )


def check_quantities(v):
    """CPU, memory and storage sizes of the in-cluster services, as the templates will write them."""
    prefixes = ("postgresql_", "redis_", "elasticsearch_", "minio_")

    def sized(name):
        return "_cpu_" in name or "_memory_" in name or name.endswith(("_storage_size", "_shm_size"))
    return quantities.problems(dict((k, val) for k, val in v.items() if k.startswith(prefixes) and sized(k)))


CHECKS = (check_identity, check_version, check_services, check_server_versions, check_sidekiq, check_smtp,
          check_cluster_access, check_quantities)


def _stripped(value):
    return "" if value is None else str(value).strip()


def check_features(v):
    """The optional Mastodon settings: Redis Sentinel, CDN and translation URLs, experimental features."""
    p = []
    for prefix, key in (("", "redis"), ("SIDEKIQ_", "redis_sidekiq"), ("CACHE_", "redis_cache")):
        master, sentinels = _stripped(v.get("mastodon_%s_sentinel_master" % key)), v.get("mastodon_%s_sentinels" % key) or []
        if bool(master) != bool(sentinels):
            p.append("mastodon_%s_sentinel_master: Redis Sentinel needs both the master's name and at least one sentinel "
                     "(mastodon_%s_sentinels, host:port), or neither" % (key, key))
        for sentinel in sentinels:
            if not re.match(r"^[A-Za-z0-9.-]+(:\d+)?$", _stripped(sentinel)):
                p.append("mastodon_%s_sentinels: %r is not host or host:port" % (key, sentinel))
        tls = v.get("redis_external_tls") if key == "redis" and v.get("redis_mode") == "external" else None
        if master and as_bool(tls):
            p.append("mastodon_%s_sentinel_master: Mastodon reaches a TLS Redis by %sREDIS_URL, which ignores Sentinel; "
                     "use one or the other" % (key, prefix))
    for name in ("mastodon_cdn_host", "mastodon_libre_translate_endpoint"):
        value = _stripped(v.get(name))
        if value and not re.match(r"^https?://[^/\s]+", value):
            p.append("%s: %r must be a URL like https://host" % (name, value))
    features = [_stripped(f) for f in v.get("mastodon_experimental_features") or []]
    bad = [f for f in features if not re.match(r"^[a-z0-9_]+$", f)]
    if bad:
        p.append("mastodon_experimental_features: %s: a feature name is lowercase letters, digits and _" % ", ".join(bad))
    if "fasp" in features and v.get("mastodon_sidekiq_workers") is not None:
        queues = set()
        for worker in v.get("mastodon_sidekiq_workers") or []:
            queues.update(str(q).split(",", maxsplit=1)[0] for q in worker.get("queues") or [])
        if "fasp" not in queues:
            p.append("mastodon_experimental_features: fasp needs a sidekiq worker on the fasp queue; add fasp to a worker's "
                     "queues in mastodon_sidekiq_workers")
    return p


OVERRIDE_KEYS = ("image", "container_security_context", "pod_security_context", "pod_labels", "pod_annotations",
                 "deployment_labels", "deployment_annotations", "extra_env", "otel_service_name_prefix")
RESERVED_LABEL_PREFIXES = ("app.kubernetes.io/", "mastodon.fediverse/")


def check_overrides(v):
    """mastodon_<component>_overrides and the workers' ``overrides``: known keys, the right shapes,
    no label the role's selectors use."""
    p = []
    places = [("mastodon_%s_overrides" % c, v.get("mastodon_%s_overrides" % c)) for c in ("web", "streaming", "sidekiq", "jobs")]
    places += [("mastodon_sidekiq_workers[%s].overrides" % w.get("name"), w.get("overrides"))
               for w in v.get("mastodon_sidekiq_workers") or [] if isinstance(w, dict) and w.get("overrides") is not None]
    for name, ov in places:
        if ov in (None, {}):
            continue
        if not isinstance(ov, dict):
            p.append("%s: must be a dict of %s" % (name, ", ".join(OVERRIDE_KEYS)))
            continue
        unknown = sorted(set(ov) - set(OVERRIDE_KEYS))
        if unknown:
            p.append("%s: unknown key %s; the keys are %s" % (name, ", ".join(unknown), ", ".join(OVERRIDE_KEYS)))
        for key in ("container_security_context", "pod_security_context", "pod_labels", "pod_annotations",
                    "deployment_labels", "deployment_annotations", "extra_env"):
            if ov.get(key) is not None and not isinstance(ov.get(key), dict):
                p.append("%s: %s must be a dict" % (name, key))
        image = ov.get("image")
        if image is not None and not re.match(r"^[a-z0-9][a-z0-9._/:-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*|@sha256:[0-9a-f]{64})$", str(image)):
            p.append("%s: image %r must be repository:tag or repository@sha256:digest" % (name, image))
        reserved = sorted(k for k in (ov.get("pod_labels") or {}) if str(k).startswith(RESERVED_LABEL_PREFIXES))
        if reserved:
            p.append("%s: pod_labels may not set %s (the role's selectors use them)" % (name, ", ".join(reserved)))
    return p


CHECKS = CHECKS + (check_features, check_overrides)


def semantic_problems(v):
    """Every problem of the merged input ``v`` that argument specs cannot express, in a stable order.

    A check that trips over a value of an unexpected shape reports that as a problem of its own
    instead of stopping the others (the argument specs have named the variable already)."""
    out = []
    for check in CHECKS:
        try:
            out.extend(check(v))
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            out.append("preflight: the check %s could not run on these values (%s); fix the variables named above"
                       % (check.__name__, exc))
    return out


def _a(word):
    return ("an " if str(word)[:1] in "aeiou" else "a ") + str(word)


def _plain_spec_message(name, message):
    """Ansible's validator wording, shortened to what an operator needs."""
    text = re.sub(r"\s+", " ", str(message)).strip()
    text = re.sub(r"<class '[^']*?(?:Tagged)?(\w+)'>", lambda m: m.group(1).replace("_Ansible", "").lower(), text)
    m = re.match(r"^argument '([^']+)' is of type (\w+) and we were unable to convert to (\w+)", text)
    if m:
        return "is %s, not %s" % (_a(m.group(2)), _a(m.group(3)))
    m = re.match(r"^Elements value for option '([^']+)' is of type (\w+) and we were unable to convert to (\w+)", text)
    if m:
        return "has an element that is %s, not %s" % (_a(m.group(2)), _a(m.group(3)))
    m = re.match(r"^value of (\S+) must be one of: (.*), got: (.*?)( found in .*)?$", text)
    if m:
        return "is %s, not one of %s%s" % (_show(m.group(3)), m.group(2), m.group(4) or "")
    return text.replace("argument '%s' " % name, "")


def spec_error_line(message, spec_names, specs, role_of):
    """One readable line for an argument-spec error, naming the variable; values of secrets are cut out."""
    found = [n for n in spec_names if re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(n), str(message))]
    name = max(found, key=len) if found else None
    if not name:
        return "preflight: %s; fix the variable it names in the inventory" % re.sub(r"\s+", " ", str(message)).strip()
    spec = specs.get(name, {})
    secret = spec.get("no_log") or is_secret_name(name)
    text = _plain_spec_message(name, message)
    if secret:
        text = re.sub(r"^is '.*?', not one of", "is not one of", text)
        text = re.sub(r"(, got|Got no match for|unable to convert to \w+):.*$", r"\1: (value hidden)", text)
    fix = "fix it in the inventory"
    if spec.get("choices"):
        fix = "set it to one of %s, or remove it to use the default" % ", ".join(str(c) for c in spec["choices"])
    elif spec.get("type"):
        kind = spec["type"] if spec["type"] != "raw" else "value"
        fix = "give %s %s%s, or remove it to use the default" % (
            "an" if kind[0] in "aeiou" else "a", kind,
            " of %ss" % spec["elements"] if spec.get("elements") else "")
    return "%s: %s (%s role); %s" % (name, text, role_of.get(name, "?"), fix)
