# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of plugins/module_utils/portforward.py.

The real end-to-end path (API server -> kwok -> PostgreSQL) is exercised by
tests/integration/test_postgresql_app_db.py::test_via_kubernetes_*. Here: the decisions
(pod choice, target port, in-cluster detection with a fake environment) and the relay, driven by
a fake stream object that stands in for kubernetes.stream's PortForward but carries real TCP.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import socket
import threading

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.fediverse.mastodon.plugins.module_utils import portforward as pf

k8s = pytest.importorskip("kubernetes.client")


def _pod(name, phase="Running", ready=True, created=0, deleting=False, ports=None):
    conditions = [k8s.V1PodCondition(type="Ready", status="True" if ready else "False")]
    containers = [k8s.V1Container(name="c", ports=[k8s.V1ContainerPort(name=n, container_port=p)
                                                   for n, p in (ports or {}).items()])]
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(
            name=name,
            creation_timestamp=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=created),
            deletion_timestamp=datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc) if deleting else None),
        spec=k8s.V1PodSpec(containers=containers),
        status=k8s.V1PodStatus(phase=phase, conditions=conditions))


def _service(ports):
    return k8s.V1Service(
        metadata=k8s.V1ObjectMeta(name="pg", namespace="ns"),
        spec=k8s.V1ServiceSpec(selector={"app": "pg"},
                               ports=[k8s.V1ServicePort(port=p, target_port=t, name=n) for p, t, n in ports]))


# ---- in-cluster decision (fake environment) -------------------------------------------------

@pytest.fixture
def fake_sa_dir(tmp_path):
    (tmp_path / "token").write_text("fake-token")
    return str(tmp_path)


IN_CLUSTER_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}


def test_fake_env_in_cluster_uses_service_dns(fake_sa_dir):
    via = {"namespace": "mastodon", "service": "postgresql", "mode": "auto"}
    assert pf.should_connect_directly(via, environ=IN_CLUSTER_ENV, sa_dir=fake_sa_dir) is True
    assert pf.service_dns_name(via) == "postgresql.mastodon.svc"


def test_fake_env_outside_cluster_port_forwards(tmp_path, fake_sa_dir):
    via = {"namespace": "mastodon", "service": "postgresql", "mode": "auto"}
    assert pf.should_connect_directly(via, environ={}, sa_dir=fake_sa_dir) is False
    # service host set, but no token mounted
    assert pf.should_connect_directly(via, environ=IN_CLUSTER_ENV, sa_dir=str(tmp_path / "none")) is False


def test_fake_env_in_cluster_but_other_cluster_named_port_forwards(fake_sa_dir):
    for key, value in (("kubeconfig", "/x/kubeconfig"), ("context", "prod"), ("host", "https://k"), ("api_key", "t")):
        via = {"namespace": "mastodon", "service": "postgresql", "mode": "auto", key: value}
        assert pf.should_connect_directly(via, environ=IN_CLUSTER_ENV, sa_dir=fake_sa_dir) is False, key


def test_fake_env_in_cluster_pod_selector_port_forwards(fake_sa_dir):
    via = {"namespace": "mastodon", "pod_selector": "app=pg", "mode": "auto"}
    assert pf.should_connect_directly(via, environ=IN_CLUSTER_ENV, sa_dir=fake_sa_dir) is False


def test_fake_env_mode_overrides(fake_sa_dir):
    via = {"namespace": "m", "service": "s", "mode": "port_forward"}
    assert pf.should_connect_directly(via, environ=IN_CLUSTER_ENV, sa_dir=fake_sa_dir) is False
    via["mode"] = "service_dns"
    assert pf.should_connect_directly(via, environ={}, sa_dir=fake_sa_dir) is True


class _FakeModule(object):
    """Records fail_json like AnsibleModule would (it exits)."""

    def fail_json(self, **kwargs):
        raise AssertionError("fail_json: %s" % kwargs)


def test_fake_env_port_forward_context_in_cluster_opens_nothing(monkeypatch, fake_sa_dir):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setattr(pf, "SERVICE_ACCOUNT_DIR", fake_sa_dir)

    def boom(*args, **kwargs):
        raise AssertionError("must not build an API client in cluster")

    monkeypatch.setattr(pf, "build_api_client", boom)
    before = threading.active_count()
    with pf.port_forward(_FakeModule(), {"namespace": "mastodon", "service": "postgresql", "mode": "auto"},
                         default_port=5432) as (host, port):
        assert (host, port) == ("postgresql.mastodon.svc", 5432)
    assert threading.active_count() == before


# ---- argument spec ----------------------------------------------------------------------------

def _validate(via):
    validator = ArgumentSpecValidator({"via_kubernetes": pf.via_kubernetes_spec()})
    return validator.validate({"via_kubernetes": via})


def test_spec_requires_exactly_one_target():
    assert _validate({"namespace": "n"}).error_messages
    assert _validate({"namespace": "n", "service": "s", "pod_selector": "a=b"}).error_messages
    result = _validate({"namespace": "n", "service": "s"})
    assert not result.error_messages
    assert result.validated_parameters["via_kubernetes"]["mode"] == "auto"


def test_spec_kubeconfig_falls_back_to_k8s_auth_env(monkeypatch):
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", "/tmp/kc")
    monkeypatch.setenv("K8S_AUTH_CONTEXT", "lab")
    params = _validate({"namespace": "n", "service": "s"}).validated_parameters["via_kubernetes"]
    assert params["kubeconfig"] == "/tmp/kc"
    assert params["context"] == "lab"


def test_spec_secrets_are_no_log():
    assert pf.VIA_KUBERNETES_SPEC["options"]["api_key"]["no_log"] is True
    assert pf.VIA_KUBERNETES_SPEC["options"]["kubeconfig"]["no_log"] is True


# ---- pod and port resolution ------------------------------------------------------------------

def test_pick_pod_skips_unready_pending_and_terminating():
    pods = [_pod("a-pending", phase="Pending"), _pod("b-unready", ready=False),
            _pod("c-deleting", deleting=True), _pod("d-ok", created=5)]
    assert pf.pick_pod(pods).metadata.name == "d-ok"
    assert pf.pick_pod(pods[:3]) is None


def test_pick_pod_is_stable_oldest_first():
    pods = [_pod("z", created=1), _pod("y", created=0), _pod("x", created=1)]
    assert pf.pick_pod(pods).metadata.name == "y"


def test_service_target_port_numbered_named_and_default():
    assert pf.service_target_port(_service([(5432, 6543, "pg")]), 5432) == (5432, 6543)
    assert pf.service_target_port(_service([(5432, "postgres", "pg")]), 5432) == (5432, "postgres")
    assert pf.service_target_port(_service([(5432, None, "pg")]), 5432) == (5432, 5432)
    assert pf.service_target_port(_service([(5432, "5433", "pg")]), None) == (5432, 5433)


def test_service_target_port_errors_name_the_option():
    with pytest.raises(pf.PortForwardError, match="via_kubernetes.port"):
        pf.service_target_port(_service([(5432, 5432, "pg")]), 6000)
    with pytest.raises(pf.PortForwardError, match="several ports"):
        pf.service_target_port(_service([(1, 1, "a"), (2, 2, "b")]), None)


class _FakeCoreApi(object):
    """Answers the two reads find_target makes, from in-memory objects (fake API)."""

    def __init__(self, service, pods):
        self.service, self.pods = service, pods

    def read_namespaced_service(self, name, namespace, **kwargs):
        return self.service

    def list_namespaced_pod(self, namespace, label_selector=None, **kwargs):
        assert label_selector == "app=pg"
        return k8s.V1PodList(items=self.pods)


def test_find_target_fake_api_single_port_service_needs_no_port():
    api = _FakeCoreApi(_service([(15999, "postgres", "sql")]), [_pod("pg-0", ports={"postgres": 5432})])
    pod, port, what = pf.find_target(api, {"namespace": "ns", "service": "pg"}, default_port=5432)
    assert (pod.metadata.name, port, what) == ("pg-0", 5432, "service ns/pg")


def test_find_target_fake_api_multi_port_service_uses_default_port():
    api = _FakeCoreApi(_service([(9000, 9000, "api"), (5432, 6432, "sql")]), [_pod("pg-0")])
    assert pf.find_target(api, {"namespace": "ns", "service": "pg"}, default_port=5432)[1] == 6432
    with pytest.raises(pf.PortForwardError, match="several ports"):
        pf.find_target(api, {"namespace": "ns", "service": "pg"})


def test_find_target_fake_api_no_ready_pod():
    api = _FakeCoreApi(_service([(5432, 5432, "sql")]), [_pod("pg-0", ready=False)])
    with pytest.raises(pf.PortForwardError, match="no Running and Ready pod"):
        pf.find_target(api, {"namespace": "ns", "service": "pg"}, default_port=5432)


def test_resolve_named_container_port():
    pod = _pod("p", ports={"postgres": 5432})
    assert pf.resolve_container_port(pod, "postgres") == 5432
    assert pf.resolve_container_port(pod, 7000) == 7000
    with pytest.raises(pf.PortForwardError, match="named 'nope'"):
        pf.resolve_container_port(pod, "nope")


def test_selector_string():
    assert pf.selector_string({"b": "2", "a": "1"}) == "a=1,b=2"
    assert pf.selector_string(" app=pg ") == "app=pg"


# ---- the relay, with a fake stream carrying real TCP --------------------------------------------

class _FakeStream(object):
    """Same surface as kubernetes.stream.ws_client.PortForward: socket(port), error(port), close().

    Instead of a websocket it opens a real TCP connection to `target` and pumps bytes between it
    and one end of a socketpair, the way the client's proxy thread does.
    """

    def __init__(self, target, error=None):
        self._mine, self._theirs = socket.socketpair()
        self._upstream = socket.create_connection(target)
        self._error = error
        self._thread = threading.Thread(target=self._pump)
        self._thread.daemon = True
        self._thread.start()

    def _pump(self):
        import select
        try:
            while True:
                r, dummy, dummy = select.select([self._theirs, self._upstream], [], [])
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (self._upstream if s is self._theirs else self._theirs).sendall(data)
        except OSError:
            return
        finally:
            self._theirs.close()
            self._upstream.close()

    def socket(self, port):
        return self._mine

    def error(self, port):
        return self._error

    def close(self):
        self._mine.close()


@pytest.fixture
def echo_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve(conn):
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data.upper())

    def loop():
        while not stop.is_set():
            try:
                conn, dummy = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield srv.getsockname()
    stop.set()
    srv.close()


class _FakeStreamForwarder(pf._Forwarder):
    def __init__(self, target, error=None):
        super(_FakeStreamForwarder, self).__init__(None, "ns", "pod-0", 5432)
        self.target = target
        self.fake_error = error
        self.opened = 0

    def open_stream(self):
        self.opened += 1
        return _FakeStream(self.target, self.fake_error)


def _roundtrip(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def test_relay_fake_stream_concurrent_connections_and_cleanup(echo_server):
    before = threading.active_count()
    fwd = _FakeStreamForwarder(echo_server)
    fwd.start()
    assert fwd.opened == 1, "the first stream is opened eagerly, to fail early"
    big = os.urandom(3 * 1024 * 1024).hex().encode()[:2000000].lower()
    results = {}

    def client(i):
        results[i] = _roundtrip(fwd.port, big if i == 0 else b"hello %d" % i)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results[0] == big.upper()
    for i in range(1, 5):
        assert results[i] == b"HELLO %d" % i
    assert fwd.opened == 5, "one stream per accepted connection, the eager one reused"
    port = fwd.port
    fwd.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    # every relay and accept thread has ended (the fake's pump threads end with their sockets)
    deadline = 50
    while threading.active_count() > before and deadline:
        threading.Event().wait(0.1)
        deadline -= 1
    assert threading.active_count() == before


def test_relay_fake_stream_error_is_recorded(echo_server):
    fwd = _FakeStreamForwarder(echo_server, error="dial tcp 127.0.0.1:5432: connect: connection refused")
    fwd.start()
    try:
        assert _roundtrip(fwd.port, b"x") == b"X"
        for dummy in range(50):
            if fwd.errors:
                break
            threading.Event().wait(0.1)
        assert fwd.errors and "connection refused" in fwd.errors[0]
        assert "pod ns/pod-0 port 5432" in fwd.errors[0]
    finally:
        fwd.close()


def test_forwarded_endpoint_unpacks_like_a_tuple():
    ep = pf.ForwardedEndpoint("127.0.0.1", 4242, "desc")
    host, port = ep
    assert (host, port) == ("127.0.0.1", 4242) and ep.errors() == [] and not ep.forwarded
