# -*- coding: utf-8 -*-
# Copyright: fediverse.mastodon contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The asset-upload Job's script (roles/mastodon/files/asset-upload.sh), run on the host the way its
two containers run it, with rclone, against the lab's real SeaweedFS: the media bucket and user
are made by minio_bucket and minio_user (api: seaweedfs) as the provisioning phase makes them, and
the upload uses the media user's keys. Anonymous visitors (a CDN) may then GET the assets; a
second upload sends nothing; a new release's upload keeps the old release's files."""

import os
import shutil
import subprocess
import sys
import uuid

import pytest

from s3_checks import s3_client as client  # noqa: E402
from ansible_run import run_module

requests = pytest.importorskip("requests")

RUN_ENV = {"ANSIBLE_PYTHON_INTERPRETER": sys.executable}
SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "roles", "mastodon", "files", "asset-upload.sh")

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def sw(sw):  # pylint: disable=redefined-outer-name
    """The lab's SeaweedFS (conftest's ``sw``), and where rclone is."""
    rclone = os.environ.get("LAB_RCLONE") or shutil.which("rclone")
    assert rclone, "no rclone: the lab installs it (tests/lab/services/seaweedfs.sh up)"
    return dict(sw, rclone_dir=os.path.dirname(rclone))


@pytest.fixture(scope="module")
def media(sw):
    """The media bucket and Mastodon's user, as the provisioning phase makes them: (bucket, keys)."""
    tag = uuid.uuid4().hex[:10]
    bucket, user = "assets-media-%s" % tag, "assets-user-%s" % tag
    admin = dict(endpoint=sw["endpoint"], access_key=sw["access_key"], secret_key=sw["secret_key"])
    res, dummy = run_module("minio_bucket", dict(admin, name=bucket, anonymous_read=True), env=RUN_ENV)
    assert res["changed"] is True, res
    res, dummy = run_module("minio_user", dict(admin, api="seaweedfs", name=user, buckets=[bucket]), env=RUN_ENV)
    assert res["created"] is True, res
    yield bucket, (res["user_access_key"], res["user_secret_key"])
    run_module("minio_user", dict(admin, api="seaweedfs", name=user, state="absent"), env=RUN_ENV)
    run_module("minio_bucket", dict(admin, name=bucket, state="absent", force=True), env=RUN_ENV)


def image_public(root, release):
    """A Mastodon image's public/ of one release: hashed files under packs/ and assets/."""
    public = os.path.join(str(root), "public-%s" % release)
    os.makedirs(os.path.join(public, "packs", "assets"))
    os.makedirs(os.path.join(public, "assets"))
    os.makedirs(os.path.join(public, "system"))
    files = {"packs/assets/application-%s.js" % release: "console.log(%r);\n" % release,
             "packs/.vite/manifest.json": '{"release": "%s"}\n' % release,
             "assets/mailer-%s.css" % release: "body { color: #%s; }\n" % release[:6],
             "system/not-an-asset.png": "media, never uploaded"}
    for name, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(public, name)), exist_ok=True)
        with open(os.path.join(public, name), "w", encoding="utf-8") as fh:
            fh.write(text)
    return public


def run_script(sw, *args, env=None):
    full = dict(os.environ, PATH=sw["rclone_dir"] + os.pathsep + os.environ.get("PATH", ""))
    full.update(env or {})
    return subprocess.run(["/bin/sh", SCRIPT] + list(args), env=full, capture_output=True, text=True, timeout=120, check=False)


def collect_and_upload(sw, media, tmp_path, release):
    bucket, (access_key, secret_key) = media
    dest = tmp_path / ("assets-%s" % release)
    dest.mkdir()
    collected = run_script(sw, "collect", image_public(tmp_path, release), str(dest))
    assert collected.returncode == 0, collected.stderr
    env = dict(S3_ENDPOINT=sw["endpoint"], S3_REGION="us-east-1", S3_BUCKET=bucket, AWS_ACCESS_KEY_ID=access_key,
               AWS_SECRET_ACCESS_KEY=secret_key, TMPDIR=str(tmp_path))
    uploaded = run_script(sw, "upload", str(dest), env=env)
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    assert secret_key not in uploaded.stdout + uploaded.stderr
    return uploaded


def test_assets_reach_the_bucket_for_anonymous_get_and_a_rerun_sends_nothing(sw, media, tmp_path):
    bucket, dummy = media
    first = collect_and_upload(sw, media, tmp_path, "aa11bb22")
    assert first.stderr.count("Copied (new)") == 3, first.stderr
    url = "%s/%s/packs/assets/application-aa11bb22.js" % (sw["endpoint"], bucket)
    got = requests.get(url, timeout=10)
    assert got.status_code == 200 and got.text == "console.log('aa11bb22');\n"
    assert got.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "javascript" in got.headers["Content-Type"]
    assert requests.get("%s/%s/assets/mailer-aa11bb22.css" % (sw["endpoint"], bucket), timeout=10).headers["Content-Type"].startswith("text/css")
    # public/system (media on a volume) is not an asset
    assert requests.get("%s/%s/system/not-an-asset.png" % (sw["endpoint"], bucket), timeout=10).status_code in (403, 404)

    admin = client(sw, sw["access_key"], sw["secret_key"])
    before = admin.head_object(Bucket=bucket, Key="packs/assets/application-aa11bb22.js")["LastModified"]
    again = run_script(sw, "upload", str(tmp_path / "assets-aa11bb22"), env=dict(
        S3_ENDPOINT=sw["endpoint"], S3_BUCKET=bucket, AWS_ACCESS_KEY_ID=media[1][0], AWS_SECRET_ACCESS_KEY=media[1][1],
        TMPDIR=str(tmp_path)))
    assert again.returncode == 0 and "Copied" not in again.stderr, again.stderr
    assert admin.head_object(Bucket=bucket, Key="packs/assets/application-aa11bb22.js")["LastModified"] == before


def test_a_new_release_keeps_the_previous_releases_assets(sw, media, tmp_path):
    bucket, dummy = media
    collect_and_upload(sw, media, tmp_path, "cc33dd44")
    collect_and_upload(sw, media, tmp_path, "ee55ff66")
    for release in ("cc33dd44", "ee55ff66"):
        url = "%s/%s/packs/assets/application-%s.js" % (sw["endpoint"], bucket, release)
        assert requests.get(url, timeout=10).status_code == 200, "%s is gone after the next release's upload" % release
    # the unhashed manifest is the newest release's
    admin = client(sw, sw["access_key"], sw["secret_key"])
    assert b"ee55ff66" in admin.get_object(Bucket=bucket, Key="packs/.vite/manifest.json")["Body"].read()


def test_an_image_without_compiled_assets_is_refused(sw, tmp_path):
    empty = tmp_path / "public"
    (empty / "system").mkdir(parents=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    res = run_script(sw, "collect", str(empty), str(dest))
    assert res.returncode == 1
    assert "has neither packs nor assets: is this a Mastodon image with compiled assets?" in res.stderr


def test_upload_names_the_missing_setting_and_refuses_wrong_keys(sw, media, tmp_path):
    bucket, dummy = media
    dest = tmp_path / "dest"
    assert run_script(sw, "collect", image_public(tmp_path, "0a0b0c0d"), str(dest.mkdir() or dest)).returncode == 0
    unset = dict(S3_ENDPOINT=sw["endpoint"], S3_BUCKET="", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y")
    res = run_script(sw, "upload", str(dest), env=unset)
    assert res.returncode == 1 and res.stderr.strip() == "asset-upload: S3_BUCKET is not set"
    wrong_keys = dict(S3_ENDPOINT=sw["endpoint"], S3_BUCKET=bucket, AWS_ACCESS_KEY_ID="nobody",
                      AWS_SECRET_ACCESS_KEY="wrong-secret", TMPDIR=str(tmp_path))
    wrong = run_script(sw, "upload", str(dest), env=wrong_keys)
    assert wrong.returncode != 0 and "is in bucket" not in wrong.stdout
    assert requests.get("%s/%s/packs/assets/application-0a0b0c0d.js" % (sw["endpoint"], bucket), timeout=10).status_code in (403, 404)
