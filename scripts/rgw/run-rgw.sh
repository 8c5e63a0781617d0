#!/bin/bash
# A single-node Ceph RADOS Gateway (S3) in the foreground, for tests and small deployments:
# 1 mon + 1 memstore OSD (objects live in the OSD's memory) + radosgw with the beast frontend,
# no mgr, cephx on. All state under $RGW_DIR, which must be empty or absent (state is not kept
# across runs). Prints exactly one line, `rgw ready`, on stdout once the S3 endpoint answers;
# everything else goes to stderr or to $RGW_DIR/log/. On SIGTERM/SIGINT it stops every daemon it
# started and exits (started with `&` from a non-interactive shell, SIGINT is ignored by bash:
# send SIGTERM). Works on a host and as a container entrypoint (no systemd, no fixed ports).
#
# Environment:
#   RGW_DIR          state directory (required)
#   RGW_ADDR         S3 bind address (default 127.0.0.1; 0.0.0.0 in a container)
#   RGW_PORT         S3 port (default 7480)
#   RGW_MON_ADDR     mon address (default RGW_ADDR, or 127.0.0.1 when RGW_ADDR is a wildcard)
#   RGW_MON_PORT     mon port (default 6799)
#   RGW_ACCESS_KEY   S3 access key of the user created (required)
#   RGW_SECRET_KEY   S3 secret key of that user (required)
#   RGW_STORE_BYTES  memstore capacity in bytes (default 4 GiB; memory is used only as filled)
#   RGW_UID          S3 user id (default baler)
#   RGW_STOP_ON_EOF  1: also stop when stdin reaches end of file (a test harness holds a pipe,
#                    so RGW goes with it however the harness dies)
set -euo pipefail

: "${RGW_DIR:?RGW_DIR must name a fresh state directory}"
: "${RGW_ACCESS_KEY:?RGW_ACCESS_KEY is required}"
: "${RGW_SECRET_KEY:?RGW_SECRET_KEY is required}"
RGW_ADDR=${RGW_ADDR:-127.0.0.1}
RGW_PORT=${RGW_PORT:-7480}
case "$RGW_ADDR" in
  0.0.0.0 | :: | '[::]') default_mon_addr=127.0.0.1 ;;
  *) default_mon_addr=$RGW_ADDR ;;
esac
RGW_MON_ADDR=${RGW_MON_ADDR:-$default_mon_addr}
RGW_MON_PORT=${RGW_MON_PORT:-6799}
RGW_STORE_BYTES=${RGW_STORE_BYTES:-$((4 * 1024 * 1024 * 1024))}
RGW_UID=${RGW_UID:-baler}

say() { echo "[run-rgw] $*" >&2; }

if [ -e "$RGW_DIR" ] && [ -n "$(ls -A "$RGW_DIR")" ]; then
  say "RGW_DIR $RGW_DIR is not empty; give a fresh directory"
  exit 2
fi
mkdir -p "$RGW_DIR"/{mon,osd,log,run}
RGW_DIR=$(cd "$RGW_DIR" && pwd)
conf=$RGW_DIR/ceph.conf
keyring=$RGW_DIR/keyring
fsid=$(cat /proc/sys/kernel/random/uuid)

pids=()
eof_watcher=
stop_all() {
  trap - TERM INT EXIT
  [ -n "$eof_watcher" ] && kill "$eof_watcher" 2>/dev/null
  # One at a time in reverse start order (radosgw, OSD, mon): a stopping OSD tells the mon,
  # and waits up to 5 s for it if the mon is gone already. SIGKILL after 10 s each.
  local i pid n
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for ((n = 0; n < 100; n++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap 'stop_all; exit 0' TERM INT
if [ "${RGW_STOP_ON_EOF:-}" = 1 ]; then
  # In the background stdin would be /dev/null: hand it over on another descriptor.
  exec 4<&0
  (cat <&4 >/dev/null; kill -TERM $$) &
  eof_watcher=$!
  exec 4<&-
fi
trap 'stop_all' EXIT

fail() {
  say "$*"
  for f in "$RGW_DIR"/log/*.log; do
    [ -f "$f" ] && { say "--- tail of $f"; tail -n 20 "$f" >&2; }
  done
  exit 1
}

# The settings that make a one-OSD cluster fast and healthy enough for RGW:
#  - paxos propose interval 0.05 (the option is `paxos_propose_interval`; a `mon ` prefix
#    is silently ignored): the default 1 s batches every map change (pool creation, OSD
#    boot) into 1-2 s steps: ~13 s start instead of ~3 s, and 2 s stalls;
#  - pools of size 1 with few PGs, CRUSH choosing among OSDs (one host);
#  - mon data avail warn/crit: the mon refuses to run on a disk that is nearly full otherwise;
#  - tcp_nodelay on beast: without it small responses wait ~50 ms for Nagle.
cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v2:$RGW_MON_ADDR:$RGW_MON_PORT
mon initial members = a
public network = $RGW_MON_ADDR/32
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $keyring
run dir = $RGW_DIR/run
admin socket = $RGW_DIR/run/\$name.asok
log file = $RGW_DIR/log/\$name.log
log to stderr = false
err to stderr = false
mon cluster log file = $RGW_DIR/log/cluster.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
paxos propose interval = 0.05
mon data avail warn = 1
mon data avail crit = 0
ms bind ipv6 = false

[mon]
mon data = $RGW_DIR/mon
mon allow pool delete = true

[osd]
osd data = $RGW_DIR/osd
osd objectstore = memstore
memstore device bytes = $RGW_STORE_BYTES
osd max object name len = 460
osd max object namespace len = 64
osd mon shutdown timeout = 1

[client.rgw]
rgw frontends = beast endpoint=$RGW_ADDR:$RGW_PORT tcp_nodelay=1
rgw dns name = localhost
rgw data = $RGW_DIR/rgw
rgw enable usage log = false
EOF
mkdir -p "$RGW_DIR/rgw"

quiet() {
  echo "$(date +%T.%N) $*" >>"$RGW_DIR/log/setup.log"
  "$@" >>"$RGW_DIR/log/setup.log" 2>&1 || fail "failed: $*"
}

# Keys: mon., client.admin (this script's ceph/radosgw-admin calls), client.rgw, osd.0. A cephx
# key is base64 of: type 1 (AES, le16), creation time (8 bytes, 0 here), length 16 (le16) and
# 16 random bytes; written here rather than by four slow ceph-authtool runs.
cephx_key() { { printf '\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10\x00'; head -c 16 /dev/urandom; } | base64 -w0; }
cat >"$keyring" <<EOF
[mon.]
	key = $(cephx_key)
	caps mon = "allow *"
[client.admin]
	key = $(cephx_key)
	caps mon = "allow *"
	caps osd = "allow *"
	caps mgr = "allow *"
[client.rgw]
	key = $(cephx_key)
	caps mon = "allow rw"
	caps osd = "allow rwx"
[osd.0]
	key = $(cephx_key)
	caps mon = "allow profile osd"
	caps osd = "allow *"
EOF
# The OSD's store is made while the mon is (it needs no mon for that).
osd_uuid=$(cat /proc/sys/kernel/random/uuid)
ceph-osd -c "$conf" --no-mon-config -i 0 --mkfs --osd-uuid "$osd_uuid" --keyring "$keyring" >"$RGW_DIR/log/setup-osd.log" 2>&1 &
osd_mkfs=$!
quiet monmaptool --create --add a "v2:$RGW_MON_ADDR:$RGW_MON_PORT" --fsid "$fsid" "$RGW_DIR/monmap"
quiet ceph-mon -c "$conf" --mkfs -i a --monmap "$RGW_DIR/monmap" --keyring "$keyring"

ceph-mon -c "$conf" -i a -f >>"$RGW_DIR/log/mon.out" 2>&1 &
pids+=($!)

# The OSD (made meanwhile, above) registers itself with the mon when it starts.
wait "$osd_mkfs" || fail "failed: ceph-osd --mkfs (see log/setup-osd.log)"
ceph-osd -c "$conf" -i 0 -f >>"$RGW_DIR/log/osd.out" 2>&1 &
pids+=($!)

# radosgw, and meanwhile the S3 user (radosgw-admin waits for the OSD by itself; both create
# the default zone's pools if missing, tolerating each other).
radosgw -c "$conf" -n client.rgw -f >>"$RGW_DIR/log/rgw.out" 2>&1 &
pids+=($!)
quiet timeout 60 radosgw-admin -c "$conf" user create --uid="$RGW_UID" --display-name="$RGW_UID" \
  --access-key="$RGW_ACCESS_KEY" --secret-key="$RGW_SECRET_KEY"

# Ready when the endpoint answers an HTTP request (bash's /dev/tcp: no curl in slim images).
probe_addr=$RGW_ADDR
case "$probe_addr" in 0.0.0.0) probe_addr=127.0.0.1 ;; :: | '[::]') probe_addr=::1 ;; esac
http_ok() {
  local line
  { exec 3<>"/dev/tcp/$probe_addr/$RGW_PORT"; } 2>/dev/null || return 1
  printf 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
  IFS= read -r -t 2 line <&3 || line=
  exec 3<&- 3>&-
  [[ "$line" == HTTP/1.?\ 200* ]]
}
for ((i = 0; i < 600; i++)); do
  http_ok && break
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || fail "a daemon (pid $pid) exited during start"; done
  sleep 0.1
done
http_ok || fail "the S3 endpoint $probe_addr:$RGW_PORT did not answer within 60 s"

echo "$(date +%T.%N) ready" >>"$RGW_DIR/log/setup.log"
echo "rgw ready"
say "S3 at http://$probe_addr:$RGW_PORT, mon at $RGW_MON_ADDR:$RGW_MON_PORT, state in $RGW_DIR"

# Foreground: until a daemon dies (then stop the others and fail) or a signal arrives (the
# trap stops all and exits 0). `wait -n` returns on either.
set +e
wait -n "${pids[@]}"
status=$?
fail "a daemon exited (status $status)"
