#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: postgresql_app_db
short_description: A PostgreSQL login role, its database and least-privilege grants in one idempotent call
version_added: 1.0.0
description:
  - Ensures an application's login role, a database owned by it, and the grants it needs, the way
    Mastodon's setup guide asks (C(CREATE USER), C(CREATE DATABASE), C(GRANT)), with least
    privilege, check mode and a diff.
  - "The role is C(LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS). Its
    password is stored as a SCRAM-SHA-256 verifier computed by the module: the plaintext never
    reaches the server, its logs or C(pg_stat_statements)."
  - The database is created from C(template0), owned by the role. C(CONNECT) and C(TEMPORARY) on
    it are revoked from C(PUBLIC) and granted to the role. The role can create objects in the
    C(public) schema (as Mastodon's migrations need) on PostgreSQL 13 to 17, and C(PUBLIC) cannot.
  - Works with a managed server (Amazon RDS, Cloud SQL, Azure) whose admin user has C(CREATEROLE)
    and C(CREATEDB), with an in-cluster server reached through O(via_kubernetes), or directly.
  - Both passwords can be given by reference to a Kubernetes Secret (O(login_password_secret),
    O(password_secret)) instead of in plaintext. The module then reads them from the API server
    itself, so they never pass through an Ansible variable, a registered result, a fact or a log.
  - Manual drift (for example C(ALTER ROLE ... SUPERUSER)) is put back and reported as a change.
  - Identifiers are always quoted. Names are checked first (see O(database)); nothing is changed when
    an input is refused or the server cannot be reached. If a step fails after the role or the
    database was created by the same run, they are dropped again, so nothing is half-created.
author:
  - fediverse.mastodon contributors (@fediverse-mastodon)
extends_documentation_fragment:
  - fediverse.mastodon.postgres
  - fediverse.mastodon.via_kubernetes
  - fediverse.mastodon.run_lock
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  database:
    description:
      - Name of the application's database.
      - Names must be at most 63 bytes, without NUL (PostgreSQL's rules), and, by this module's
        policy, use only ASCII letters, digits, V(_), V($), V(.) and V(-), starting with a letter or
        V(_). Anything else (quotes, semicolons, spaces) is refused with an error.
    type: str
    required: true
    aliases: [db, name]
  role:
    description:
      - Name of the application's login role, owner of O(database). Same naming rules as O(database);
        it must not start with V(pg_).
    type: str
    required: true
    aliases: [user]
  password:
    description:
      - The role's password. With O(state=present), this or O(password_secret) is required. Never
        logged; the module sends only its SCRAM-SHA-256 verifier.
      - Mutually exclusive with O(password_secret).
    type: str
  password_secret:
    description:
      - The role's password, read by the module from a key of a Kubernetes Secret, instead of
        O(password). Mutually exclusive with O(password).
      - O(update_password) works the same as with O(password). The value is used exactly as stored
        (a trailing newline is part of it) and must not be empty.
      - Read with the credentials of O(via_kubernetes) when it is set, else with O(k8s_auth). With
        O(state=absent) it is not read (the Secret may already be gone).
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
  update_password:
    description:
      - V(always) sets the password when the stored one differs. The module recomputes the verifier
        with the stored salt and iteration count, so an unchanged password is not a change.
      - V(on_create) sets it only when the role is created.
    type: str
    choices: [always, on_create]
    default: always
  state:
    description:
      - V(present) ensures the role, the database and the grants.
      - V(absent) drops the role. The database, with its data, is kept unless O(drop_database=true);
        objects the role owned in it are reassigned to O(login_user) first.
    type: str
    choices: [present, absent]
    default: present
  conn_limit:
    description:
      - Maximum concurrent connections of the role. V(-1) means no limit. When omitted, a new role
        gets no limit and an existing role's limit is left alone.
    type: int
  encoding:
    description:
      - Character encoding of the database. It cannot change after creation, so a different existing
        encoding is an error.
    type: str
    default: UTF8
  lc_collate:
    description:
      - Collation (C(LC_COLLATE)) of the database. When omitted, the server's default is used at
        creation and an existing value is accepted. It cannot change after creation.
    type: str
  lc_ctype:
    description:
      - Character classification (C(LC_CTYPE)) of the database, like O(lc_collate).
    type: str
  extensions:
    description:
      - Extensions to create, as O(login_user), in the database (C(CREATE EXTENSION IF NOT EXISTS)).
        Extensions are never dropped by this module.
    type: list
    elements: str
    default: []
  readonly_roles:
    description:
      - Existing roles (for backups or reporting) that get C(CONNECT) on the database, C(USAGE) on
        its C(public) schema, and C(SELECT) on its current and future tables and sequences (default
        privileges of O(role)).
      - Only the listed roles are managed; grants of other roles are left alone.
    type: list
    elements: str
    default: []
  reassign_owner:
    description:
      - When O(database) exists but is owned by another role, make O(role) its owner. Without it the
        module refuses, because another application may own that database.
      - Only the database's ownership changes; objects inside keep their owners.
    type: bool
    default: false
  drop_database:
    description:
      - With O(state=absent), also drop O(database) (connections to it are terminated). Its data is
        lost.
      - Only a database owned by O(role) or by O(login_user) is dropped; another owner is an error.
    type: bool
    default: false
requirements:
  - psycopg2 (the C(psycopg2-binary) wheel is fine)
  - kubernetes (Python library), only with O(via_kubernetes), O(login_password_secret) or O(password_secret)
notes:
  - With O(login_password_secret) or O(password_secret), the Kubernetes credentials need C(get) on
    the Secrets they name.
  - The password check reads C(pg_authid), which needs a superuser. A non-superuser admin (managed
    servers) cannot read it; the module then tries to log in as O(role) with O(password) and sets the
    password only if that fails. If C(pg_hba.conf) does not let the module's host log in as O(role),
    use O(update_password=on_create) to keep reruns unchanged.
  - A non-superuser O(login_user) is granted membership in O(role), which PostgreSQL requires to
    create a database owned by it.
  - Default privileges for O(readonly_roles) cover objects created by O(role) in the C(public) schema.
seealso:
  - name: Mastodon's PostgreSQL setup
    description: The manual steps this module replaces.
    link: https://docs.joinmastodon.org/admin/install/#creating-a-user
'''

EXAMPLES = r'''
- name: Mastodon's database and login role on a server reached directly
  fediverse.mastodon.postgresql_app_db:
    login_host: db.example.org
    login_user: postgres
    login_password: "{{ vault_postgres_admin_password }}"
    ssl_mode: verify-full
    ca_cert: /etc/ssl/certs/db-ca.pem
    database: mastodon_production
    role: mastodon
    password: "{{ mastodon_db_password }}"
  no_log: true

- name: The same against the in-cluster PostgreSQL, through a port-forward the module opens itself
  fediverse.mastodon.postgresql_app_db:
    via_kubernetes:
      namespace: mastodon
      service: postgresql
    login_user: postgres
    login_password: "{{ postgresql_admin_password }}"
    database: mastodon_production
    role: mastodon
    password: "{{ mastodon_db_password }}"
    conn_limit: 60
    extensions: [pg_stat_statements]
    readonly_roles: [backup]

- name: Both passwords by Secret reference, read by the module itself (no plaintext in Ansible)
  fediverse.mastodon.postgresql_app_db:
    via_kubernetes:
      namespace: mastodon
      service: postgresql
    login_user: postgres
    login_password_secret:
      name: postgresql
      key: postgres-password
    password_secret:
      name: mastodon-db
      key: password
    database: mastodon_production
    role: mastodon

- name: A managed server reached directly; the Secrets are read with the default Kubernetes credentials
  fediverse.mastodon.postgresql_app_db:
    login_host: db.example.org
    ssl_mode: verify-full
    ca_cert: /etc/ssl/certs/db-ca.pem
    login_user: mastodon_admin
    namespace: mastodon
    login_password_secret: {name: rds-admin, key: password}
    password_secret: {name: mastodon-db, key: password}
    k8s_auth:
      context: production
    database: mastodon_production
    role: mastodon

- name: Keep the password the application already uses (set only on creation)
  fediverse.mastodon.postgresql_app_db:
    login_host: 127.0.0.1
    login_password: "{{ admin_password }}"
    database: mastodon_production
    role: mastodon
    password: "{{ mastodon_db_password }}"
    update_password: on_create

- name: Remove the role but keep the data
  fediverse.mastodon.postgresql_app_db:
    login_host: 127.0.0.1
    login_password: "{{ admin_password }}"
    database: mastodon_production
    role: mastodon
    state: absent

- name: Remove the role and the database with all its data
  fediverse.mastodon.postgresql_app_db:
    login_host: 127.0.0.1
    login_password: "{{ admin_password }}"
    database: mastodon_staging
    role: mastodon_staging
    state: absent
    drop_database: true
'''

RETURN = r'''
role:
  description: Name of the login role.
  returned: always
  type: str
  sample: mastodon
database:
  description: Name of the database.
  returned: always
  type: str
  sample: mastodon_production
queries:
  description:
    - The statements run (or, in check mode, that would run), in order. Passwords are shown as
      C(********).
  returned: always
  type: list
  elements: str
  sample:
    - CREATE ROLE "mastodon" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '********'
    - CREATE DATABASE "mastodon_production" WITH OWNER "mastodon" TEMPLATE template0 ENCODING 'UTF8'
    - REVOKE CONNECT, TEMPORARY ON DATABASE "mastodon_production" FROM PUBLIC
server_version:
  description: The server's version number (C(server_version_num)).
  returned: when the server was reached
  type: int
  sample: 150018
changes:
  description: Dotted paths of the settings that changed (or would change), as shown by the diff.
  returned: always
  type: list
  elements: str
  sample: [role.exists, database.exists, grants.connect]
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client
from ansible_collections.fediverse.mastodon.plugins.module_utils import run_lock as run_lock_utils

from ansible_collections.fediverse.mastodon.plugins.module_utils.postgres import (
    POSTGRES_MUTUALLY_EXCLUSIVE,
    QueryLog,
    build_diff,
    changed_keys,
    connect,
    endpoint,
    postgres_argument_spec,
    require_psycopg2,
    resolve_secret_refs,
    scram_password_matches,
    secret_reference_spec,
    try_login,
    validate_identifier,
)

try:
    import psycopg2
    from psycopg2 import sql
    from psycopg2.extensions import encrypt_password
except ImportError:  # pragma: no cover - reported by require_psycopg2
    psycopg2 = None
    sql = None
    encrypt_password = None

ROLE_ATTRIBUTES = (
    ("login", "rolcanlogin", True, "LOGIN", "NOLOGIN"),
    ("superuser", "rolsuper", False, "SUPERUSER", "NOSUPERUSER"),
    ("createdb", "rolcreatedb", False, "CREATEDB", "NOCREATEDB"),
    ("createrole", "rolcreaterole", False, "CREATEROLE", "NOCREATEROLE"),
    ("replication", "rolreplication", False, "REPLICATION", "NOREPLICATION"),
    ("bypassrls", "rolbypassrls", False, "BYPASSRLS", "NOBYPASSRLS"),
)

TABLE_KINDS = "('r', 'v', 'm', 'p', 'f')"


def _norm_encoding(name):
    return (name or "").upper().replace("-", "").replace("_", "")


class AppDb(object):
    """Observe, plan and apply; one instance per module run."""

    def hold_run_lock(self):
        """Take (or renew) the instance's run lock before the first statement that changes something."""
        lock = self.params.get("run_lock")
        if not lock:
            return
        if not k8s_client.HAS_KUBERNETES:
            self.module.fail_json(msg=missing_required_lib("kubernetes") + " (needed by run_lock)", changed=False, queries=[])
        try:
            api = k8s_client.build_api_client(self.params.get("via_kubernetes") or self.params.get("k8s_auth") or {})
            for warning in run_lock_utils.hold(api, lock):
                self.module.warn(warning)
        except run_lock_utils.lease.LeaseError as exc:
            self.module.fail_json(msg="run_lock: %s; nothing was changed in the database" % to_native(exc),
                                  changed=False, queries=[])

    def __init__(self, module, where, params=None):
        self.module = module
        # module.params with the credentials given by Secret reference filled in
        self.params = module.params if params is None else params
        self.where = where
        self.log = QueryLog(check_mode=module.check_mode, before_first_write=self.hold_run_lock)
        self.conn = connect(module, where, params=self.params)
        self.cur = self.conn.cursor()
        self.server_version = self.conn.server_version
        self.created_role = False
        self.created_database = False

    # ---- observation ------------------------------------------------------------------------

    def one(self, query, params=None, cur=None):
        cur = cur or self.cur
        cur.execute(query, params)
        return cur.fetchone()

    def admin(self):
        row = self.one("SELECT current_user, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user")
        return dict(name=row[0], superuser=row[1], createrole=row[2], createdb=row[3])

    def observe_role(self, name):
        row = self.one("SELECT oid, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, "
                       "rolconnlimit FROM pg_roles WHERE rolname = %s", [name])
        if row is None:
            return None
        role = dict(oid=row[0], rolcanlogin=row[1], rolsuper=row[2], rolcreatedb=row[3], rolcreaterole=row[4],
                    rolreplication=row[5], rolbypassrls=row[6], conn_limit=row[7], verifier=None, verifier_readable=False)
        try:
            self.cur.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [name])
            role["verifier"] = self.cur.fetchone()[0]
            role["verifier_readable"] = True
        except psycopg2.errors.InsufficientPrivilege:
            pass
        return role

    def observe_database(self, name):
        row = self.one("SELECT d.oid, pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype "
                       "FROM pg_database d WHERE d.datname = %s", [name])
        if row is None:
            return None
        db = dict(oid=row[0], owner=row[1], encoding=row[2], lc_collate=row[3], lc_ctype=row[4])
        self.cur.execute("SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type "
                         "FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a "
                         "WHERE d.datname = %s", [name])
        acl = {}
        for grantee, privilege in self.cur.fetchall():
            acl.setdefault(privilege, set()).add(grantee)
        db["acl"] = acl
        return db

    def observe_inside(self, dbconn, role, readonly):
        """Schema grants, extensions and read-only grants inside the application database."""
        cur = dbconn.cursor()
        inside = {}
        row = self.one("SELECT n.oid, "
                       "EXISTS (SELECT 1 FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a "
                       "        WHERE a.grantee = 0 AND a.privilege_type = 'CREATE') "
                       "FROM pg_namespace n WHERE n.nspname = 'public'", cur=cur)
        inside["public_schema"] = row is not None
        inside["public_create_public"] = bool(row and row[1])
        if row is not None and role is not None:
            # Not has_schema_privilege(): on PostgreSQL < 15 it is true through PUBLIC's CREATE, which
            # this module revokes. Count only ownership (pg_database_owner included) and the role's own grants.
            inside["role_create"] = self.one(
                "SELECT pg_has_role(r.oid, n.nspowner, 'USAGE') OR ("
                "  EXISTS (SELECT 1 FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a "
                "          WHERE a.grantee = r.oid AND a.privilege_type = 'CREATE') AND "
                "  EXISTS (SELECT 1 FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a "
                "          WHERE a.grantee = r.oid AND a.privilege_type = 'USAGE')) "
                "FROM pg_namespace n, pg_roles r WHERE n.nspname = 'public' AND r.rolname = %s", [role], cur=cur)[0]
        else:
            inside["role_create"] = False
        cur.execute("SELECT extname FROM pg_extension")
        inside["extensions"] = set(r[0] for r in cur.fetchall())
        ro = {}
        for name in readonly:
            entry = dict(usage=False, tables=False, sequences=False, default_tables=False, default_sequences=False)
            if row is not None:
                entry["usage"] = self.one("SELECT has_schema_privilege(%s, 'public', 'USAGE')", [name], cur=cur)[0]
                entry["tables"] = not self.one(
                    "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind IN " + TABLE_KINDS + " "
                    "AND NOT has_table_privilege(%s, c.oid, 'SELECT'))", [name], cur=cur)[0]
                entry["sequences"] = not self.one(
                    "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind = 'S' AND NOT has_table_privilege(%s, c.oid, 'SELECT'))",
                    [name], cur=cur)[0]
                if role is not None:
                    for key, kind in (("default_tables", "r"), ("default_sequences", "S")):
                        entry[key] = self.one(
                            "SELECT EXISTS (SELECT 1 FROM pg_default_acl d, aclexplode(d.defaclacl) a "
                            "WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = %s) "
                            "AND d.defaclnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'public') "
                            "AND d.defaclobjtype = %s AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s) "
                            "AND a.privilege_type = 'SELECT')", [role, kind, name], cur=cur)[0]
            ro[name] = entry
        inside["readonly"] = ro
        cur.close()
        return inside

    # ---- helpers ----------------------------------------------------------------------------

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, queries=self.log.queries, **kwargs)

    def verifier(self, role, password):
        """The SCRAM-SHA-256 verifier of ``password``, made by libpq (PQencryptPasswordConn, through
        psycopg2's encrypt_password): SASLprep, a random salt, libpq's iteration count.
        The server then stores the verifier; the plaintext password never reaches it."""
        return encrypt_password(password, role, self.conn, "scram-sha-256")

    def run(self, query, params=None, secret=False, cur=None):
        self.log.run(cur or self.cur, query, params, secret=secret)

    def connect_db(self, name):
        return connect(self.module, self.where, dbname=name, autocommit=False, raise_errors=True, params=self.params)

    def close(self):
        try:
            self.conn.close()
        except Exception:  # pylint: disable=broad-except
            pass


def role_state(role, name, password_note=None):
    if role is None:
        return dict(name=name, exists=False)
    state = dict(name=name, exists=True, conn_limit=role["conn_limit"])
    for key, column, dummy, dummy, dummy in ROLE_ATTRIBUTES:
        state[key] = role[column]
    state["password"] = password_note or "********"
    return state


def database_state(db, name):
    if db is None:
        return dict(name=name, exists=False)
    return dict(name=name, exists=True, owner=db["owner"], encoding=db["encoding"], lc_collate=db["lc_collate"],
                lc_ctype=db["lc_ctype"])


def grants_state(db, inside, role, readonly):
    if db is None:
        return dict(connect=[], temporary=[], public_schema_create=[], readonly_roles={})
    acl = db["acl"]
    schema_create = []
    if inside is not None:
        if inside["public_create_public"]:
            schema_create.append("PUBLIC")
        if inside["role_create"]:
            schema_create.append(role)
    ro_state = {}
    for name in readonly:
        entry = dict((inside or {}).get("readonly", {}).get(name) or {})
        entry["connect"] = name in acl.get("CONNECT", set())
        ro_state[name] = dict(sorted(entry.items()))
    return dict(connect=sorted(acl.get("CONNECT", set())), temporary=sorted(acl.get("TEMPORARY", set())),
                public_schema_create=sorted(schema_create), readonly_roles=ro_state)


def refuse_admin_role(app, admin, role):
    if role == admin["name"]:
        app.fail("role %s is login_user itself; this module manages an application's own role, not the admin: choose "
                 "another role name" % role)


def present(app, module):
    p = app.params
    role, dbname, readonly, extensions = p["role"], p["database"], p["readonly_roles"], p["extensions"]
    admin = app.admin()
    refuse_admin_role(app, admin, role)
    observed_role = app.observe_role(role)
    observed_db = app.observe_database(dbname)

    # ---- refuse bad situations before changing anything ----
    if observed_db is not None:
        if observed_db["owner"] != role and not p["reassign_owner"]:
            app.fail("database %s exists and is owned by %s, not by role %s; set reassign_owner=true to make %s its owner, "
                     "or choose another database name" % (dbname, observed_db["owner"], role, role))
        if _norm_encoding(observed_db["encoding"]) != _norm_encoding(p["encoding"]):
            app.fail("database %s exists with encoding %s, not %s; the encoding cannot change after creation: set "
                     "encoding=%s or dump and restore into a new database"
                     % (dbname, observed_db["encoding"], p["encoding"], observed_db["encoding"]))
        for opt in ("lc_collate", "lc_ctype"):
            if p[opt] and observed_db[opt] != p[opt]:
                app.fail("database %s exists with %s %s, not %s; it cannot change after creation: set %s=%s or omit it"
                         % (dbname, opt, observed_db[opt], p[opt], opt, observed_db[opt]))
    for name in readonly:
        if name == role:
            app.fail("readonly_roles must not contain role %s itself" % role)
        if app.observe_role(name) is None:
            app.fail("readonly_roles: role %s does not exist; create it first or remove it from readonly_roles" % name)
    if extensions:
        app.cur.execute("SELECT name FROM pg_available_extensions WHERE name = ANY(%s)", [list(extensions)])
        available = set(r[0] for r in app.cur.fetchall())
        missing = [e for e in extensions if e not in available]
        if missing:
            app.fail("extensions not available on the server: %s; install their packages on the server or remove them "
                     "from extensions" % ", ".join(missing))

    # ---- plan the role ----
    role_clauses = []
    password_note = None
    set_password = False
    if observed_role is None:
        set_password = True
        password_note = "******** (new)"
    else:
        for key, column, wanted, yes, no in ROLE_ATTRIBUTES:
            if observed_role[column] != wanted:
                role_clauses.append(yes if wanted else no)
        if p["update_password"] == "always":
            if observed_role["verifier_readable"]:
                same = scram_password_matches(observed_role["verifier"], p["password"])
            else:
                probe_db = dbname if observed_db is not None else p["login_db"]
                same = try_login(app.where, p, role, p["password"], probe_db)
            if not same:
                set_password = True
                password_note = "******** (changed)"
    conn_limit = p["conn_limit"]
    if observed_role is not None and conn_limit is not None and observed_role["conn_limit"] != conn_limit:
        role_clauses.append("CONNECTION LIMIT %d" % conn_limit)

    needs_role_change = observed_role is None or role_clauses or set_password
    if needs_role_change and not (admin["superuser"] or admin["createrole"]):
        app.fail("login_user %s lacks CREATEROLE, which creating or changing role %s needs; grant it (ALTER ROLE %s CREATEROLE) "
                 "or connect as a superuser" % (admin["name"], role, admin["name"]))
    if observed_role is not None and observed_role["rolsuper"] and not admin["superuser"]:
        app.fail("role %s is a superuser and login_user %s is not; only a superuser can remove SUPERUSER, connect as one"
                 % (role, admin["name"]))
    if observed_db is None and not (admin["superuser"] or admin["createdb"]):
        app.fail("login_user %s lacks CREATEDB, which creating database %s needs; grant it (ALTER ROLE %s CREATEDB) or "
                 "connect as a superuser" % (admin["name"], dbname, admin["name"]))

    before = dict(role=role_state(observed_role, role), database=database_state(observed_db, dbname))
    try:
        # ---- role ----
        if observed_role is None:
            query = sql.SQL("CREATE ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS").format(
                sql.Identifier(role))
            if conn_limit is not None:
                query = query + sql.SQL(" CONNECTION LIMIT {}").format(sql.Literal(conn_limit))
            app.run(query + sql.SQL(" PASSWORD %s"), [app.verifier(role, p["password"])], secret=True)
            app.created_role = not module.check_mode
        else:
            if role_clauses:
                app.run(sql.SQL("ALTER ROLE {} WITH ").format(sql.Identifier(role)) + sql.SQL(" ".join(role_clauses)))
            if set_password:
                app.run(sql.SQL("ALTER ROLE {} WITH PASSWORD %s").format(sql.Identifier(role)),
                        [app.verifier(role, p["password"])], secret=True)
        if not admin["superuser"]:
            member = observed_role is not None and app.one("SELECT pg_has_role(current_user, %s, 'USAGE')", [role])[0]
            if not member:
                app.run(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))

        # ---- database ----
        if observed_db is None:
            query = sql.SQL("CREATE DATABASE {} WITH OWNER {} TEMPLATE template0 ENCODING {}").format(
                sql.Identifier(dbname), sql.Identifier(role), sql.Literal(p["encoding"]))
            for opt, word in (("lc_collate", "LC_COLLATE"), ("lc_ctype", "LC_CTYPE")):
                if p[opt]:
                    query = query + sql.SQL(" %s {}" % word).format(sql.Literal(p[opt]))
            app.run(query)
            app.created_database = not module.check_mode
        elif observed_db["owner"] != role:
            app.run(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(dbname), sql.Identifier(role)))

        # ---- database-level grants ----
        acl = observed_db["acl"] if observed_db is not None else {}
        public_has = [priv for priv in ("CONNECT", "TEMPORARY") if "PUBLIC" in acl.get(priv, set())]
        if observed_db is None or public_has:
            app.run(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(dbname)))
        if observed_db is not None and (role not in acl.get("CONNECT", set()) or role not in acl.get("TEMPORARY", set())):
            app.run(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(sql.Identifier(dbname), sql.Identifier(role)))
        for name in readonly:
            if name not in acl.get("CONNECT", set()):
                app.run(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(dbname), sql.Identifier(name)))

        # ---- inside the database ----
        inside = None
        dbconn = None
        try:
            if observed_db is not None or not module.check_mode:
                dbconn = app.connect_db(dbname)
                # in check mode the role may not exist yet: then nothing of it can be observed
                inside = app.observe_inside(dbconn, role if (observed_role is not None or not module.check_mode) else None,
                                            readonly)
            dcur = dbconn.cursor() if dbconn is not None else app.cur
            plan_inside(app, dcur, inside, role, readonly, extensions)
            if dbconn is not None and not module.check_mode:
                dbconn.commit()
        finally:
            if dbconn is not None:
                dbconn.close()
    except psycopg2.Error as exc:
        undo = rollback_creation(app, role, dbname)
        app.fail("PostgreSQL refused a statement: %s%s" % (to_native(exc).strip(), undo))

    before["grants"] = grants_state(observed_db, inside if observed_db is not None else None, role, readonly)
    before["extensions"] = sorted(set(extensions) & (inside["extensions"] if inside and observed_db is not None else set()))
    after = dict(
        role=dict(name=role, exists=True, login=True, superuser=False, createdb=False, createrole=False, replication=False,
                  bypassrls=False, password=password_note or "********",
                  conn_limit=conn_limit if conn_limit is not None else (observed_role["conn_limit"] if observed_role else -1)),
        database=dict(name=dbname, exists=True, owner=role, encoding=observed_db["encoding"] if observed_db else p["encoding"],
                      lc_collate=observed_db["lc_collate"] if observed_db else (p["lc_collate"] or "(server default)"),
                      lc_ctype=observed_db["lc_ctype"] if observed_db else (p["lc_ctype"] or "(server default)")),
        grants=expected_grants(before["grants"], role, readonly),
        extensions=sorted(set(extensions)),
    )
    if observed_db is None:
        before["database"] = dict(name=dbname, exists=False)
    return before, after


def plan_inside(app, cur, inside, role, readonly, extensions):
    """Statements inside the application database (all of them when it does not exist yet)."""
    ident = sql.Identifier(role)
    if inside is None:
        # check mode, database not created yet: predict template0's layout. From PostgreSQL 15 on,
        # `public` belongs to pg_database_owner (the role) and PUBLIC has no CREATE on it.
        legacy = app.server_version < 150000
        inside = dict(public_schema=True, public_create_public=legacy, role_create=not legacy, extensions=set(),
                      readonly={})
    if not inside["public_schema"]:
        app.run(sql.SQL("CREATE SCHEMA IF NOT EXISTS public AUTHORIZATION {}").format(ident), cur=cur)
    elif not inside["role_create"]:
        app.run(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(ident), cur=cur)
    if inside["public_schema"] and inside["public_create_public"]:
        app.run(sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"), cur=cur)
    for ext in extensions:
        if ext not in inside["extensions"]:
            app.run(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext)), cur=cur)
    for name in readonly:
        entry = inside["readonly"].get(name) or {}
        who = sql.Identifier(name)
        if not entry.get("usage"):
            app.run(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(who), cur=cur)
        if not entry.get("tables"):
            app.run(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(who), cur=cur)
        if not entry.get("sequences"):
            app.run(sql.SQL("GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(who), cur=cur)
        if not entry.get("default_tables"):
            app.run(sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT ON TABLES TO {}").format(ident, who),
                    cur=cur)
        if not entry.get("default_sequences"):
            app.run(sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT ON SEQUENCES TO {}").format(
                ident, who), cur=cur)


def expected_grants(before, role, readonly):
    connect = set(before["connect"]) - set(["PUBLIC"]) | set([role]) | set(readonly)
    temporary = set(before["temporary"]) - set(["PUBLIC"]) | set([role])
    schema_create = set(before["public_schema_create"]) - set(["PUBLIC"]) | set([role])
    ro = dict((name, dict(connect=True, default_sequences=True, default_tables=True, sequences=True, tables=True, usage=True))
              for name in readonly)
    return dict(connect=sorted(connect), temporary=sorted(temporary), public_schema_create=sorted(schema_create),
                readonly_roles=ro)


def rollback_creation(app, role, dbname):
    """Drop what this run created, so a failure leaves nothing half-created."""
    undone = []
    failed = []
    force = sql.SQL(" WITH (FORCE)") if app.server_version >= 130000 else sql.SQL("")
    steps = []
    if app.created_database:
        steps.append(("database %s" % dbname, sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname)) + force))
    if app.created_role:
        steps.append(("role %s" % role, sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role))))
    for what, query in steps:
        try:
            app.cur.execute(query)
            undone.append(what)
        except psycopg2.Error as exc:
            failed.append("%s (%s)" % (what, to_native(exc).strip()))
    text = ""
    if undone:
        text += "; dropped again what this run had created (%s), so nothing is half-created" % ", ".join(undone)
    if failed:
        text += "; could NOT drop again %s: remove it by hand" % ", ".join(failed)
    return text


def absent(app, module):
    p = app.params
    role, dbname = p["role"], p["database"]
    admin = app.admin()
    refuse_admin_role(app, admin, role)
    observed_role = app.observe_role(role)
    observed_db = app.observe_database(dbname)
    before = dict(role=role_state(observed_role, role), database=database_state(observed_db, dbname))
    after = dict(role=dict(name=role, exists=False), database=dict(before["database"]))
    drop_db = observed_db is not None and p["drop_database"]
    if drop_db and observed_db["owner"] not in (role, admin["name"]):
        app.fail("database %s is owned by %s, not by role %s (or login_user): refusing to drop another application's "
                 "database; drop it yourself, or set drop_database=false" % (dbname, observed_db["owner"], role))
    if observed_role is not None and not (admin["superuser"] or admin["createrole"]):
        app.fail("login_user %s lacks CREATEROLE, which dropping role %s needs; grant it or connect as a superuser"
                 % (admin["name"], role))
    try:
        if drop_db:
            force = sql.SQL(" WITH (FORCE)") if app.server_version >= 130000 else sql.SQL("")
            app.run(sql.SQL("DROP DATABASE {}").format(sql.Identifier(dbname)) + force)
            after["database"] = dict(name=dbname, exists=False)
        if observed_role is not None:
            if not admin["superuser"] and not app.one("SELECT pg_has_role(current_user, %s, 'USAGE')", [role])[0]:
                # REASSIGN OWNED / DROP OWNED need the admin to have the role's privileges
                app.run(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))
            if observed_db is not None and not drop_db:
                dbconn = app.connect_db(dbname)
                try:
                    dcur = dbconn.cursor()
                    app.run(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(sql.Identifier(role)), cur=dcur)
                    app.run(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)), cur=dcur)
                    if not module.check_mode:
                        dbconn.commit()
                finally:
                    dbconn.close()
                if observed_db["owner"] == role:
                    after["database"]["owner"] = admin["name"]
            app.run(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(sql.Identifier(role)))
            app.run(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            app.run(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    except psycopg2.Error as exc:
        app.fail("PostgreSQL refused a statement: %s; role %s may still own objects or hold privileges in other databases: "
                 "run REASSIGN OWNED BY / DROP OWNED BY %s there, then rerun" % (to_native(exc).strip(), role, role))
    return before, after


def argument_spec():
    spec = postgres_argument_spec()
    spec.update(
        database=dict(type="str", required=True, aliases=["db", "name"]),
        role=dict(type="str", required=True, aliases=["user"]),
        password=dict(type="str", no_log=True),
        password_secret=secret_reference_spec(),
        update_password=dict(type="str", default="always", choices=["always", "on_create"], no_log=False),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        conn_limit=dict(type="int"),
        encoding=dict(type="str", default="UTF8"),
        lc_collate=dict(type="str"),
        lc_ctype=dict(type="str"),
        extensions=dict(type="list", elements="str", default=[]),
        readonly_roles=dict(type="list", elements="str", default=[]),
        reassign_owner=dict(type="bool", default=False),
        drop_database=dict(type="bool", default=False),
    )
    spec.update(k8s_client.RUN_LOCK_ARG_SPEC)
    return spec


def main(module_class=AnsibleModule):
    module = module_class(
        argument_spec=argument_spec(),
        mutually_exclusive=POSTGRES_MUTUALLY_EXCLUSIVE + [("password", "password_secret")],
        required_if=[("state", "present", ["password", "password_secret"], True)],
        supports_check_mode=True,
    )
    p = module.params
    errors = []
    for option in ("database", "role"):
        msg = validate_identifier(p[option], option, allow_pg_prefix=(option != "role"))
        if msg:
            errors.append(msg)
    for option in ("readonly_roles", "extensions"):
        for item in p[option]:
            msg = validate_identifier(item, "%s item" % option)
            if msg:
                errors.append(msg)
    if p["password"] is not None and p["password"] == "":
        errors.append("password must not be empty; set a password or use state=absent")
    if p["conn_limit"] is not None and p["conn_limit"] < -1:
        errors.append("conn_limit must be -1 (no limit) or a positive number, not %d" % p["conn_limit"])
    if p["encoding"] and not p["encoding"].replace("-", "").replace("_", "").isalnum():
        errors.append("encoding %r is not an encoding name, use for example UTF8" % p["encoding"])
    if errors:
        module.fail_json(msg="; ".join(errors), queries=[], changed=False)
    require_psycopg2(module)
    # Secret references are read before anything connects; the role's password only when it is used.
    refs = [("login_password_secret", "login_password")]
    if p["state"] == "present":
        refs.append(("password_secret", "password"))
    params = resolve_secret_refs(module, refs)

    result = dict(changed=False, role=p["role"], database=p["database"], queries=[], changes=[])
    with endpoint(module) as where:
        app = AppDb(module, where, params)
        try:
            result["server_version"] = app.server_version
            if p["state"] == "present":
                before, after = present(app, module)
            else:
                before, after = absent(app, module)
        finally:
            app.close()
    result["queries"] = app.log.queries
    result["changed"] = bool(app.log.queries)
    result["changes"] = changed_keys(before, after) if result["changed"] else []
    if module._diff:
        result["diff"] = build_diff(before, after, header="role %s / database %s" % (p["role"], p["database"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
