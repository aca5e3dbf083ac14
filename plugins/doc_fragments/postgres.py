# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host name or IP address of the PostgreSQL server.
      - When neither O(login_host), O(login_unix_socket) nor O(via_kubernetes) is set, libpq's
        defaults apply (E(PGHOST), then the local Unix socket).
      - Mutually exclusive with O(login_unix_socket) and O(via_kubernetes).
    type: str
    aliases: [host]
  login_port:
    description:
      - TCP port of the PostgreSQL server (also the socket file's port with O(login_unix_socket)).
      - Ignored with O(via_kubernetes), which has its own O(via_kubernetes.port).
    type: int
    default: 5432
    aliases: [port]
  login_user:
    description:
      - The administrative user the module connects as. It needs C(CREATEROLE) and C(CREATEDB)
        (for example the master user of Amazon RDS or Cloud SQL), or to be a superuser.
    type: str
    default: postgres
    aliases: [login]
  login_password:
    description:
      - Password of O(login_user). Never logged.
      - Mutually exclusive with O(login_password_secret).
    type: str
  login_password_secret:
    description:
      - Password of O(login_user), read by the module from a key of a Kubernetes Secret, instead
        of O(login_password). The value never passes through Ansible, so it cannot leak into a
        registered result, a fact or a log. It is used exactly as stored and must not be empty.
      - Read with the credentials of O(via_kubernetes) when it is set, else with O(k8s_auth).
      - Mutually exclusive with O(login_password).
    type: dict
    suboptions:
      name:
        description:
          - Name of the Secret.
        type: str
        required: true
      key:
        description:
          - The key of the Secret's C(data) that holds the password.
        type: str
        required: true
      namespace:
        description:
          - Namespace of the Secret. Defaults to O(namespace).
        type: str
  namespace:
    description:
      - The namespace of the Secret references (O(login_password_secret) and the module's other
        C(*_secret) options) that do not name their own.
      - Defaults to O(via_kubernetes.namespace) when O(via_kubernetes) is set. A reference without
        any namespace is an error.
    type: str
  k8s_auth:
    description:
      - Kubernetes credentials for reading the Secret references when O(via_kubernetes) is not set
        (with O(via_kubernetes), its own credentials are used, and this option is refused).
      - The suboptions and their E(K8S_AUTH_*) fallbacks are those of kubernetes.core. They are
        grouped here because O(login_host) (alias C(host)) and O(ca_cert) already belong to the
        PostgreSQL connection.
      - When omitted, the E(K8S_AUTH_*) variables apply, then the pod's service account when
        running inside a cluster, then E(KUBECONFIG) or C(~/.kube/config).
      - Mutually exclusive with O(via_kubernetes).
    type: dict
    suboptions:
      kubeconfig:
        description:
          - Path to a kubeconfig file (a path only; an inline kubeconfig is refused). Never logged.
          - Falls back to E(K8S_AUTH_KUBECONFIG).
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
          - Key of O(k8s_auth.client_cert). Falls back to E(K8S_AUTH_KEY_FILE).
        type: path
        aliases: [key_file]
  login_unix_socket:
    description:
      - Directory of the server's Unix socket, to connect locally instead of over TCP.
    type: str
    aliases: [unix_socket]
  login_db:
    description:
      - The database the module connects to for cluster-wide work (roles, databases).
    type: str
    default: postgres
  ssl_mode:
    description:
      - libpq's C(sslmode). Use V(verify-full) with O(ca_cert) for a managed server reached over a
        network you do not control.
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - CA certificate file that signs the server's certificate (libpq's C(sslrootcert)).
    type: path
    aliases: [ssl_rootcert]
  connect_timeout:
    description:
      - Seconds to wait for a connection before failing.
    type: int
    default: 10
requirements:
  - psycopg2 (the C(psycopg2-binary) wheel is fine) on the host that runs the module
  - kubernetes (Python library), only with a Secret reference
'''
