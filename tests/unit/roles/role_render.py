"""Render a role's in-cluster objects through the real ansible-playbook (no cluster needed).

Each role has tasks/render.yml, which renders templates/objects.yml.j2 with the role's defaults
and vars into the fact `<role>_rendered_objects`. The fixture runs it with extra variables and
returns the list of objects, so tests can check them against the Kubernetes OpenAPI schemas
(kubernetes-validate) and assert on their content.
"""

import json
import os
import subprocess
import tempfile

import kubernetes_validate
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# Two supported minor versions: the lab's (1.36) and the oldest we claim (1.34).
KUBERNETES_VERSIONS = ("1.34.0", "1.36.0")


def render_role(role, extra_vars=None):
    play = [{
        "hosts": "localhost",
        "gather_facts": False,
        "vars": dict(extra_vars or {}),
        "tasks": [{"name": "render", "ansible.builtin.include_role": {
            "name": "fediverse.mastodon." + role, "tasks_from": "render.yml"}}],
    }]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
        yaml.safe_dump(play, fh)
        path = fh.name
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO, "collections"),
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
    })
    try:
        proc = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", path],
                              env=env, capture_output=True, text=True, timeout=300, cwd=REPO, check=False)
    finally:
        os.unlink(path)
    start = proc.stdout.find("{")
    assert start >= 0 and proc.returncode == 0, "render of %s failed:\n%s\n%s" % (role, proc.stdout, proc.stderr)
    data = json.loads(proc.stdout[start:])
    result = data["plays"][0]["tasks"][-1]["hosts"]["localhost"]
    return result["ansible_facts"]["%s_rendered_objects" % role]


def by_kind(objects, kind, name=None):
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert found, "no %s %s among %s" % (kind, name or "", [(o["kind"], o["metadata"]["name"]) for o in objects])
    return found


def matches(selector, labels):
    """True when a matchLabels selector selects an object with these labels."""
    return all(labels.get(k) == v for k, v in selector.items())


def check_pod_security(pod_spec):
    """The hardening issue 7 asks for, on the pod and on every container."""
    psc = pod_spec["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] > 0
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in pod_spec.get("initContainers", []) + pod_spec["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert sc["runAsNonRoot"] is True, c["name"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]
        assert set(c["resources"]["requests"]) == {"cpu", "memory"}, c["name"]
        assert "memory" in c["resources"]["limits"], c["name"]


def validate_all(objects, version):
    """Validate every object strictly (unknown fields are errors) against one Kubernetes version."""
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)
