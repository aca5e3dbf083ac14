#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: endpoint_check
short_description: Log in to PostgreSQL, Redis, S3 and SMTP for real and report every problem at once
version_added: "1.0.0"
description:
  - Checks the external services a Mastodon instance uses with the credentials it will use,
    before anything is deployed. Every section of O(checks) that is given is checked; the
    checks run in parallel, and the module reports all the problems it found, not only the
    first.
  - C(postgresql) logs in with psycopg2 and reads the server version.
  - C(redis) sends C(AUTH) (when a password is given), C(PING) and C(INFO server) over a plain
    or TLS socket. The module speaks the Redis protocol (RESP) itself, so no Redis library is
    needed.
  - C(s3) lists at most one key of the bucket with boto3. A missing bucket is created when
    C(create_bucket=true) (never in check mode, and only when no other section found a
    problem, and O(allow_changes=true)); otherwise it is a problem.
  - C(smtp) connects, sends C(EHLO), upgrades with C(STARTTLS) or uses implicit TLS as
    configured, and authenticates when a user is given. It never sends mail, and never sends
    C(AUTH) over an unencrypted connection unless O(checks.smtp.security=none) says so.
  - "Each problem is one line that starts with the name of the variable to fix, taken from the
    section's C(variables) mapping (for example
    C(mastodon_smtp_password: the SMTP server refused AUTH for user bob (535 ...)))."
  - Passwords and secret keys never appear in the messages.
  - Credentials can be given by reference to a Kubernetes Secret (C(password_secret),
    C(access_key_secret), C(secret_key_secret), C(login_secret)); the module reads them itself
    with the Kubernetes options (O(kubeconfig), O(context), ...), which are used only then. A
    reference that cannot be read is a problem like any other, and its section is skipped.
  - The checks only read, except the bucket creation, so they also run in check mode.
author:
  - fediverse.mastodon contributors (@fediverse-mastodon)
extends_documentation_fragment:
  - fediverse.mastodon.k8s_auth
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Every check runs in check mode too (they only read); a bucket that would be created is reported, not created.
  diff_mode:
    support: full
    details: Shows the bucket that is (or would be) created.
  platform:
    platforms: posix
options:
  checks:
    description:
      - The services to check. A section that is left out (or null) is not checked.
    type: dict
    required: true
    suboptions:
      postgresql:
        description: Log in to a PostgreSQL server.
        type: dict
        suboptions:
          host:
            description: Host name or address of the server.
            type: str
            required: true
          port:
            description: Port of the server.
            type: int
            default: 5432
          user:
            description: Role to log in as.
            type: str
            required: true
          password:
            description: Password of O(checks.postgresql.user). Never logged.
            type: str
          password_secret:
            description:
              - The password of O(checks.postgresql.user), read from a Kubernetes Secret by the
                module itself instead of O(checks.postgresql.password), so that the value never
                passes through an Ansible variable, a fact or a log.
              - A Secret or key that cannot be read is a problem that names the variable of
                O(checks.postgresql.password) (from O(checks.postgresql.variables)), the Secret and the key,
                and the postgresql check is skipped.
              - Mutually exclusive with O(checks.postgresql.password).
            type: dict
            suboptions:
              name:
                description: Name of the Secret.
                type: str
                required: true
              key:
                description: Key of the Secret's data that holds the value.
                type: str
                required: true
              namespace:
                description: Namespace of the Secret. Defaults to O(namespace).
                type: str
          database:
            description: Database to connect to.
            type: str
            default: postgres
          sslmode:
            description: libpq sslmode.
            type: str
            default: prefer
            choices: [disable, allow, prefer, require, verify-ca, verify-full]
          ca_cert:
            description: CA file for sslmode verify-ca and verify-full.
            type: path
          min_version:
            description: Lowest server version accepted, for example V(13). Null accepts any.
            type: str
          timeout:
            description: Seconds to wait for the connection.
            type: int
            default: 10
          variables:
            description:
              - Option name -> name of the variable the operator sets, used in the messages
                (for example C(password) -> C(vault_db_password)). Options not listed are named
                C(checks.postgresql.<option>).
            type: dict
            default: {}
      redis:
        description: AUTH and PING a Redis server.
        type: dict
        suboptions:
          host:
            description: Host name or address of the server.
            type: str
            required: true
          port:
            description: Port of the server.
            type: int
            default: 6379
          username:
            description: ACL user (Redis 6 and later). Null authenticates with the password only.
            type: str
          password:
            description: Password. Null (and no O(checks.redis.password_secret)) sends no AUTH. Never logged.
            type: str
          password_secret:
            description:
              - The password, read from a Kubernetes Secret by the module itself instead of O(checks.redis.password),
                so that the value never passes through an Ansible variable, a fact or a log.
              - A Secret or key that cannot be read is a problem that names the variable of
                O(checks.redis.password) (from O(checks.redis.variables)), the Secret and the key,
                and the redis check is skipped.
              - Mutually exclusive with O(checks.redis.password).
            type: dict
            suboptions:
              name:
                description: Name of the Secret.
                type: str
                required: true
              key:
                description: Key of the Secret's data that holds the value.
                type: str
                required: true
              namespace:
                description: Namespace of the Secret. Defaults to O(namespace).
                type: str
          tls:
            description: Speak TLS (C(rediss://)).
            type: bool
            default: false
          validate_certs:
            description: Verify the server certificate when O(checks.redis.tls=true).
            type: bool
            default: true
          ca_cert:
            description: CA file to verify the server certificate with.
            type: path
          min_version:
            description: Lowest server version accepted, for example V(6.2). Null accepts any.
            type: str
          timeout:
            description: Seconds to wait for the connection and each reply.
            type: int
            default: 10
          variables:
            description: Option name -> variable name for the messages, as for O(checks.postgresql.variables).
            type: dict
            default: {}
      s3:
        description: List (or create) a bucket on an S3 endpoint.
        type: dict
        suboptions:
          endpoint:
            description: URL of the endpoint, for example V(https://s3.eu-central-1.amazonaws.com).
            type: str
            required: true
          access_key:
            description:
              - Access key id.
              - One of O(checks.s3.access_key) and O(checks.s3.access_key_secret) is required.
            type: str
          access_key_secret:
            description:
              - The access key id, read from a Kubernetes Secret by the module itself instead of O(checks.s3.access_key),
                so that the value never passes through an Ansible variable, a fact or a log.
              - A Secret or key that cannot be read is a problem that names the variable of
                O(checks.s3.access_key) (from O(checks.s3.variables)), the Secret and the key,
                and the s3 check is skipped.
              - Mutually exclusive with O(checks.s3.access_key).
            type: dict
            suboptions:
              name:
                description: Name of the Secret.
                type: str
                required: true
              key:
                description: Key of the Secret's data that holds the value.
                type: str
                required: true
              namespace:
                description: Namespace of the Secret. Defaults to O(namespace).
                type: str
          secret_key:
            description:
              - Secret access key. Never logged.
              - One of O(checks.s3.secret_key) and O(checks.s3.secret_key_secret) is required.
            type: str
          secret_key_secret:
            description:
              - The secret access key, read from a Kubernetes Secret by the module itself instead of O(checks.s3.secret_key),
                so that the value never passes through an Ansible variable, a fact or a log.
              - A Secret or key that cannot be read is a problem that names the variable of
                O(checks.s3.secret_key) (from O(checks.s3.variables)), the Secret and the key,
                and the s3 check is skipped.
              - Mutually exclusive with O(checks.s3.secret_key).
            type: dict
            suboptions:
              name:
                description: Name of the Secret.
                type: str
                required: true
              key:
                description: Key of the Secret's data that holds the value.
                type: str
                required: true
              namespace:
                description: Namespace of the Secret. Defaults to O(namespace).
                type: str
          region:
            description: Region to sign requests for.
            type: str
            default: us-east-1
          bucket:
            description: Bucket to list.
            type: str
            required: true
          create_bucket:
            description:
              - Create the bucket when it does not exist. Skipped in check mode (the result says
                C(would_create)), and deferred when another section found a problem (the result
                says C(create_deferred)).
              - When false, a missing bucket is a problem.
            type: bool
            default: false
          validate_certs:
            description: Verify the endpoint's certificate.
            type: bool
            default: true
          ca_cert:
            description: CA file to verify the endpoint's certificate with.
            type: path
          timeout:
            description: Seconds to wait for the connection.
            type: int
            default: 10
          variables:
            description: Option name -> variable name for the messages, as for O(checks.postgresql.variables).
            type: dict
            default: {}
      smtp:
        description: Connect to an SMTP server, secure the connection, and authenticate. No mail is sent.
        type: dict
        suboptions:
          host:
            description: Host name or address of the server.
            type: str
            required: true
          port:
            description: Port of the server.
            type: int
            default: 587
          security:
            description:
              - V(starttls) requires STARTTLS, V(tls) speaks TLS from the first byte (usually
                port 465), V(none) stays in plain text, V(auto) uses STARTTLS when the server
                offers it (what Mastodon's C(SMTP_ENABLE_STARTTLS=auto) does).
              - AUTH is never sent over an unencrypted connection, except with V(none), which
                is the explicit choice of clear-text AUTH (C(mastodon_smtp_enable_starttls=never)).
                With V(auto), a server that does not offer STARTTLS and a configured user is a
                problem, and nothing is sent; without a user, V(auto) passes in plain text, as
                no secret is sent.
            type: str
            default: starttls
            choices: [starttls, tls, none, auto]
          user:
            description: User to authenticate as. Null (and no O(checks.smtp.login_secret)) skips AUTH.
            type: str
          login_secret:
            description:
              - The user to authenticate as, read from a Kubernetes Secret by the module itself instead of O(checks.smtp.user),
                so that the value never passes through an Ansible variable, a fact or a log.
              - A Secret or key that cannot be read is a problem that names the variable of
                O(checks.smtp.user) (from O(checks.smtp.variables)), the Secret and the key,
                and the smtp check is skipped. Messages name the Secret, not the login.
              - Mutually exclusive with O(checks.smtp.user).
            type: dict
            suboptions:
              name:
                description: Name of the Secret.
                type: str
                required: true
              key:
                description: Key of the Secret's data that holds the value.
                type: str
                required: true
              namespace:
                description: Namespace of the Secret. Defaults to O(namespace).
                type: str
          password:
            description: Password of O(checks.smtp.user). Never logged.
            type: str
          password_secret:
            description:
              - The password, read from a Kubernetes Secret by the module itself instead of O(checks.smtp.password),
                so that the value never passes through an Ansible variable, a fact or a log.
              - A Secret or key that cannot be read is a problem that names the variable of
                O(checks.smtp.password) (from O(checks.smtp.variables)), the Secret and the key,
                and the smtp check is skipped.
              - Mutually exclusive with O(checks.smtp.password).
            type: dict
            suboptions:
              name:
                description: Name of the Secret.
                type: str
                required: true
              key:
                description: Key of the Secret's data that holds the value.
                type: str
                required: true
              namespace:
                description: Namespace of the Secret. Defaults to O(namespace).
                type: str
          auth_method:
            description:
              - SASL mechanism for AUTH, as Mastodon's C(SMTP_AUTH_METHOD). V(auto) takes the first
                of PLAIN, LOGIN and CRAM-MD5 that the server offers.
              - Only one attempt is made, with one mechanism, so a wrong password counts as one
                failed login at the provider.
            type: str
            default: auto
            choices: [auto, cram_md5, login, plain]
          helo_name:
            description: Name sent with EHLO. Null is the controller's FQDN.
            type: str
          validate_certs:
            description: Verify the server certificate.
            type: bool
            default: true
          ca_cert:
            description: CA file to verify the server certificate with.
            type: path
          timeout:
            description: Seconds to wait for the connection and each reply.
            type: int
            default: 10
          variables:
            description: Option name -> variable name for the messages, as for O(checks.postgresql.variables).
            type: dict
            default: {}
      search:
        description:
          - Log in to an OpenSearch or Elasticsearch server over HTTP(S) with basic authentication
            (C(GET /)) and read its version. Only reads.
        type: dict
        suboptions:
          host:
            description: Host name or address of the server.
            type: str
            required: true
          port:
            description: Port of the server.
            type: int
            default: 9200
          scheme:
            description: V(https) or V(http).
            type: str
            default: https
            choices: [http, https]
          user:
            description: User to log in as. Null sends no credentials.
            type: str
          password:
            description: Password of O(checks.search.user). Never logged.
            type: str
          password_secret:
            description:
              - The password, read from a Kubernetes Secret by the module itself instead of O(checks.search.password).
              - A Secret or key that cannot be read is a problem that names the variable of
                O(checks.search.password), the Secret and the key, and the search check is skipped.
              - Mutually exclusive with O(checks.search.password).
            type: dict
            suboptions:
              name:
                description: Name of the Secret.
                type: str
                required: true
              key:
                description: Key of the Secret's data that holds the value.
                type: str
                required: true
              namespace:
                description: Namespace of the Secret. Defaults to O(namespace).
                type: str
          validate_certs:
            description: Verify the server certificate (https).
            type: bool
            default: true
          ca_cert:
            description: CA file to verify the server certificate with.
            type: path
          timeout:
            description: Seconds to wait for the answer.
            type: int
            default: 10
          variables:
            description: Option name -> variable name for the messages, as for O(checks.postgresql.variables).
            type: dict
            default: {}
  namespace:
    description:
      - Namespace of the Secrets that the C(*_secret) references name without their own
        C(namespace).
      - Needed only when such a reference is given.
    type: str
  allow_changes:
    description:
      - V(false) creates nothing, even when O(checks.s3.create_bucket=true) and every section
        passed; the missing bucket is then reported as C(create_deferred), not as a problem. A
        caller that found problems of its own passes V(false).
    type: bool
    default: true
  fail_on_problem:
    description:
      - Fail when any problem is found, with all of them in C(msg) and RV(problems).
      - When false, the module succeeds and returns the problems, so that a caller can add
        them to its own list.
    type: bool
    default: true
requirements:
  - psycopg2 (for C(postgresql))
  - boto3 (for C(s3))
  - kubernetes (only for the C(*_secret) references)
notes:
  - The Redis check needs no library. C(smtplib) and C(ssl) come with Python.
'''

EXAMPLES = r'''
- name: Check the external services with the operator's credentials
  fediverse.mastodon.endpoint_check:
    checks:
      postgresql:
        host: db.example.org
        user: postgres
        password: "{{ vault_postgresql_password }}"
        sslmode: require
        min_version: "13"
        variables: {host: postgresql_external_host, password: vault_postgresql_password}
      redis:
        host: redis.example.org
        password: "{{ vault_redis_password }}"
        tls: true
        variables: {password: vault_redis_password}
      s3:
        endpoint: https://s3.eu-central-1.amazonaws.com
        region: eu-central-1
        access_key: "{{ vault_s3_access_key }}"
        secret_key: "{{ vault_s3_secret_key }}"
        bucket: social-media
        create_bucket: true
      smtp:
        host: smtp.example.org
        port: 587
        security: starttls
        user: notifications@example.org
        password: "{{ vault_smtp_password }}"
        variables: {host: mastodon_smtp_server, port: mastodon_smtp_port, user: mastodon_smtp_login,
                    password: mastodon_smtp_password}

- name: Read the credentials from Secrets in the cluster (nothing secret in a variable)
  fediverse.mastodon.endpoint_check:
    namespace: social
    checks:
      postgresql:
        host: db.example.org
        user: postgres
        password_secret: {name: social-postgresql-external, key: postgres-password}
        variables: {password: postgresql_external_admin_secret}
      s3:
        endpoint: https://s3.eu-central-1.amazonaws.com
        region: eu-central-1
        access_key_secret: {name: social-s3-external, key: access-key}
        secret_key_secret: {name: social-s3-external, key: secret-key}
        bucket: social-media
      smtp:
        host: smtp.example.org
        security: auto
        login_secret: {name: smtp, key: login, namespace: mail}
        password_secret: {name: smtp, key: password, namespace: mail}

- name: Collect the problems without failing
  fediverse.mastodon.endpoint_check:
    checks:
      smtp: {host: smtp.example.org, port: 465, security: tls}
    fail_on_problem: false
  register: smtp_check
'''

RETURN = r'''
problems:
  description: One message per problem, each starting with the variable to fix. Empty when everything passed.
  returned: always
  type: list
  elements: str
  sample: ["mastodon_smtp_password: the SMTP server refused AUTH for user bob (535 5.7.8 Authentication credentials invalid); check mastodon_smtp_login too"]
services:
  description: What each checked section found. (Not called C(results), which Ansible reserves for loops.)
  returned: always
  type: dict
  contains:
    postgresql:
      description:
        - C(ok), C(host), C(port), C(user), C(database), C(server_version) (text, as the server reports it), C(ssl).
        - Only C(ok=false) and C(skipped=true) when a Secret reference could not be read.
      returned: when checked
      type: dict
      sample: {ok: true, host: db.example.org, port: 5432, user: postgres, database: postgres, server_version: "16.4", ssl: true}
    redis:
      description:
        - C(ok), C(host), C(port), C(tls), C(server_version) (null when C(INFO) is not allowed).
        - Only C(ok=false) and C(skipped=true) when a Secret reference could not be read.
      returned: when checked
      type: dict
      sample: {ok: true, host: redis.example.org, port: 6379, tls: true, server_version: "7.4.2"}
    s3:
      description:
        - C(ok), C(endpoint), C(bucket), C(bucket_exists), C(created), C(would_create) (check mode), C(create_deferred).
        - Only C(ok=false) and C(skipped=true) when a Secret reference could not be read.
      returned: when checked
      type: dict
      sample: {ok: true, endpoint: "https://s3.example.org", bucket: social-media, bucket_exists: true, created: false,
               would_create: false, create_deferred: false}
    smtp:
      description:
        - C(ok), C(host), C(port), C(security), C(tls) (the session was encrypted), C(auth) (AUTH succeeded),
          C(banner) (EHLO reply), C(auth_mechanism).
        - Only C(ok=false) and C(skipped=true) when a Secret reference could not be read.
      returned: when checked
      type: dict
      sample: {ok: true, host: smtp.example.org, port: 587, security: starttls, tls: true, auth: true, banner: "smtp.example.org"}
    search:
      description:
        - C(ok), C(url), C(distribution) (opensearch or elasticsearch), C(server_version).
        - Only C(ok=false) and C(skipped=true) when a Secret reference could not be read.
      returned: when checked
      type: dict
      sample: {ok: true, url: "https://search.example.org:9200", distribution: opensearch, server_version: "2.19.4"}
'''

import threading

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.fediverse.mastodon.plugins.module_utils import endpoint_checks as ec
from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_client
from ansible_collections.fediverse.mastodon.plugins.module_utils import k8s_secret


def _section(options, **rules):
    spec = dict(type="dict", options=options)
    spec.update(rules)
    return spec


def _ref():
    # names a Secret and a key, never a value: not no_log (the names appear in messages)
    spec = k8s_secret.secret_ref_spec(no_log=False)
    spec["options"]["key"]["no_log"] = False
    return spec


ARGUMENT_SPEC = dict(
    checks=dict(type="dict", required=True, options=dict(
        postgresql=_section(dict(
            host=dict(type="str", required=True),
            port=dict(type="int", default=5432),
            user=dict(type="str", required=True),
            password=dict(type="str", no_log=True),
            password_secret=_ref(),
            database=dict(type="str", default="postgres"),
            sslmode=dict(type="str", default="prefer", choices=ec.SSL_MODES),
            ca_cert=dict(type="path"),
            min_version=dict(type="str"),
            timeout=dict(type="int", default=10),
            variables=dict(type="dict", default={}),
        ), mutually_exclusive=[["password", "password_secret"]]),
        redis=_section(dict(
            host=dict(type="str", required=True),
            port=dict(type="int", default=6379),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            password_secret=_ref(),
            tls=dict(type="bool", default=False),
            validate_certs=dict(type="bool", default=True),
            ca_cert=dict(type="path"),
            min_version=dict(type="str"),
            timeout=dict(type="int", default=10),
            variables=dict(type="dict", default={}),
        ), mutually_exclusive=[["password", "password_secret"]]),
        s3=_section(dict(
            endpoint=dict(type="str", required=True),
            access_key=dict(type="str", no_log=False),
            access_key_secret=_ref(),
            secret_key=dict(type="str", no_log=True),
            secret_key_secret=_ref(),
            region=dict(type="str", default="us-east-1"),
            bucket=dict(type="str", required=True),
            create_bucket=dict(type="bool", default=False),
            validate_certs=dict(type="bool", default=True),
            ca_cert=dict(type="path"),
            timeout=dict(type="int", default=10),
            variables=dict(type="dict", default={}),
        ), mutually_exclusive=[["access_key", "access_key_secret"], ["secret_key", "secret_key_secret"]],
            required_one_of=[["access_key", "access_key_secret"], ["secret_key", "secret_key_secret"]]),
        smtp=_section(dict(
            host=dict(type="str", required=True),
            port=dict(type="int", default=587),
            security=dict(type="str", default="starttls", choices=ec.SMTP_SECURITY),
            user=dict(type="str"),
            login_secret=_ref(),
            password=dict(type="str", no_log=True),
            password_secret=_ref(),
            auth_method=dict(type="str", default="auto", choices=sorted(ec.SMTP_AUTH_METHODS)),
            helo_name=dict(type="str"),
            validate_certs=dict(type="bool", default=True),
            ca_cert=dict(type="path"),
            timeout=dict(type="int", default=10),
            variables=dict(type="dict", default={}),
        ), mutually_exclusive=[["user", "login_secret"], ["password", "password_secret"]]),
        search=_section(dict(
            host=dict(type="str", required=True),
            port=dict(type="int", default=9200),
            scheme=dict(type="str", default="https", choices=["http", "https"]),
            user=dict(type="str"),
            password=dict(type="str", no_log=True),
            password_secret=_ref(),
            validate_certs=dict(type="bool", default=True),
            ca_cert=dict(type="path"),
            timeout=dict(type="int", default=10),
            variables=dict(type="dict", default={}),
        ), mutually_exclusive=[["password", "password_secret"]]),
    )),
    namespace=dict(type="str"),
    allow_changes=dict(type="bool", default=True),
    fail_on_problem=dict(type="bool", default=True),
)
ARGUMENT_SPEC.update(k8s_client.K8S_AUTH_ARG_SPEC)


def default_runners(check_mode):
    """section -> function(params) -> (result, problems); s3_create makes the deferred bucket."""
    return dict(
        postgresql=ec.check_postgresql,
        redis=ec.check_redis,
        smtp=ec.check_smtp,
        search=ec.check_search,
        s3=lambda p: ec.check_s3(p, check_mode=check_mode, may_create=False),
        s3_create=lambda p: ec.check_s3(p, check_mode=check_mode, may_create=True),
    )


def run_checks(checks, check_mode=False, runners=None, allow_changes=True, skipped=None):
    """Run every given section in parallel. Returns (results, problems), problems in section order.

    ``skipped`` maps sections that must not run (a Secret reference could not be read) to their
    problems; their result is ``{ok: false, skipped: true}``. A missing bucket is created only
    after every section passed (a second S3 call), and only when ``allow_changes``.
    """
    run = default_runners(check_mode)
    run.update(runners or {})
    skipped = skipped or {}
    outcome = dict((section, (dict(ok=False, skipped=True), list(problems))) for section, problems in skipped.items())

    def work(section):
        try:
            outcome[section] = run[section](checks[section])
        except Exception as exc:  # pylint: disable=broad-except
            params = checks[section]
            name = ec.variable_names(section, params)
            secrets = ec.section_secrets(params, "password", "secret_key")
            outcome[section] = (dict(ok=False), [ec.scrub("%s: the %s check failed unexpectedly (%s: %s)" % (
                name("endpoint" if section == "s3" else "host"), section, type(exc).__name__, ec.one_line(exc)), secrets)])

    sections = [s for s in ec.SECTIONS if checks.get(s)]
    threads = [threading.Thread(target=work, args=(s,)) for s in sections if s not in skipped]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = dict((s, outcome[s][0]) for s in sections)
    problems = []
    for section in sections:
        problems.extend(outcome[section][1])
    if results.get("s3", {}).get("create_deferred") and not problems and allow_changes:
        results["s3"], s3_problems = run["s3_create"](checks["s3"])
        problems.extend(s3_problems)
    return results, problems


def s3_has_boto3():
    """Whether boto3 imports (imported only when an S3 check is asked: it is slow to import)."""
    from ansible_collections.fediverse.mastodon.plugins.module_utils import s3 as s3u
    return s3u.HAS_BOTO3


def resolve_secrets(module, checks):
    """Read the Secret references of ``checks`` (only when there is one): (resolved checks, skipped sections).

    Every value read is added to the module's no_log values, so Ansible masks it in anything
    the module returns, on top of the scrubbing of the messages.
    """
    if not ec.secret_refs(checks):
        return checks, {}
    no_namespace = ec.refs_without_namespace(checks, module.params["namespace"])
    if no_namespace:
        module.fail_json(msg="%s: no namespace for the Secret; set the module option namespace, or namespace in %s"
                         % (", ".join(no_namespace), " and ".join(no_namespace)))
    if not k8s_client.HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes") + " (needed for the *_secret references)",
                         exception=str(k8s_client.KUBERNETES_IMPORT_ERROR))
    client = {}

    def read_value(namespace, ref, option):
        # the client is built once, at the first reference; a failure is reported for every reference
        if "api" not in client:
            try:
                client["api"] = k8s_client.build_api_client(module.params)
            except Exception as exc:  # pylint: disable=broad-except
                client["api"] = exc
        if isinstance(client["api"], Exception):
            raise client["api"]
        return k8s_secret.read_secret_value(client["api"], namespace, ref, option)

    resolved, skipped, values = ec.resolve_secret_refs(checks, module.params["namespace"], read_value,
                                                       readable_errors=(k8s_secret.SecretStoreError,))
    for value in values:
        if value:
            module.no_log_values.add(value)
    return resolved, skipped


def main(module_class=AnsibleModule):
    module = module_class(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    checks = module.params["checks"]
    if not any(checks.get(s) for s in ec.SECTIONS):
        module.exit_json(changed=False, problems=[], services={}, msg="Nothing to check: checks has no section.")
    if checks.get("postgresql") and not ec.HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2-binary") + " (needed for checks.postgresql)")
    if checks.get("s3") and not s3_has_boto3():
        module.fail_json(msg=missing_required_lib("boto3") + " (needed for checks.s3)")

    checks, skipped = resolve_secrets(module, checks)
    results, problems = run_checks(checks, check_mode=module.check_mode, allow_changes=module.params["allow_changes"],
                                   skipped=skipped)
    s3_result = results.get("s3") or {}
    changed = bool(s3_result.get("created") or s3_result.get("would_create"))
    out = dict(changed=changed, problems=problems, services=results)
    if changed and module._diff:
        out["diff"] = dict(before_header="bucket %s" % s3_result["bucket"], after_header="bucket %s" % s3_result["bucket"],
                           before="absent\n", after="present\n")
    if problems and module.params["fail_on_problem"]:
        module.fail_json(msg="%d problem(s) found:\n- %s" % (len(problems), "\n- ".join(problems)), **out)
    checked = ", ".join(sorted(results))
    out["msg"] = "%s: %s" % ("Problems found" if problems else "All checks passed", checked)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
