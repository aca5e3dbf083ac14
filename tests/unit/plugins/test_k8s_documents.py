# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter k8s_documents: rendered group templates to one ordered list of objects."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.fediverse.mastodon.plugins.filter.k8s_documents import k8s_documents


def test_documents_of_every_template_in_order_without_empty_ones():
    texts = ["---\nkind: A\n---\nkind: B\n", None, "", "\n---\n# nothing\n", '---\n{"kind": "C", "n": "007"}']
    assert k8s_documents(texts) == [{"kind": "A"}, {"kind": "B"}, {"kind": "C", "n": "007"}]
    assert k8s_documents("kind: D") == [{"kind": "D"}]


def test_a_text_that_is_not_yaml_names_its_template():
    with pytest.raises(AnsibleFilterError, match="template 2 of the group is not valid YAML"):
        k8s_documents(["kind: A", "kind: [unclosed"])
