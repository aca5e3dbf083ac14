#!/usr/bin/env bash
# The lab's Kubernetes: upstream kube-apiserver/controller-manager/scheduler + etcd, with kwok
# simulating one node, orchestrated by `kwokctl --runtime binary` with locally built binaries.
# Everything listens on 127.0.0.1; the simulated node's address is 127.0.0.1.
# With LAB_KUBECONFIG=<path> an existing cluster is used instead and nothing is built or started.
# Usage: kube.sh up|down|status|env
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

CLUSTER=lab
KUBE_DIR="$LAB_STATE/kube"
export KWOK_WORKDIR="$LAB_STATE/kwok"
CLUSTER_DIR="$KWOK_WORKDIR/clusters/$CLUSTER"
LAB_KUBECONFIG_PATH="$CLUSTER_DIR/kubeconfig.yaml"
AUDIT_LOG="$LAB_STATE/audit.log"
PV_POOL_SIZE="${LAB_PV_POOL_SIZE:-48}"
PV_DIR="$LAB_STATE/pv"
RECYCLER_PID="$KUBE_DIR/pv-recycler.pid"
# Fixed loopback ports, all below the Linux ephemeral range (32768+).
KWOK_PORT=$((LAB_KUBE_PORT - 1)) ETCD_PORT=$((LAB_KUBE_PORT - 2)) ETCD_PEER_PORT=$((LAB_KUBE_PORT - 3))
KCM_PORT=$((LAB_KUBE_PORT - 4)) SCHED_PORT=$((LAB_KUBE_PORT - 5))

# shellcheck source=tests/lab/versions.env
. "$LAB_DIR/versions.env"
BIN="$LAB_CACHE/bin-${KUBERNETES_VERSION}-${ETCD_VERSION}-${KWOK_VERSION}"

external() { [ -n "${LAB_KUBECONFIG:-}" ]; }
kubeconfig() { if external; then echo "$LAB_KUBECONFIG"; else echo "$LAB_KUBECONFIG_PATH"; fi; }
kubectl_bin() {
  if [ -x "$BIN/kubectl" ]; then echo "$BIN/kubectl"
  else command -v kubectl || true
  fi
}
kc() { "$(kubectl_bin)" --kubeconfig "$(kubeconfig)" "$@"; }
healthy() { [ "$(kc get --raw /healthz --request-timeout=5s 2>/dev/null)" = ok ]; }

write_configs() {
  mkdir -p "$KUBE_DIR"
  cat >"$KUBE_DIR/audit-policy.yaml" <<'EOF'
# Every request at Metadata level (who, verb, resource, response code; no bodies),
# so benchmarks can count API requests by verb.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages:
- RequestReceived
rules:
- level: Metadata
EOF
  cat >"$KUBE_DIR/kwok-lab.yaml" <<EOF
# Extra kwok-controller configuration, loaded next to the one kwokctl generates
# (which carries kwok's default node and pod stages).
#
# Port-forwards to simulated pods reach the lab's real services on loopback:
# any pod's 5432 -> PostgreSQL, 6379 -> Redis, 8333 -> SeaweedFS (the in-cluster S3 server's
# port), 9000/7480 -> Ceph RGW (in-cluster MinIO's port), 9200 -> OpenSearch.
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterPortForward
metadata:
  name: lab-services
spec:
  forwards:
  - ports: [5432]
    target: {address: $LAB_HOST, port: $LAB_PG_PORT}
  - ports: [6379]
    target: {address: $LAB_HOST, port: $LAB_REDIS_PORT}
  - ports: [8333]
    target: {address: $LAB_HOST, port: $LAB_SEAWEEDFS_S3_PORT}
  - ports: [9000, 7480]
    target: {address: $LAB_HOST, port: $LAB_S3_PORT}
  - ports: [9200]
    target: {address: $LAB_HOST, port: $LAB_OPENSEARCH_PORT}
---
# kubectl logs on a simulated pod returns one honest line instead of an error.
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: lab-simulated-logs
spec:
  logs:
  - logsFile: $KUBE_DIR/simulated-pod.log
    previousLogsFile: $KUBE_DIR/simulated-pod.log
    follow: false
---
EOF
  echo "2026-01-01T00:00:00.000000000Z stdout F lab: this pod is simulated by kwok; it never ran, so it has no real logs" \
    >"$KUBE_DIR/simulated-pod.log"
  # (quoted: the template below is kwok's, not the shell's)
  cat >>"$KUBE_DIR/kwok-lab.yaml" <<'EOF'
# A running pod labelled lab.fediverse/fail=true fails (exit code 1), so a test can make a
# chosen Job fail. The weight makes this stage win over kwok's default pod-complete stage.
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: lab-pod-fail
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchLabels:
      lab.fediverse/fail: "true"
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Running']
  weight: 1000
  next:
    statusTemplate: |
      {{ $now := Now }}
      containerStatuses:
      {{ range $index, $item := .spec.containers }}
      - image: {{ $item.image | Quote }}
        name: {{ $item.name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: 1
            finishedAt: {{ $now | Quote }}
            reason: Error
            message: "failed on purpose by the lab (label lab.fediverse/fail=true)"
            startedAt: {{ $now | Quote }}
      {{ end }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        type: ContainersReady
      phase: Failed
EOF
  cat >"$KUBE_DIR/kwokctl.yaml" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: $LAB_HOST
  kubeApiserverPort: $LAB_KUBE_PORT
  kwokControllerPort: $KWOK_PORT
  etcdPort: $ETCD_PORT
  etcdPeerPort: $ETCD_PEER_PORT
  kubeControllerManagerPort: $KCM_PORT
  kubeSchedulerPort: $SCHED_PORT
  securePort: true
  kubeAuthorization: true
  kubeAdmission: true
  kubeAuditPolicy: $KUBE_DIR/audit-policy.yaml
  kubeVersion: $KUBERNETES_VERSION
  etcdVersion: ${ETCD_VERSION#v}
  kwokVersion: $KWOK_VERSION
  kubeApiserverBinary: $BIN/kube-apiserver
  kubeControllerManagerBinary: $BIN/kube-controller-manager
  kubeSchedulerBinary: $BIN/kube-scheduler
  kubectlBinary: $BIN/kubectl
  etcdBinary: $BIN/etcd
  kwokControllerBinary: $BIN/kwok
  cacheDir: $KWOK_WORKDIR/cache
componentsPatches:
# The apiserver must reach the "kubelet" (kwok) by the node's InternalIP 127.0.0.1 only: the
# default preference starts with Hostname, which would send a DNS query off the machine.
- name: kube-apiserver
  extraArgs:
  - key: kubelet-preferred-address-types
    value: InternalIP
# The tests read the audit log by byte offsets: it must not rotate during a make test (the
# default rotates at 100 MB, which a full run now exceeds).
  - key: audit-log-maxsize
    value: "4096"
- name: kwok-controller
  extraArgs:
  - key: config
    value: $KUBE_DIR/kwok-lab.yaml
EOF
}

# A change of the kwokctl config or the audit policy needs a new cluster; a change of
# kwok-lab.yaml (stages, port-forwards, logs) only a restart of kwok-controller.
cluster_hash() { cat "$KUBE_DIR/kwokctl.yaml" "$KUBE_DIR/audit-policy.yaml" | sha256sum | cut -c1-16; }
kwok_hash() { sha256sum <"$KUBE_DIR/kwok-lab.yaml" | cut -c1-16; }
save_hashes() { cluster_hash >"$KUBE_DIR/cluster.hash"; kwok_hash >"$KUBE_DIR/kwok.hash"; }
# Clusters made before the split recorded one hash over all three files.
migrate_hash() {
  [ -s "$KUBE_DIR/config.hash" ] && [ ! -s "$KUBE_DIR/cluster.hash" ] || return 0
  local old
  old="$(cat "$KUBE_DIR/kwokctl.yaml" "$KUBE_DIR/kwok-lab.yaml" "$KUBE_DIR/audit-policy.yaml" 2>/dev/null | sha256sum | cut -c1-16)"
  [ "$old" = "$(cat "$KUBE_DIR/config.hash")" ] && save_hashes
  rm -f "$KUBE_DIR/config.hash"
}

kwokctl() { PATH="$BIN:$PATH" "$BIN/kwokctl" --name "$CLUSTER" "$@"; }
cluster_exists() { [ -s "$CLUSTER_DIR/kwok.yaml" ] && [ -s "$LAB_KUBECONFIG_PATH" ]; }

# component_pids: "name pid" for every component kwokctl started (from its pid files).
component_pids() {
  local f
  for f in "$CLUSTER_DIR"/pids/*.pid; do
    [ -s "$f" ] || continue
    echo "$(basename "$f" .pid) $(head -n1 "$f")"
  done
}
# A component's pid counts only while that pid still runs the component's binary: after a
# crash or a kill -9 the number may already belong to another process (seen: radosgw).
component_alive() { pid_alive "$2" "/bin/$1"; }
drop_stale_pidfiles() {
  local name pid
  while read -r name pid; do
    component_alive "$name" "$pid" || rm -f "$CLUSTER_DIR/pids/$name.pid"
  done < <(component_pids)
}
all_components_running() {
  local n name pid
  n=0
  while read -r name pid; do
    component_alive "$name" "$pid" || return 1
    n=$((n + 1))
  done < <(component_pids)
  [ "$n" -ge 5 ]
}

create_args() {
  echo --runtime binary --config "$KUBE_DIR/kwokctl.yaml" --kubeconfig= --wait 2m --timeout 10m
}

check_no_download() {
  local out
  # shellcheck disable=SC2046
  out="$(kwokctl --dry-run create cluster $(create_args) 2>&1)" || { echo "$out" >&2; die "kubernetes: kwokctl --dry-run create cluster failed"; }
  echo "$out" >"$KUBE_DIR/dry-run.txt"
  # kwokctl reports copying a local binary into its work dir as "# Download <local path> to ...".
  # Those are fine; anything else (a URL, a file outside our cache) is not.
  local bad
  bad="$(grep '^# Download' <<<"$out" | grep -v "^# Download $BIN/[a-z-]* to " || true)"
  if [ -n "$bad" ] || grep -qE '^# Download .*https?://' <<<"$out"; then
    echo "$bad" >&2
    die "kubernetes: kwokctl would download something (see above); the lab must use only the locally built binaries"
  fi
}

create_cluster() {
  check_no_download
  log "kubernetes: creating kwok cluster '$CLUSTER' (binary runtime, $KUBERNETES_VERSION) on $LAB_HOST:$LAB_KUBE_PORT"
  # shellcheck disable=SC2046
  kwokctl create cluster $(create_args) >"$KUBE_DIR/create.log" 2>&1 \
    || { tail -n 40 "$KUBE_DIR/create.log" >&2; die "kubernetes: kwokctl create cluster failed; log: $KUBE_DIR/create.log"; }
  save_hashes
}

wait_healthy() {
  local i
  for ((i = 0; i < ${1:-120}; i++)); do healthy && return 0; sleep 1; done
  return 1
}

apply_lab_objects() {
  # The simulated node, with address 127.0.0.1 so that everything the apiserver sends to the
  # "kubelet" (port-forward, logs, exec) goes to kwok on loopback.
  kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: lab-node-0
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: lab-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
spec: {}
status:
  addresses:
  - {type: InternalIP, address: 127.0.0.1}
  - {type: Hostname, address: lab-node-0}
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
EOF
  kc apply -f - >/dev/null <<'EOF'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: lab-hostpath
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
reclaimPolicy: Retain
volumeBindingMode: Immediate
EOF
  local i name manifest=""
  for ((i = 0; i < PV_POOL_SIZE; i++)); do
    name="$(printf 'lab-pv-%02d' "$i")"
    mkdir -p "$PV_DIR/$name"
    manifest+="---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $name
  labels: {lab.fediverse/pool: hostpath}
spec:
  storageClassName: lab-hostpath
  capacity: {storage: 100Gi}
  accessModes: [ReadWriteOnce, ReadOnlyMany, ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: $PV_DIR/$name, type: DirectoryOrCreate}
"
  done
  # create, not apply: a bound PV of a running test must not be touched.
  { kc create -f - <<<"$manifest" 2>&1 >/dev/null | grep -v 'AlreadyExists' >&2; } || true
}

wait_node_ready() {
  local i
  for ((i = 0; i < 60; i++)); do
    [ "$(kc get node lab-node-0 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] && return 0
    sleep 1
  done
  return 1
}

# After a restart the node lease still names the previous kwok-controller, and the new one
# would wait out the lease (200 s) before it simulates anything. So: stop kwok-controller,
# drop the node leases, and let kwokctl start it again (it starts only what is not running).
release_node_leases() {
  wait_healthy 120 || return 0
  local pid; pid="$(head -n1 "$CLUSTER_DIR/pids/kwok-controller.pid" 2>/dev/null || true)"
  [ -n "$pid" ] && component_alive kwok-controller "$pid" && stop_pid "$pid" TERM 10
  kc -n kube-node-lease delete lease --all >/dev/null 2>&1 || true
  kwokctl start cluster >>"$KUBE_DIR/start.log" 2>&1 \
    || { tail -n 40 "$KUBE_DIR/start.log" >&2; die "kubernetes: kwokctl start cluster (kwok-controller) failed"; }
}

wait_controllers() {
  local i
  for ((i = 0; i < 90; i++)); do
    kc -n default get serviceaccount default >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}

# The PV recycler: PVs of the pool whose claim was deleted go "Released"; this loop makes them
# Available again (and empties their directory) so the pool does not run dry across tests.
# It holds one watch on the apiserver and patches only when a PV is released.
recycler_loop() {
  local name phase
  while true; do
    while read -r name phase; do
      [ "$phase" = Released ] || continue
      case "$name" in lab-pv-[0-9][0-9]) ;; *) continue ;; esac
      find "${PV_DIR:?}/$name" -mindepth 1 -delete 2>/dev/null || true
      kc patch pv "$name" --type=json -p '[{"op":"remove","path":"/spec/claimRef"}]' >/dev/null 2>&1 || true
    done < <(kc get pv -l lab.fediverse/pool=hostpath --watch --output-watch-events=false \
      -o 'jsonpath={.metadata.name} {.status.phase}{"\n"}' 2>/dev/null)
    sleep 2
  done
}
start_recycler() {
  pidfile_alive "$RECYCLER_PID" _recycler && return 0
  # Own session, so `down` can stop the loop and its kubectl child together.
  setsid bash "$0" _recycler </dev/null >>"$KUBE_DIR/pv-recycler.log" 2>&1 &
  echo $! >"$RECYCLER_PID"
}
stop_recycler() {
  pidfile_alive "$RECYCLER_PID" _recycler || { rm -f "$RECYCLER_PID"; return 0; }
  local pid; pid="$(cat "$RECYCLER_PID")"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  stop_pid "$pid" TERM 5
  rm -f "$RECYCLER_PID"
}

up() {
  if external; then
    [ -r "$LAB_KUBECONFIG" ] || die "kubernetes: LAB_KUBECONFIG=$LAB_KUBECONFIG is not a readable file"
    [ -n "$(kubectl_bin)" ] || die "kubernetes: no kubectl found (LAB_KUBECONFIG mode builds nothing; install kubectl)"
    healthy || die "kubernetes: the cluster of LAB_KUBECONFIG=$LAB_KUBECONFIG does not answer /healthz"
    log "kubernetes: using the existing cluster of LAB_KUBECONFIG=$LAB_KUBECONFIG"
    return 0
  fi
  local t0=$SECONDS
  local built
  built="$(bash "$LAB_DIR/build-binaries.sh")" || die "kubernetes: building the binaries failed"
  [ "$built" = "$BIN" ] || die "kubernetes: build-binaries.sh returned $built, expected $BIN"
  migrate_hash
  write_configs
  if cluster_exists && [ "$(cat "$KUBE_DIR/cluster.hash" 2>/dev/null)" != "$(cluster_hash)" ]; then
    log "kubernetes: the lab's cluster configuration changed; recreating the cluster"
    stop_recycler
    kwokctl delete cluster >/dev/null 2>&1 || true
  fi
  if ! cluster_exists; then
    rm -rf "$CLUSTER_DIR"
    for p in "$LAB_KUBE_PORT" "$KWOK_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT" "$KCM_PORT" "$SCHED_PORT"; do
      port_in_use "$p" && die "kubernetes: 127.0.0.1:$p is taken by a process the lab did not start"
    done
    create_cluster
  elif all_components_running && healthy; then
    log "kubernetes: already running"
  else
    log "kubernetes: starting the components that are down"
    drop_stale_pidfiles
    kwokctl start cluster >"$KUBE_DIR/start.log" 2>&1 \
      || { tail -n 40 "$KUBE_DIR/start.log" >&2; die "kubernetes: kwokctl start cluster failed"; }
    release_node_leases
  fi
  wait_healthy 120 || die "kubernetes: apiserver on $LAB_HOST:$LAB_KUBE_PORT is not healthy; logs under $CLUSTER_DIR/logs"
  if [ "$(cat "$KUBE_DIR/kwok.hash" 2>/dev/null)" != "$(kwok_hash)" ]; then
    log "kubernetes: kwok-lab.yaml changed; restarting kwok-controller"
    release_node_leases
    save_hashes
  fi
  apply_lab_objects
  wait_node_ready || die "kubernetes: node lab-node-0 did not become Ready"
  # The controllers are working once the ServiceAccount controller has made `default` (after a
  # restart this waits for the controller-manager's leader lease).
  wait_controllers || die "kubernetes: kube-controller-manager is not working (no default ServiceAccount); see $CLUSTER_DIR/logs"
  ln -sfn "$CLUSTER_DIR/logs/audit.log" "$AUDIT_LOG"
  start_recycler
  log "kubernetes: running ($((SECONDS - t0))s); KUBECONFIG=$LAB_KUBECONFIG_PATH"
}

down() {
  external && return 0
  stop_recycler
  [ -d "$CLUSTER_DIR" ] || return 0
  if [ -x "$BIN/kwokctl" ]; then
    kwokctl stop cluster >/dev/null 2>&1 || log "kubernetes: kwokctl stop cluster reported an error; stopping by pid"
  fi
  # Whatever kwokctl did, make sure every component it started is gone.
  local name pid
  while read -r name pid; do
    if component_alive "$name" "$pid"; then
      log "kubernetes: stopping $name (pid $pid)"
      stop_pid "$pid" TERM 20
    fi
  done < <(component_pids)
}

status() {
  if external; then
    if healthy; then status_line kubernetes up "external cluster (LAB_KUBECONFIG=$LAB_KUBECONFIG)"
    else status_line kubernetes down "external cluster (LAB_KUBECONFIG=$LAB_KUBECONFIG) not answering"; return 1
    fi
    return 0
  fi
  if ! cluster_exists; then status_line kubernetes down "no cluster under $CLUSTER_DIR"; return 1; fi
  local name pid rc=0 detail=""
  if [ -z "$(component_pids)" ]; then
    status_line kubernetes down "stopped; cluster kept under $CLUSTER_DIR (lab.sh up restarts it)"
    return 1
  fi
  while read -r name pid; do
    if component_alive "$name" "$pid"; then detail+=" $name=$pid"; else detail+=" $name=DOWN"; rc=1; fi
  done < <(component_pids)
  pidfile_alive "$RECYCLER_PID" _recycler && detail+=" pv-recycler=$(cat "$RECYCLER_PID")" || detail+=" pv-recycler=DOWN"
  if [ "$rc" -eq 0 ] && healthy; then status_line kubernetes up "https://$LAB_HOST:$LAB_KUBE_PORT$detail"
  else status_line kubernetes down "$detail"; return 1
  fi
}

env_lines() {
  echo "export KUBECONFIG=$(kubeconfig)"
  local k; k="$(kubectl_bin)"
  [ -n "$k" ] && echo "export LAB_KUBECTL=$k"
  external || echo "export LAB_AUDIT_LOG=$AUDIT_LOG"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) env_lines ;;
  _recycler) recycler_loop ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
