# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs the module fediverse.mastodon.minio_bucket in the controller process (plugin_utils/in_process.py)."""

from __future__ import annotations

from ansible_collections.fediverse.mastodon.plugins.modules import minio_bucket as module
from ansible_collections.fediverse.mastodon.plugins.module_utils import s3
from ansible_collections.fediverse.mastodon.plugins.plugin_utils.in_process import InProcessAction

# Every task of this module makes boto3 clients: load their models once, before the workers fork.
s3.warm_up()


class ActionModule(InProcessAction):
    module = module
    libraries = ("kubernetes", "boto3")
