# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugin_utils/k8s_lookup.py: the Secret fingerprint keeps the checksum the role computed in Jinja
before (so pods do not roll when the collection is upgraded) and names what is missing."""

from __future__ import annotations

import hashlib

from ansible.plugins.filter.core import to_json

from ansible_collections.fediverse.mastodon.plugins.plugin_utils import k8s_lookup

REFS = [{"secret": "app", "key": "SECRET_KEY_BASE", "name": "SECRET_KEY_BASE"},
        {"secret": "db", "key": "password", "name": "DB_PASS"},
        {"secret": "gone", "key": "x", "name": "X"},
        {"secret": "db", "key": "missing-key", "name": "Y"}]
DATA = {"app": {"SECRET_KEY_BASE": "c2VjcmV0"}, "db": {"password": "cGFzcw==", "other": "b3RoZXI="}, "gone": None}


def test_the_checksum_is_the_one_of_the_former_jinja_expression():
    values = {"SMTP_PASSWORD": "pässwörd", "OTP": "1"}
    got = k8s_lookup.fingerprint(REFS, DATA, values)
    # what `[env, refs] | to_json(sort_keys=true) | hash('sha256')` gave
    refs = {"app/SECRET_KEY_BASE": "c2VjcmV0", "db/password": "cGFzcw=="}
    expected = hashlib.sha256(to_json([values, refs], sort_keys=True).encode("utf-8")).hexdigest()
    assert got["checksum"] == expected
    assert got["missing"] == ["gone/x (X)", "db/missing-key (Y)"]


def test_the_checksum_follows_every_referenced_value_and_only_those():
    base = k8s_lookup.fingerprint(REFS, DATA, {})["checksum"]
    changed = dict(DATA, db={"password": "bmV3", "other": "b3RoZXI="})
    assert k8s_lookup.fingerprint(REFS, changed, {})["checksum"] != base
    unrelated = dict(DATA, db={"password": "cGFzcw==", "other": "Y2hhbmdlZA=="})
    assert k8s_lookup.fingerprint(REFS, unrelated, {})["checksum"] == base
    assert k8s_lookup.fingerprint(REFS, DATA, {"A": "b"})["checksum"] != base
