#!/bin/sh
# The asset-upload Job's two steps (mastodon_asset_upload_enabled). It runs before each rollout,
# once per Mastodon version, so that HTML served by the new pods never names an asset that the
# CDN (mastodon_cdn_host, in front of the bucket) cannot serve.
#
#   asset-upload.sh collect SRC DEST   in the Mastodon image (init container): copy the compiled
#                                      assets, SRC/packs and SRC/assets when present, into DEST
#   asset-upload.sh upload DIR         in the rclone image: copy DIR into the bucket, keys relative
#                                      to DIR (packs/..., assets/...)
#
# upload reads S3_ENDPOINT, S3_REGION, S3_BUCKET, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,
# and optionally S3_ACL (a canned ACL; empty: none, the bucket policy decides) and CACHE_CONTROL.
# It never deletes: pods of the previous release keep serving pages that name its assets until
# the rollout ends, and file names carry a content hash, so old and new never collide. Files
# already in the bucket with the same size and MD5 are not sent again.
# The lab runs this same file on the host against its S3 servers (tests/integration).
set -eu

die() { echo "asset-upload: $*" >&2; exit 1; }

collect() {
  src="$1" dest="$2" found=""
  [ -d "$dest" ] || die "the destination $dest is not a directory"
  for part in packs assets; do
    if [ -d "$src/$part" ]; then
      cp -R "$src/$part" "$dest/"
      found="$found $part"
    fi
  done
  [ -n "$found" ] || die "$src has neither packs nor assets: is this a Mastodon image with compiled assets?"
  [ -d "$dest/packs" ] || die "$src has no packs directory (Mastodon 4.4 and later compile into public/packs)"
  echo "asset-upload: collected$found ($(find "$dest" -type f | wc -l) files)"
}

upload() {
  dir="$1"
  [ -d "$dir/packs" ] || die "$dir holds no packs directory: nothing was collected"
  for name in S3_ENDPOINT S3_BUCKET AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; do
    eval "value=\${$name:-}"
    [ -n "$value" ] || die "$name is not set"
  done
  # rclone's S3 client cannot load the AWS SDK's AWS_CA_BUNDLE (it fails before any request);
  # rclone uses the system's CA certificates.
  unset AWS_CA_BUNDLE
  # The remote comes from the environment only: no configuration file, no secret on a command line.
  RCLONE_CONFIG="${TMPDIR:-/tmp}/asset-upload-rclone.conf"
  : >"$RCLONE_CONFIG"
  RCLONE_CONFIG_TARGET_TYPE=s3
  RCLONE_CONFIG_TARGET_PROVIDER=Other
  RCLONE_CONFIG_TARGET_ENDPOINT="$S3_ENDPOINT"
  RCLONE_CONFIG_TARGET_REGION="${S3_REGION:-us-east-1}"
  RCLONE_CONFIG_TARGET_FORCE_PATH_STYLE=true
  RCLONE_CONFIG_TARGET_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
  RCLONE_CONFIG_TARGET_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
  RCLONE_CONFIG_TARGET_ACL="${S3_ACL:-}"
  export RCLONE_CONFIG RCLONE_CONFIG_TARGET_TYPE RCLONE_CONFIG_TARGET_PROVIDER RCLONE_CONFIG_TARGET_ENDPOINT \
    RCLONE_CONFIG_TARGET_REGION RCLONE_CONFIG_TARGET_FORCE_PATH_STYLE RCLONE_CONFIG_TARGET_ACCESS_KEY_ID \
    RCLONE_CONFIG_TARGET_SECRET_ACCESS_KEY RCLONE_CONFIG_TARGET_ACL
  # --checksum: skip files whose size and MD5 match (the ETag of a single-part upload);
  # --s3-no-check-bucket: the user may not create buckets, and the bucket exists.
  rclone copy "$dir" "target:$S3_BUCKET" --checksum --s3-no-check-bucket --no-update-modtime \
    --header-upload "Cache-Control: ${CACHE_CONTROL:-public, max-age=31536000, immutable}" \
    --transfers 8 --retries 5 --low-level-retries 10 --stats 0 --stats-one-line -v
  echo "asset-upload: $dir is in bucket $S3_BUCKET"
}

case "${1:-}" in
  collect) [ "$#" -eq 3 ] || die "usage: $0 collect SRC DEST"; collect "$2" "$3" ;;
  upload) [ "$#" -eq 2 ] || die "usage: $0 upload DIR"; upload "$2" ;;
  *) die "usage: $0 collect SRC DEST | upload DIR" ;;
esac
