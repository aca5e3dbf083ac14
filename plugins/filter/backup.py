# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters backup_job, backup_report, backup_restore_plan and backup_summary of the backup role (logic in plugin_utils/backup_plan.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.fediverse.mastodon.plugins.plugin_utils import backup_plan


def backup_job(documents, name, set_id):
    try:
        return backup_plan.job_from_cronjob(documents, name, set_id)
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("backup_job: %s" % exc)


def backup_report(manifest, drill=None, media=None, replication=None):
    return backup_plan.report(manifest or {}, drill, media, replication)


def backup_restore_plan(manifest, deployed_version, local_domain, instance, db_name, database, confirm=None, allow_domain=None,
                        stamp="00000000000000"):
    return backup_plan.restore_plan(manifest or {}, deployed_version, local_domain, instance, db_name, database or {},
                                    confirm, allow_domain, stamp)


def backup_summary(variables, instance):
    return backup_plan.summary_line(variables or {}, instance)


class FilterModule:
    def filters(self):
        return {"backup_job": backup_job, "backup_report": backup_report, "backup_restore_plan": backup_restore_plan,
                "backup_summary": backup_summary}
