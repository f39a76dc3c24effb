#!/usr/bin/env bash
# Checks what contrib/ ships without a running systemd or container engine:
# `systemd-analyze verify` on both units (their ExecStart paths pointed at
# the built binaries, since verify checks that they exist), and, when
# `systemd-analyze security` works here, the server unit's exposure score.
# Usage: contrib/check.sh [TARGET_DIR] (default target/debug, built first).
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir=$(realpath "${1:-target/debug}")
for b in qpq-server qpqd; do
  [ -x "$bin_dir/$b" ] || { echo "contrib/check.sh: $bin_dir/$b is not built"; exit 1; }
done
command -v systemd-analyze >/dev/null || { echo "contrib/check.sh: systemd-analyze is missing (apt-get install systemd)"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in qpq-server.service qpqd.service; do
  sed "s|/usr/local/bin/|$bin_dir/|g" "contrib/systemd/$unit" >"$work/$unit"
done
# verify prints warnings for things it cannot see from here (no running
# manager); any line about our units is a finding.
for unit in qpq-server.service qpqd.service; do
  rc=0
  out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$work/$unit" 2>&1) || rc=$?
  findings=$(printf '%s\n' "$out" | grep -F "$unit" || true)
  if [ "$rc" != 0 ] || [ -n "$findings" ]; then
    printf '%s\n' "$out"
    echo "contrib/check.sh: systemd-analyze verify found problems in $unit"
    exit 1
  fi
  echo "systemd-analyze verify $unit: ok"
done

# `security` needs a unit loaded by a running manager on most versions;
# offline (--offline=yes, systemd >= 250) it reads the file itself. The
# user unit's score is read as a system unit's (a user manager cannot
# apply most sandboxing), so only the server's is a target.
for unit in qpq-server.service qpqd.service; do
  if score=$(systemd-analyze security --offline=yes --no-pager "$work/$unit" 2>/dev/null | tail -1); then
    echo "systemd-analyze security $unit: ${score#→ }"
  else
    echo "systemd-analyze security: not available without a running systemd here"
  fi
done

# The Containerfile's runtime stage without a container engine: its
# entrypoint with its environment, as a non-root user, in an empty data
# directory, answering its own HEALTHCHECK command.
if [ "$(id -u)" != 0 ] || ! command -v runuser >/dev/null; then
  echo "container runtime check: skipped (needs root and runuser to act as another user)"
  exit 0
fi
data="$work/data"
chmod 711 "$work"
mkdir -m 700 "$data"
chown nobody "$data"
ports=$(python3 -c 'import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
t = socket.socket(); t.bind(("127.0.0.1", 0))
print(u.getsockname()[1], t.getsockname()[1])')
read -r quic_port metrics_port <<<"$ports"
as_image() {
  runuser -u nobody -- env -i PATH=/usr/bin:/bin QPQ_LOG=warn QPQ_SERVER_DATA_DIR="$data" \
    QPQ_LISTEN="127.0.0.1:$quic_port" QPQ_METRICS_LISTEN="127.0.0.1:$metrics_port" \
    "$bin_dir/qpq-server" "$@"
}
as_image >"$work/server.out" 2>&1 &
server=$!
healthy=""
for _ in $(seq 1 60); do
  if as_image health --timeout-secs 5 >"$work/health.out" 2>&1; then healthy=1; break; fi
  kill -0 "$server" 2>/dev/null || break
  sleep 0.5
done
kill -TERM "$server" 2>/dev/null || true
wait "$server" || true
if [ -z "$healthy" ]; then
  cat "$work/server.out" "$work/health.out"
  echo "container runtime check: the server as nobody never answered its health check"
  exit 1
fi
echo "container runtime check: as nobody in an empty data dir, $(cat "$work/health.out")"
