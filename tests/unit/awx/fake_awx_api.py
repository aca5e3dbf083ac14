# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A FAKE AWX API server on 127.0.0.1, for running the real awx.awx modules without an AWX.

AWX cannot run on these machines (it needs containers and its own database), so this stands in
for the part of its REST API (/api/v2/) that awx/configure.yml uses: named lookups with query
filters, create (POST), update (PATCH), job template credential associations and survey specs.
It applies the server-side rules of awx_emulation (survey spec endpoint, custom credential
types, credential kinds allowed on job templates) and checks references: ids that exist,
a playbook and an inventory path that exist in the project (this checkout).
Everything it accepts is recorded, so a test can assert on the objects as AWX would hold them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import awx_emulation as awx

PRODUCT_VERSION = "24.6.1"
SINGULAR = {
    "organizations": "organization", "credential_types": "credential_type", "credentials": "credential",
    "execution_environments": "execution_environment", "projects": "project", "inventories": "inventory",
    "inventory_sources": "inventory_source", "job_templates": "job_template",
}
REQUIRED = {
    "credential_types": ("name", "kind"),
    "credentials": ("name", "credential_type"),
    "execution_environments": ("name", "image"),
    "projects": ("name", "organization"),
    "inventories": ("name", "organization"),
    "inventory_sources": ("name", "inventory", "source"),
    "job_templates": ("name", "project", "playbook"),
}
REFERENCES = {  # field -> collection its id must exist in
    "organization": "organizations", "credential_type": "credential_types", "inventory": "inventories",
    "project": "projects", "source_project": "projects", "execution_environment": "execution_environments",
    "default_environment": "execution_environments", "credential": "credentials",
}
_SKIP_DIRS = {".git", ".venv", "collections", "roles", "tests", "extensions", "node_modules", ".cache", "changelogs"}


def project_playbooks(root):
    """Playbooks AWX would list for a project checked out at `root` (YAML files with plays)."""
    found = []
    for current, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
        for name in files:
            if not name.endswith((".yml", ".yaml")):
                continue
            path = os.path.join(current, name)
            try:
                with open(path) as fh:
                    text = fh.read()
            except (IOError, UnicodeDecodeError):
                continue
            if re.search(r"^\s*-?\s*(hosts|import_playbook|ansible\.builtin\.import_playbook):", text, re.M):
                found.append(os.path.relpath(path, root))
    return sorted(found)


class FakeAWX(object):
    def __init__(self, project_root, token, assume_playbooks=()):
        self.project_root = project_root
        self.assume_playbooks = list(assume_playbooks)  # referenced playbooks not written yet
        self.token = token
        self.lock = threading.Lock()
        self.db = dict((name, {}) for name in SINGULAR)
        self.surveys = {}
        self.jt_credentials = {}
        self.requests = []
        self.next_id = 100
        self._add("organizations", {"name": "Default", "description": ""})
        self.server = None

    # ---------------------------------------------------------------- storage
    def _add(self, collection, fields):
        self.next_id += 1
        obj = dict(fields)
        obj["id"] = self.next_id
        obj["type"] = SINGULAR[collection]
        obj["url"] = "/api/v2/%s/%d/" % (collection, obj["id"])
        obj["related"] = {}
        obj["summary_fields"] = {}
        if collection == "job_templates":
            obj["related"]["survey_spec"] = obj["url"] + "survey_spec/"
            obj["related"]["credentials"] = obj["url"] + "credentials/"
            self.surveys[obj["id"]] = {}
            self.jt_credentials[obj["id"]] = []
        if collection == "projects":
            obj.setdefault("scm_revision", "")
            obj["related"]["update"] = obj["url"] + "update/"
        self.db[collection][obj["id"]] = obj
        return obj

    def objects(self, collection):
        return [self.public(collection, o) for o in self.db[collection].values()]

    def by_name(self, collection, name):
        found = [o for o in self.db[collection].values() if o.get("name") == name]
        return self.public(collection, found[0]) if len(found) == 1 else None

    def public(self, collection, obj):
        """The object as the API shows it: secret credential inputs are $encrypted$."""
        obj = copy.deepcopy(obj)
        if collection == "credentials":
            ctype = self.db["credential_types"].get(obj["credential_type"], {})
            secret = [f["id"] for f in ctype.get("inputs", {}).get("fields", []) if f.get("secret")]
            for key in obj.get("inputs", {}):
                if key in secret:
                    obj["inputs"][key] = "$encrypted$"
        return obj

    def secret_input(self, name, field):
        return self.db["credentials"][self.by_name("credentials", name)["id"]]["inputs"][field]

    # ---------------------------------------------------------------- rules
    def validate(self, collection, fields, existing=None):
        merged = dict(existing or {})
        merged.update(fields)
        errors = {}
        for key in REQUIRED.get(collection, ()):
            if merged.get(key) in (None, ""):
                errors[key] = ["This field is required."]
        for key, target in REFERENCES.items():
            if merged.get(key) not in (None, "") and merged[key] not in self.db[target]:
                errors[key] = ["Invalid pk \"%s\" - object does not exist." % merged[key]]
        others = [o for o in self.db[collection].values() if o.get("name") == merged.get("name")
                  and (existing is None or o["id"] != existing["id"])
                  and o.get("organization") == merged.get("organization")
                  and o.get("inventory") == merged.get("inventory")]
        if others:
            errors["__all__"] = ["%s with this Name and Organization already exists." % SINGULAR[collection]]
        if collection == "credential_types":
            problems = awx.validate_credential_type(merged.get("kind"), merged.get("inputs", {}), merged.get("injectors", {}))
            if problems:
                errors["inputs"] = problems
        if collection == "credentials" and not errors:
            ctype = self.db["credential_types"][merged["credential_type"]]
            ids = [f["id"] for f in ctype.get("inputs", {}).get("fields", [])]
            unknown = [k for k in merged.get("inputs", {}) if k not in ids]
            missing = [k for k in ctype.get("inputs", {}).get("required", []) if not merged.get("inputs", {}).get(k)]
            if unknown or missing:
                errors["inputs"] = {"unknown": unknown, "missing": missing}
        if collection == "projects" and merged.get("scm_type") == "git" and not merged.get("scm_url"):
            errors["scm_url"] = ["SCM URL is required."]
        if collection == "job_templates" and not errors:
            if merged.get("inventory") is None and not merged.get("ask_inventory_on_launch"):
                errors["inventory"] = ["Job Templates must have an inventory or allow prompting for it."]
            if merged.get("playbook") not in project_playbooks(self.project_root) + self.assume_playbooks:
                errors["playbook"] = ["Playbook not found for project."]
        if collection == "inventory_sources" and merged.get("source") == "scm":
            if not merged.get("source_project"):
                errors["source_project"] = ["Project required for scm type sources."]
            path = merged.get("source_path") or ""
            if not os.path.exists(os.path.join(self.project_root, path)):
                errors["source_path"] = ["%s is not in the project." % path]
        return errors

    # ---------------------------------------------------------------- HTTP
    def start(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _send(self, code, body=None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-API-Product-Name", "AWX")
                self.send_header("X-API-Product-Version", PRODUCT_VERSION)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self):
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}") if length else {}

            def _dispatch(self, method):
                url = urlparse(self.path)
                fake.requests.append((method, url.path))
                if self.headers.get("Authorization") != "Bearer " + fake.token:
                    return self._send(401, {"detail": "Authentication credentials were not provided."})
                parts = [p for p in url.path.split("/") if p]
                if parts[:2] != ["api", "v2"] or len(parts) < 3 or parts[2] not in SINGULAR:
                    return self._send(404, {"detail": "Not found."})
                collection = parts[2]
                with fake.lock:
                    if len(parts) == 3:
                        return self._collection(method, collection, parse_qs(url.query))
                    obj = fake.db[collection].get(int(parts[3])) if parts[3].isdigit() else None
                    if obj is None:
                        return self._send(404, {"detail": "Not found."})
                    if len(parts) == 4:
                        return self._detail(method, collection, obj)
                    return self._sub(method, collection, obj, parts[4])

            def _collection(self, method, collection, query):
                if method == "GET":
                    results = []
                    for obj in fake.db[collection].values():
                        ors = [(k[4:], v[0]) for k, v in query.items() if k.startswith("or__")]
                        ands = [(k, v[0]) for k, v in query.items() if not k.startswith("or__") and k not in ("page", "page_size")]
                        if ors and not any(str(obj.get(k)) == v for k, v in ors):
                            continue
                        if all(str(obj.get(k)) == v for k, v in ands):
                            results.append(fake.public(collection, obj))
                    return self._send(200, {"count": len(results), "next": None, "previous": None, "results": results})
                if method == "POST":
                    fields = self._body()
                    errors = fake.validate(collection, fields)
                    if errors:
                        return self._send(400, errors)
                    return self._send(201, fake.public(collection, fake._add(collection, fields)))
                return self._send(405, {"detail": "Method not allowed."})

            def _detail(self, method, collection, obj):
                if method == "GET":
                    return self._send(200, fake.public(collection, obj))
                if method == "PATCH":
                    fields = self._body()
                    errors = fake.validate(collection, fields, existing=obj)
                    if errors:
                        return self._send(400, errors)
                    if collection == "credentials" and "inputs" in fields:
                        merged = dict(obj.get("inputs", {}))
                        merged.update(dict((k, v) for k, v in fields["inputs"].items() if v != "$encrypted$"))
                        fields = dict(fields, inputs=merged)
                    obj.update(fields)
                    return self._send(200, fake.public(collection, obj))
                if method == "DELETE":
                    del fake.db[collection][obj["id"]]
                    return self._send(204)
                return self._send(405, {"detail": "Method not allowed."})

            def _sub(self, method, collection, obj, sub):
                if collection == "job_templates" and sub == "survey_spec":
                    if method == "GET":
                        return self._send(200, fake.surveys[obj["id"]])
                    if method == "POST":
                        spec = self._body()
                        problems = awx.validate_survey_spec(spec)
                        if problems:
                            return self._send(400, {"error": "; ".join(problems)})
                        fake.surveys[obj["id"]] = spec
                        return self._send(200)
                    if method == "DELETE":
                        fake.surveys[obj["id"]] = {}
                        return self._send(200)
                if collection == "job_templates" and sub == "credentials":
                    linked = fake.jt_credentials[obj["id"]]
                    if method == "GET":
                        results = [fake.public("credentials", fake.db["credentials"][i]) for i in linked]
                        return self._send(200, {"count": len(results), "next": None, "previous": None, "results": results})
                    if method == "POST":
                        body = self._body()
                        cred = fake.db["credentials"].get(body.get("id"))
                        if cred is None:
                            return self._send(400, {"msg": "no such credential"})
                        if body.get("disassociate"):
                            linked.remove(cred["id"])
                            return self._send(204)
                        kind = fake.db["credential_types"][cred["credential_type"]]["kind"]
                        if kind not in ("ssh", "vault", "cloud", "net"):
                            return self._send(400, {"msg": "Cannot assign a Credential of kind `%s`." % kind})
                        if any(fake.db["credentials"][i]["credential_type"] == cred["credential_type"] for i in linked):
                            return self._send(400, {"msg": "Cannot assign multiple credentials of one type."})
                        linked.append(cred["id"])
                        return self._send(204)
                return self._send(404, {"detail": "Not found."})

            def do_GET(self):  # noqa: N802
                self._dispatch("GET")

            def do_POST(self):  # noqa: N802
                self._dispatch("POST")

            def do_PATCH(self):  # noqa: N802
                self._dispatch("PATCH")

            def do_DELETE(self):  # noqa: N802
                self._dispatch("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
