# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs the module fediverse.mastodon.k8s_job in the controller process (plugin_utils/in_process.py)."""

from __future__ import annotations

from ansible_collections.fediverse.mastodon.plugins.modules import k8s_job as module
from ansible_collections.fediverse.mastodon.plugins.plugin_utils.in_process import InProcessAction


class ActionModule(InProcessAction):
    module = module
    libraries = ("kubernetes",)
