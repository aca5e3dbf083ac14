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
    type: str
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
'''
