"""Mastodon's NetworkPolicies let its pods reach every in-cluster backing server the collection
deploys: each server pod's app.kubernetes.io/name is among mastodon_networkpolicy_backing_components
(a new server, like SeaweedFS, that is missing there would be unreachable with the policies on)."""

import os

import pytest
import yaml


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

SERVERS = [("postgresql", {}), ("postgresql", {"postgresql_pgbouncer": True}), ("redis", {}),
           ("redis", {"redis_cache": True}), ("elasticsearch", {}), ("minio", {}), ("minio", {"minio_s3_server": "minio"})]


@pytest.mark.parametrize("role,extra", SERVERS)
def test_every_backing_server_is_a_peer_of_mastodons_pods(render, role, extra):
    with open(os.path.join(REPO, "roles", "mastodon", "defaults", "main.yml")) as fh:
        peers = yaml.safe_load(fh)["mastodon_networkpolicy_backing_components"]
    objects = render(role, **extra)
    workloads = [o for o in objects if o["kind"] in ("StatefulSet", "Deployment")]
    assert workloads
    for workload in workloads:
        name = workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        assert name in peers, "%s (%s) is not in mastodon_networkpolicy_backing_components" % (name, role)
