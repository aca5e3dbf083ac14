# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  via_kubernetes:
    description:
      - Reach a service that runs inside a Kubernetes cluster, instead of naming its host directly.
      - Outside the cluster, the module opens a port-forward itself, in-process, with the kubernetes
        Python client (the API server's C(pods/portforward) subresource). It listens on
        C(127.0.0.1) on a free port, relays every connection to a Running and Ready pod, and closes
        everything before the module returns. No C(kubectl) and no background process is needed.
      - Inside the cluster (for example in an AWX execution pod, detected by a mounted service
        account token and E(KUBERNETES_SERVICE_HOST)), with O(via_kubernetes.service) set and no
        other cluster named through O(via_kubernetes.kubeconfig), O(via_kubernetes.context),
        O(via_kubernetes.host) or O(via_kubernetes.api_key), the module connects to the Service DNS
        name C(<service>.<namespace>.svc) directly and opens no port-forward. O(via_kubernetes.mode)
        overrides this choice.
      - The Kubernetes credentials need C(get) on services, C(list) on pods and C(create) on
        C(pods/portforward) in O(via_kubernetes.namespace).
    type: dict
    suboptions:
      namespace:
        description:
          - Namespace of the service or pods.
        type: str
        required: true
      service:
        description:
          - Name of the Service in front of the server. Its pod selector picks the pod, and its
            C(targetPort) (a number or a named container port) for O(via_kubernetes.port) is the
            pod port forwarded to.
          - Exactly one of O(via_kubernetes.service) and O(via_kubernetes.pod_selector) is required.
        type: str
      pod_selector:
        description:
          - Label selector of the server's pods, as a string (V(app=postgresql,tier=db)) or a
            dictionary of labels. The oldest Running and Ready pod is used.
        type: raw
      port:
        description:
          - With O(via_kubernetes.service), the Service port (its number); with
            O(via_kubernetes.pod_selector), the pod's port.
          - When omitted, the module's usual port is used (for example V(5432) for PostgreSQL);
            a service that exposes a single port needs none.
        type: int
      mode:
        description:
          - V(auto) connects to the Service DNS name when running inside the cluster (see above),
            and opens a port-forward otherwise.
          - V(port_forward) always opens a port-forward, even inside the cluster.
          - V(service_dns) always connects to C(<service>.<namespace>.svc), for example from a host
            whose DNS resolves cluster names.
        type: str
        choices: [auto, port_forward, service_dns]
        default: auto
      request_timeout:
        description:
          - Timeout in seconds of the API requests that find the pod.
        type: int
        default: 30
      kubeconfig:
        description:
          - Path to a kubeconfig file (a path only; an inline kubeconfig is refused). Never logged, since a
            dictionary holds credentials.
          - Falls back to E(K8S_AUTH_KUBECONFIG), then to the pod's service account when running
            inside a cluster, then to E(KUBECONFIG) or C(~/.kube/config).
        type: raw
      context:
        description:
          - The kubeconfig context to use. Falls back to E(K8S_AUTH_CONTEXT).
        type: str
      host:
        description:
          - URL of the Kubernetes API server. Falls back to E(K8S_AUTH_HOST).
        type: str
      api_key:
        description:
          - Bearer token for the API server. Falls back to E(K8S_AUTH_API_KEY).
        type: str
      validate_certs:
        description:
          - Whether to verify the API server's TLS certificate. Falls back to E(K8S_AUTH_VERIFY_SSL).
        type: bool
        aliases: [verify_ssl]
      ca_cert:
        description:
          - CA bundle that signs the API server's certificate. Falls back to E(K8S_AUTH_SSL_CA_CERT).
        type: path
        aliases: [ssl_ca_cert]
      client_cert:
        description:
          - Client certificate for the API server. Falls back to E(K8S_AUTH_CERT_FILE).
        type: path
        aliases: [cert_file]
      client_key:
        description:
          - Key of O(via_kubernetes.client_cert). Falls back to E(K8S_AUTH_KEY_FILE).
        type: path
        aliases: [key_file]
requirements:
  - kubernetes (Python library), only when O(via_kubernetes) is used
notes:
  - The Kubernetes option names and environment variables are those of kubernetes.core, so the same
    AWX credential serves both.
'''
