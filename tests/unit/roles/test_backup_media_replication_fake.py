# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup script's media-replication check with a fake S3 client: the lab's Ceph RGW refuses
PutBucketReplication (MethodNotAllowed, single site), so an enabled rule cannot exist there. The
refusal without a rule is tested against the real RGW in tests/integration/test_backup_playbooks.py."""

import importlib.util
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "backup", "files", "mastodon_backup.py")
spec = importlib.util.spec_from_file_location("mastodon_backup", SCRIPT)
backup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(backup)


class FakeMedia:
    def __init__(self, rules):
        self.rules = rules

    def get_bucket_replication(self, Bucket):  # noqa: N803 (boto3's name)
        assert Bucket == "social-media"
        return {"ReplicationConfiguration": {"Role": "", "Rules": self.rules}}


def settings():
    return backup.Settings(dict(MEDIA_S3_BUCKET="social-media"))


def test_an_enabled_rule_is_reported_with_its_destination():
    rules = [dict(ID="off", Status="Disabled", Destination=dict(Bucket="arn:aws:s3:::x")),
             dict(ID="dr", Status="Enabled", Destination=dict(Bucket="arn:aws:s3:::social-media-replica"))]
    assert backup.media_replication(settings(), FakeMedia(rules)) == dict(
        bucket="social-media", rules=[dict(id="dr", destination="arn:aws:s3:::social-media-replica")])


def test_no_enabled_rule_fails_naming_the_variable_and_the_alternative():
    with pytest.raises(backup.Failure) as failure:
        backup.media_replication(settings(), FakeMedia([dict(ID="off", Status="Disabled")]))
    assert str(failure.value).startswith("backup_media: replication, but the media bucket social-media has no enabled")
    assert "backup_media: mirror" in str(failure.value)
