"""Bad input to the four backing roles is refused by argument-spec validation, the first task.

These run the real role (include_role) with a kubeconfig that points nowhere: if validation let
the input through, the role would go on to the Kubernetes tasks and fail differently, so the test
checks that the failing task is the argument-spec validation and that it names the variable.
The same cases run against the lab in the Molecule scenarios, which also assert that no object
was created.
"""

import json
import os
import subprocess
import tempfile

import pytest
import yaml

from role_render import REPO

CASES = [
    ("postgresql", {"postgresql_mode": "managed"}, "postgresql_mode"),
    ("postgresql", {"postgresql_storage_size": "-5G"}, "postgresql_storage_size"),
    ("postgresql", {"postgresql_max_connections": "many"}, "postgresql_max_connections"),
    ("postgresql", {"postgresql_pgbouncer": "perhaps"}, "postgresql_pgbouncer"),
    ("redis", {"redis_mode": "cloud"}, "redis_mode"),
    ("redis", {"redis_storage_size": "-1G"}, "redis_storage_size"),
    ("redis", {"redis_cache": {"on": 1}}, "redis_cache"),
    ("elasticsearch", {"elasticsearch_flavor": "solr"}, "elasticsearch_flavor"),
    ("elasticsearch", {"elasticsearch_memory_limit": "-2G"}, "elasticsearch_memory_limit"),
    ("elasticsearch", {"elasticsearch_heap_percent": "half"}, "elasticsearch_heap_percent"),
    ("minio", {"minio_mode": "s3"}, "minio_mode"),
    ("minio", {"minio_storage_size": "-50G"}, "minio_storage_size"),
    ("minio", {"minio_ingress_enabled": [1]}, "minio_ingress_enabled"),
]


@pytest.mark.parametrize("role,bad,name", CASES, ids=["%s-%s" % (c[0], "-".join(c[1])) for c in CASES])
def test_bad_input_fails_argument_spec_validation(role, bad, name, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    play = [{"hosts": "localhost", "gather_facts": False, "vars": bad,
             "tasks": [{"name": "role under test", "ansible.builtin.include_role": {"name": "fediverse.mastodon." + role}}]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
        yaml.safe_dump(play, fh)
        path = fh.name
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "collections"), ANSIBLE_STDOUT_CALLBACK="json",
               KUBECONFIG=str(kubeconfig), K8S_AUTH_KUBECONFIG=str(kubeconfig))
    try:
        proc = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", path], env=env,
                              capture_output=True, text=True, timeout=300, cwd=REPO, check=False)
    finally:
        os.unlink(path)
    assert proc.returncode != 0
    data = json.loads(proc.stdout[proc.stdout.find("{"):])
    tasks = data["plays"][0]["tasks"]
    failed = [t for t in tasks if t["hosts"]["localhost"].get("failed")]
    assert len(failed) == 1, [t["task"]["name"] for t in tasks]
    result = failed[0]["hosts"]["localhost"]
    assert result.get("argument_errors"), result
    assert any(name in err for err in result["argument_errors"]), result["argument_errors"]
    # validation is the role's first task: nothing ran before it
    assert [t["task"]["name"] for t in tasks][-1] == failed[0]["task"]["name"]
