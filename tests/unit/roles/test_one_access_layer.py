"""Every read and write of every role and playbook goes through the collection's own access layer
(its modules and the lookups k8s_read and secret_fingerprint): no task, lookup or template calls
kubernetes.core. The Molecule scenarios may, as an independent reader of what the roles did."""

import glob
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# a module, action or lookup name of kubernetes.core, as a task key or in a query/lookup call
USE = re.compile(r"""(^\s*-?\s*kubernetes\.core\.\w+\s*:|(query|lookup)\(\s*['"]kubernetes\.core\.)""", re.M)


def product_files():
    patterns = ["roles/*/tasks/*.yml", "roles/*/handlers/*.yml", "roles/*/templates/*.j2", "roles/*/vars/*.yml",
                "roles/*/defaults/*.yml", "playbooks/*.yml", "playbooks/vars/*.yml", "site.yml"]
    return sorted(f for p in patterns for f in glob.glob(os.path.join(REPO, p)))


def test_the_product_files_are_found():
    files = [os.path.relpath(f, REPO) for f in product_files()]
    assert "site.yml" in files and "roles/mastodon/tasks/main.yml" in files and len(files) > 40


def test_no_role_or_playbook_uses_kubernetes_core():
    uses = []
    for path in product_files():
        with open(path) as fh:
            for match in USE.finditer(fh.read()):
                uses.append("%s: %s" % (os.path.relpath(path, REPO), match.group(0).strip()))
    assert uses == [], "these go around the collection's access layer:\n" + "\n".join(uses)


def test_the_check_would_see_a_use():
    assert USE.search("- name: x\n  kubernetes.core.k8s:\n    state: present\n")
    assert USE.search("{{ query('kubernetes.core.k8s', kind='Pod') }}")
    assert not USE.search("# the options have kubernetes.core's names")
