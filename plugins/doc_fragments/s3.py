# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  endpoint:
    description:
      - URL of the S3 server, for example V(http://social-minio.social.svc:9000),
        V(https://s3.eu-central-1.amazonaws.com) or V(https://rgw.example.org). Requests use path-style
        addressing and AWS Signature Version 4.
      - With O(via_kubernetes), the host and port are replaced by the port-forward (or the Service DNS
        name), and only the scheme of O(endpoint) is used (V(http) when O(endpoint) is omitted).
      - One of O(endpoint) and O(via_kubernetes) is required.
    type: str
    aliases: [endpoint_url, s3_url]
  access_key:
    description:
      - Access key of the account that manages buckets and users (MinIO root user, Ceph RGW admin,
        AWS IAM user).
      - Exactly one of O(access_key) (with O(secret_key)) and O(admin_secret) is required.
    type: str
    aliases: [aws_access_key]
  secret_key:
    description:
      - Secret key of O(access_key). Never shown in output. Required with O(access_key).
    type: str
    aliases: [aws_secret_key]
  admin_secret:
    description:
      - Read the admin credentials from a Kubernetes Secret instead of O(access_key) and O(secret_key)
        (mutually exclusive with them). The module reads the Secret itself, so the keys never pass
        through an Ansible variable, a fact or a log.
      - Errors name O(admin_secret), the Secret and the missing key, never a value.
      - The Kubernetes credentials need C(get) on Secrets in the Secret's namespace.
    type: dict
    suboptions:
      namespace:
        description:
          - Namespace of the Secret. Defaults to O(via_kubernetes.namespace), or to the namespace of
            C(store_in) for modules that have it. Required when neither is set.
        type: str
      name:
        description: Name of the Secret.
        type: str
        required: true
      access_key:
        description: The key of the Secret's data that holds the admin access key (a key name, not the value).
        type: str
        required: true
      secret_key:
        description: The key of the Secret's data that holds the admin secret key (a key name, not the value).
        type: str
        required: true
      kubeconfig:
        description:
          - Path to a kubeconfig file, or the kubeconfig as a dictionary. Never logged.
          - Falls back to E(K8S_AUTH_KUBECONFIG), then to the pod's service account when running inside
            a cluster, then to E(KUBECONFIG) or C(~/.kube/config).
          - When none of O(admin_secret.kubeconfig), O(admin_secret.context), O(admin_secret.host) and
            O(admin_secret.api_key) is set, the Kubernetes options of O(via_kubernetes) (or of C(store_in))
            are used when that option is given.
        type: raw
      context:
        description: The kubeconfig context to use. Falls back to E(K8S_AUTH_CONTEXT).
        type: str
      host:
        description: URL of the Kubernetes API server. Falls back to E(K8S_AUTH_HOST).
        type: str
      api_key:
        description: Bearer token for the API server. Falls back to E(K8S_AUTH_API_KEY).
        type: str
      validate_certs:
        description: Whether to verify the API server's TLS certificate. Falls back to E(K8S_AUTH_VERIFY_SSL).
        type: bool
        aliases: [verify_ssl]
      ca_cert:
        description: CA bundle that signs the API server's certificate. Falls back to E(K8S_AUTH_SSL_CA_CERT).
        type: path
        aliases: [ssl_ca_cert]
      client_cert:
        description: Client certificate for the API server. Falls back to E(K8S_AUTH_CERT_FILE).
        type: path
        aliases: [cert_file]
      client_key:
        description: Key of O(admin_secret.client_cert). Falls back to E(K8S_AUTH_KEY_FILE).
        type: path
        aliases: [key_file]
  region:
    description:
      - Region used to sign requests and, for new buckets, their location. MinIO and Ceph RGW accept
        the default.
    type: str
    default: us-east-1
  validate_certs:
    description:
      - Whether to verify the server's TLS certificate (https endpoints).
    type: bool
    default: true
  ca_cert:
    description:
      - CA bundle (PEM file) that signs the server's certificate, when it is not a public CA.
    type: path
    aliases: [ca_bundle]
  connect_timeout:
    description:
      - Seconds to wait for a TCP connection to the server.
    type: int
    default: 10
requirements:
  - boto3 (Python library)
  - kubernetes (Python library), only when O(admin_secret) is used
notes:
  - Tested against Ceph RGW 16 (the lab's real S3 server). The S3 calls used (HeadBucket, CreateBucket,
    Get/Put/DeleteBucketPolicy, ListObjectsV2, ListObjectVersions, DeleteObjects) are the same on MinIO
    and AWS S3.
  - Through a port-forward, TLS certificates are checked against C(127.0.0.1); set O(ca_cert) to a CA
    whose certificate names that address, or O(validate_certs=false).
'''
