# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures the integration tests share: the lab's API server, a fresh namespace, the S3 lab
(``lab``; a module may define its own ``lab`` for another peer), the lab's SeaweedFS (``sw``).

Each skips with the command that provides what is missing; under CI=true a skip is a failure
(tests/conftest.py).
"""

import os
import uuid

import pytest

S3_ENV = ("LAB_S3_ENDPOINT", "LAB_S3_ACCESS_KEY", "LAB_S3_SECRET_KEY")
SEAWEEDFS_ENV = ("LAB_SEAWEEDFS_URL", "LAB_SEAWEEDFS_ACCESS_KEY", "LAB_SEAWEEDFS_SECRET_KEY")


@pytest.fixture(scope="module")
def kubernetes():
    """The kubernetes Python client, configured for the lab's API server."""
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("needs the lab's API server: eval \"$(make -s lab-env)\" (KUBECONFIG)")
    client = pytest.importorskip("kubernetes")
    client.config.load_kube_config()
    return client


@pytest.fixture(scope="module")
def core(kubernetes):
    """CoreV1Api of the lab's API server."""
    return kubernetes.client.CoreV1Api()


@pytest.fixture(scope="module")
def namespace(core, request):
    """A namespace of its own for the test module, deleted afterwards. Its prefix is the module's
    NAMESPACE_PREFIX (default: it-<module name>)."""
    prefix = getattr(request.module, "NAMESPACE_PREFIX", "it-" + request.module.__name__.rsplit(".", 1)[-1][5:].replace("_", ""))
    name = "%s-%s" % (prefix[:40], uuid.uuid4().hex[:8])
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def lab():
    """The lab's S3 server (Ceph RGW): endpoint and admin keys."""
    return _s3_server("S3 server", S3_ENV)


@pytest.fixture(scope="module")
def sw():
    """The lab's SeaweedFS (the in-cluster S3 server's twin): endpoint and admin keys."""
    return _s3_server("SeaweedFS", SEAWEEDFS_ENV)


def _s3_server(what, names):
    """{endpoint, access_key, secret_key} from the lab's variables ``names`` (in that order)."""
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.skip("no %s: %s not set (eval \"$(make -s lab-env)\")" % (what, ", ".join(missing)))
    return dict(zip(("endpoint", "access_key", "secret_key"), (os.environ[n] for n in names)))
