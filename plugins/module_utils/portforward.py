# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reach a service that lives inside a Kubernetes cluster from the Ansible host.

Outside the cluster, the module opens a port-forward itself, in-process, with the kubernetes
Python client, and relays it to a listening socket on 127.0.0.1:<ephemeral port>. Every TCP
connection accepted on that socket gets its own port-forward stream to the pod. Everything is
closed when the ``with`` block ends: no kubectl, no background process left behind.

Inside the cluster (an AWX execution pod), a Service is reached directly by its DNS name
``<service>.<namespace>.svc``.

Usage in a module::

    argument_spec = dict(via_kubernetes=via_kubernetes_spec(), ...)
    ...
    with port_forward(module, module.params['via_kubernetes'], default_port=5432) as (host, port):
        connect(host, port)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import select
import socket
import threading
import time
from contextlib import contextmanager

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.fediverse.mastodon.plugins.module_utils.k8s_client import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    K8S_AUTH_ARG_SPEC,
    SERVICE_ACCOUNT_DIR,
    build_api_client,
    running_in_cluster,
)

try:
    from kubernetes import client as k8s_client_lib
    from kubernetes.client.rest import ApiException
    from kubernetes.stream import portforward as k8s_portforward
except ImportError:  # pragma: no cover - reported through missing_required_lib
    k8s_client_lib = None
    k8s_portforward = None

    class ApiException(Exception):  # pylint: disable=missing-class-docstring
        pass

MODES = ("auto", "port_forward", "service_dns")
"""Values of ``via_kubernetes.mode``."""

_EXPLICIT_CLUSTER_KEYS = ("kubeconfig", "context", "host", "api_key")

VIA_KUBERNETES_OPTIONS = dict(
    namespace=dict(type="str", required=True),
    service=dict(type="str"),
    pod_selector=dict(type="raw"),
    port=dict(type="int"),
    mode=dict(type="str", default="auto", choices=list(MODES)),
    request_timeout=dict(type="int", default=30),
)
VIA_KUBERNETES_OPTIONS.update(copy.deepcopy(K8S_AUTH_ARG_SPEC))
# A kubeconfig given inline as a dictionary carries tokens and keys: keep it out of every log.
VIA_KUBERNETES_OPTIONS["kubeconfig"]["no_log"] = True

VIA_KUBERNETES_SPEC = dict(
    type="dict",
    options=VIA_KUBERNETES_OPTIONS,
    mutually_exclusive=[("service", "pod_selector")],
    required_one_of=[("service", "pod_selector")],
)
"""Argument spec of the ``via_kubernetes`` option (documented by the via_kubernetes doc fragment)."""


def via_kubernetes_spec():
    """A fresh copy of VIA_KUBERNETES_SPEC, to put in a module's argument_spec."""
    return copy.deepcopy(VIA_KUBERNETES_SPEC)


class PortForwardError(Exception):
    """The path into the cluster could not be opened."""


class ForwardedEndpoint(tuple):
    """``(host, port)`` to connect to, plus what it goes through.

    It unpacks like a 2-tuple. ``description`` says where the traffic really goes (for error
    messages); ``errors()`` lists what the port-forward streams reported so far.
    """

    def __new__(cls, host, port, description, forwarder=None):
        self = tuple.__new__(cls, (host, port))
        self.description = description
        self._forwarder = forwarder
        return self

    @property
    def host(self):
        return self[0]

    @property
    def port(self):
        return self[1]

    @property
    def forwarded(self):
        return self._forwarder is not None

    def errors(self, wait=0.0):
        """What the port-forward streams reported. ``wait`` seconds give a stream that just failed
        time to record why (its relay ends right after the client sees the connection close)."""
        if self._forwarder is None:
            return []
        deadline = time.time() + wait
        while not self._forwarder.errors and time.time() < deadline:
            time.sleep(0.05)
        return list(self._forwarder.errors)


def explicit_cluster_options(via):
    """True when the operator named a cluster (kubeconfig, context, host or api_key)."""
    return any(via.get(k) for k in _EXPLICIT_CLUSTER_KEYS)


def should_connect_directly(via, environ=None, sa_dir=None):
    """Decide between the Service DNS name and a port-forward.

    ``mode: service_dns`` always connects directly and ``mode: port_forward`` never does.
    ``mode: auto`` connects directly when this process runs inside a cluster (service account
    token mounted, KUBERNETES_SERVICE_HOST set), no other cluster was named through
    kubeconfig/context/host/api_key, and a ``service`` (not a ``pod_selector``) is the target.
    """
    mode = via.get("mode") or "auto"
    if mode == "service_dns":
        return True
    if mode == "port_forward":
        return False
    if not via.get("service"):
        return False
    if explicit_cluster_options(via):
        return False
    return running_in_cluster(environ=environ, sa_dir=SERVICE_ACCOUNT_DIR if sa_dir is None else sa_dir)


def service_dns_name(via):
    return "%s.%s.svc" % (via["service"], via["namespace"])


def selector_string(selector):
    """A label selector given as a dict or a string, as the string the API expects."""
    if isinstance(selector, dict):
        return ",".join("%s=%s" % (k, selector[k]) for k in sorted(selector))
    return str(selector).strip()


def pod_is_ready(pod):
    """Running, not being deleted, and condition Ready=True."""
    if pod.metadata.deletion_timestamp is not None:
        return False
    status = pod.status
    if status is None or status.phase != "Running":
        return False
    for cond in status.conditions or []:
        if cond.type == "Ready":
            return cond.status == "True"
    return False


def pick_pod(pods):
    """The Ready pod to forward to: the oldest one, ties broken by name (stable across runs)."""
    ready = [p for p in pods if pod_is_ready(p)]
    if not ready:
        return None

    def key(pod):
        created = pod.metadata.creation_timestamp
        return (created.isoformat() if created is not None else "", pod.metadata.name)

    return sorted(ready, key=key)[0]


def service_target_port(service, port):
    """The service port entry for ``port`` (its number, or its name) and its targetPort.

    Returns ``(service_port_number, target)`` where target is an int or a port name.
    Raises PortForwardError when the service does not expose that port.
    """
    entries = service.spec.ports or []
    chosen = None
    for entry in entries:
        if port is None or entry.port == port or (entry.name and entry.name == str(port)):
            chosen = entry
            break
    if port is None and len(entries) > 1:
        raise PortForwardError(
            "service %s exposes several ports (%s); set via_kubernetes.port to one of them"
            % (service.metadata.name, ", ".join(str(e.port) for e in entries)))
    if chosen is None:
        raise PortForwardError(
            "service %s in namespace %s has no port %s (it exposes: %s); fix via_kubernetes.port"
            % (service.metadata.name, service.metadata.namespace, port,
               ", ".join(str(e.port) for e in entries) or "none"))
    target = chosen.target_port
    if target is None or target == "":
        target = chosen.port
    if isinstance(target, str) and target.isdigit():
        target = int(target)
    return chosen.port, target


def resolve_container_port(pod, target):
    """The pod's port number for ``target`` (a number, or a named container port)."""
    if isinstance(target, int):
        return target
    for container in pod.spec.containers or []:
        for cport in container.ports or []:
            if cport.name == target:
                return cport.container_port
    raise PortForwardError(
        "pod %s declares no container port named %r (the service's targetPort)" % (pod.metadata.name, target))


class _Forwarder(object):
    """Listen on 127.0.0.1:<ephemeral>; relay each accepted connection through its own stream."""

    BUFSIZE = 65536

    def __init__(self, core_api, namespace, pod_name, pod_port):
        self._api = core_api
        self._namespace = namespace
        self._pod = pod_name
        self._pod_port = pod_port
        self._stop = threading.Event()
        self._open_lock = threading.Lock()
        self._lock = threading.Lock()
        self._threads = []
        self._open = []  # (client socket, PortForward)
        self._spare = None
        self.errors = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._acceptor = None

    def open_stream(self):
        """Open one port-forward websocket to the pod (serialised: the client is not thread safe here)."""
        with self._open_lock:
            return k8s_portforward(self._api.connect_get_namespaced_pod_portforward,
                                   self._pod, self._namespace, ports=str(self._pod_port))

    def start(self):
        # Open the first stream now, so a refused port-forward (RBAC, unreachable kubelet)
        # fails the module before anything talks to the service.
        self._spare = self.open_stream()
        self._acceptor = threading.Thread(target=self._accept_loop, name="via_kubernetes accept")
        self._acceptor.daemon = True
        self._acceptor.start()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                readable, dummy, dummy = select.select([self._listener], [], [], 0.2)
            except (OSError, ValueError):
                return
            if not readable:
                continue
            try:
                client, dummy = self._listener.accept()
            except OSError:
                return
            worker = threading.Thread(target=self._serve, args=(client,), name="via_kubernetes relay")
            worker.daemon = True
            with self._lock:
                self._threads.append(worker)
            worker.start()

    def _record(self, message):
        with self._lock:
            if message and message not in self.errors:
                self.errors.append(message)

    def _serve(self, client):
        forward = None
        try:
            with self._lock:
                forward, self._spare = self._spare, None
            if forward is None:
                forward = self.open_stream()
            with self._lock:
                self._open.append((client, forward))
            remote = forward.socket(self._pod_port)
            remote.setblocking(True)
            self._relay(client, remote)
            error = forward.error(self._pod_port)
            if error:
                self._record("port-forward to pod %s/%s port %s: %s"
                             % (self._namespace, self._pod, self._pod_port, error.strip()))
        except Exception as exc:  # pylint: disable=broad-except
            self._record("port-forward to pod %s/%s port %s failed: %s"
                         % (self._namespace, self._pod, self._pod_port, to_native(exc)))
        finally:
            _close_quietly(client)
            if forward is not None:
                _close_forward(forward)

    def _relay(self, client, remote):
        peers = {client.fileno(): (client, remote), remote.fileno(): (remote, client)}
        while not self._stop.is_set():
            try:
                readable, dummy, dummy = select.select([client, remote], [], [], 0.5)
            except (OSError, ValueError):
                return
            for sock in readable:
                src, dst = peers[sock.fileno()]
                try:
                    data = src.recv(self.BUFSIZE)
                except OSError:
                    return
                if not data:
                    return
                try:
                    dst.sendall(data)
                except OSError:
                    return

    def close(self):
        self._stop.set()
        _close_quietly(self._listener)
        with self._lock:
            spare, self._spare = self._spare, None
            opened = list(self._open)
            threads = list(self._threads)
        if spare is not None:
            _close_forward(spare)
        for client, forward in opened:
            _close_quietly(client)
            _close_forward(forward)
        deadline = time.time() + 5
        for thread in [self._acceptor] + threads:
            if thread is not None:
                thread.join(max(0.0, deadline - time.time()))


def _close_quietly(sock):
    try:
        sock.close()
    except Exception:  # pylint: disable=broad-except
        pass


def _close_forward(forward):
    """Close our end of the stream; the client's proxy thread then closes the websocket and exits."""
    try:
        forward.close()
    except Exception:  # pylint: disable=broad-except
        pass


def _api_error(exc):
    if isinstance(exc, ApiException):
        return "%s %s" % (exc.status, exc.reason)
    return to_native(exc)


def find_target(core_api, via, default_port=None):
    """Resolve ``via`` to ``(pod, pod_port, what)``: a Running+Ready pod and the port to forward to."""
    namespace = via["namespace"]
    port = via.get("port") or default_port
    timeout = via.get("request_timeout") or 30
    if via.get("service"):
        name = via["service"]
        try:
            service = core_api.read_namespaced_service(name, namespace, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status == 404:
                raise PortForwardError("service %s not found in namespace %s; fix via_kubernetes.service or "
                                       "via_kubernetes.namespace" % (name, namespace))
            raise PortForwardError("could not read service %s in namespace %s: %s" % (name, namespace, _api_error(exc)))
        selector = service.spec.selector
        if not selector:
            raise PortForwardError("service %s in namespace %s has no pod selector; use via_kubernetes.pod_selector "
                                   "instead" % (name, namespace))
        wanted = via.get("port")
        if wanted is None:
            # a single-port service needs no port; otherwise the module's usual port picks one
            wanted = None if len(service.spec.ports or []) == 1 else default_port
        dummy, target = service_target_port(service, wanted)
        what = "service %s/%s" % (namespace, name)
    else:
        selector = via["pod_selector"]
        if port is None:
            raise PortForwardError("via_kubernetes.port is required with via_kubernetes.pod_selector")
        target = port
        what = "pods %s in %s" % (selector_string(selector), namespace)
    label_selector = selector_string(selector)
    try:
        pods = core_api.list_namespaced_pod(namespace, label_selector=label_selector, _request_timeout=timeout).items
    except ApiException as exc:
        raise PortForwardError("could not list pods %s in namespace %s: %s" % (label_selector, namespace, _api_error(exc)))
    pod = pick_pod(pods)
    if pod is None:
        raise PortForwardError("no Running and Ready pod matches %s (selector %s in namespace %s, %d pod(s) found); "
                               "wait for the workload or fix via_kubernetes" % (what, label_selector, namespace, len(pods)))
    return pod, resolve_container_port(pod, target), what


def _describe(via):
    if via.get("service"):
        return "service %s/%s" % (via["namespace"], via["service"])
    return "pods %s in %s" % (selector_string(via.get("pod_selector")), via["namespace"])


@contextmanager
def port_forward(module, via, default_port=None):
    """Yield a ForwardedEndpoint ``(host, port)`` that reaches the service described by ``via``.

    ``via`` is the module's ``via_kubernetes`` parameter (see VIA_KUBERNETES_SPEC). Inside the
    cluster (see should_connect_directly) it yields ``(<service>.<namespace>.svc, port)`` and
    opens nothing. Otherwise it opens an in-process port-forward to a Running+Ready pod and
    yields ``('127.0.0.1', <ephemeral port>)``; the listener and every stream are closed when the
    block exits. Failures to find the path call module.fail_json naming the option to fix.
    """
    if should_connect_directly(via):
        if not via.get("service"):
            module.fail_json(msg="via_kubernetes.mode=service_dns needs via_kubernetes.service")
        port = via.get("port") or default_port
        if port is None:
            module.fail_json(msg="via_kubernetes.port is required (this module has no default port)")
        host = service_dns_name(via)
        yield ForwardedEndpoint(host, port, "%s:%s (service DNS, in cluster)" % (host, port))
        return
    if not HAS_KUBERNETES or k8s_portforward is None:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=to_native(KUBERNETES_IMPORT_ERROR))
    try:
        api = build_api_client(via)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="via_kubernetes: could not load the Kubernetes client configuration: %s; check "
                             "via_kubernetes.kubeconfig/context or K8S_AUTH_* variables" % to_native(exc))
    core = k8s_client_lib.CoreV1Api(api)
    forwarder = None
    try:
        try:
            pod, pod_port, what = find_target(core, via, default_port)
        except PortForwardError as exc:
            module.fail_json(msg="via_kubernetes: %s" % to_native(exc))
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_json(msg="via_kubernetes: could not reach the Kubernetes API server to find %s: %s; check "
                                 "via_kubernetes.kubeconfig/context/host" % (_describe(via), _api_error(exc)))
        target = "pod %s/%s port %s" % (via["namespace"], pod.metadata.name, pod_port)
        try:
            forwarder = _Forwarder(core, via["namespace"], pod.metadata.name, pod_port)
            forwarder.start()
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_json(msg="via_kubernetes: could not open a port-forward to %s (%s): %s; check that the API "
                                 "server is reachable and that you may create pods/portforward in namespace %s"
                                 % (target, what, _api_error(exc), via["namespace"]))
        description = "127.0.0.1:%s (port-forward to %s, %s)" % (forwarder.port, target, what)
        yield ForwardedEndpoint("127.0.0.1", forwarder.port, description, forwarder)
    finally:
        if forwarder is not None:
            forwarder.close()
        try:
            api.close()
        except Exception:  # pylint: disable=broad-except
            pass
