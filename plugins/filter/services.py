# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters s3_port and search_generated_secrets: small decisions of the backing-service roles,
in Python (plugin_utils/connections.py)."""

from __future__ import annotations

from ansible_collections.fediverse.mastodon.plugins.plugin_utils import connections


class FilterModule:
    def filters(self):
        return {
            "s3_port": connections.s3_port,
            "search_generated_secrets": connections.search_generated_secrets,
        }
