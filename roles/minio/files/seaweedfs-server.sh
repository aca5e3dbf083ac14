#!/bin/sh
# The in-cluster SeaweedFS server (the container's command): master, volume server, filer and the
# S3 gateway in one process. Only the S3 port listens beyond the pod's loopback. The admin identity
# comes from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (the generated Secret); every other user is
# made through the IAM API on the S3 port by the provisioning phase (minio_user api: seaweedfs) and
# kept in the filer, on the data volume. Without an admin identity SeaweedFS would let anyone do
# anything, so the script refuses to start without one. The lab runs this same file on the host.
set -eu

: "${WEED:=weed}"
: "${DATA_DIR:=/data}"
: "${S3_BIND:=0.0.0.0}"
: "${S3_PORT:=8333}"
: "${MASTER_PORT:=9333}"
: "${VOLUME_PORT:=8080}"
: "${FILER_PORT:=8888}"
# Volumes of this size are filled one after another; 0 for VOLUME_MAX counts them from the free space.
: "${VOLUME_SIZE_LIMIT_MB:=1024}"
: "${VOLUME_MAX:=0}"
: "${ALLOWED_ORIGINS:=*}"
# The filer's and the S3 gateway's unix sockets (an emptyDir in the pod).
: "${SOCKET_DIR:=/tmp}"

if [ -z "${AWS_ACCESS_KEY_ID:-}" ] || [ -z "${AWS_SECRET_ACCESS_KEY:-}" ]; then
  echo "seaweedfs-server: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the admin identity) are not set; refusing to start an open server" >&2
  exit 1
fi

# gRPC ports are the HTTP port + 1 (the lab shares one host, so none may be left to defaults).
exec "$WEED" -logtostderr=true server \
  -dir="$DATA_DIR" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port="$MASTER_PORT" -master.port.grpc=$((MASTER_PORT + 1)) -master.telemetry=false \
  -master.volumeSizeLimitMB="$VOLUME_SIZE_LIMIT_MB" \
  -volume.port="$VOLUME_PORT" -volume.port.grpc=$((VOLUME_PORT + 1)) -volume.max="$VOLUME_MAX" \
  -filer -filer.port="$FILER_PORT" -filer.port.grpc=$((FILER_PORT + 1)) -filer.localSocket="$SOCKET_DIR/filer.sock" \
  -s3 -s3.ip.bind="$S3_BIND" -s3.port="$S3_PORT" -s3.port.grpc=$((S3_PORT + 1)) -s3.port.iceberg=0 -s3.port.lance=0 \
  -s3.localSocket="$SOCKET_DIR/s3.sock" \
  -s3.iam=true -s3.iam.readOnly=false -s3.allowedOrigins="$ALLOWED_ORIGINS"
