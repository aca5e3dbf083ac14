# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter k8s_documents: the objects of rendered YAML templates, in order, as one list."""

from __future__ import annotations

import yaml

from ansible.errors import AnsibleFilterError


def k8s_documents(texts):
    """Every non-empty YAML document of ``texts`` (one rendered template each, or one text), in order."""
    if isinstance(texts, str):
        texts = [texts]
    objects = []
    for index, text in enumerate(texts or []):
        if not text:
            continue  # a template whose group is switched off renders nothing
        try:
            objects.extend(doc for doc in yaml.safe_load_all(str(text)) if doc)
        except yaml.YAMLError as exc:
            raise AnsibleFilterError("k8s_documents: template %d of the group is not valid YAML: %s" % (index + 1, exc)) from exc
    return objects


class FilterModule:
    def filters(self):
        return {"k8s_documents": k8s_documents}
