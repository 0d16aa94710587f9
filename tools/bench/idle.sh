#!/usr/bin/env bash
# Idle-connection benchmark: C idle SMTP connections held open while a new client still
# gets its greeting, and the relay rate at the same time.
#
#   cargo build --release -p impulse -p impulse-source -p impulse-sink
#   tools/bench/idle.sh [C] [M]        # default 10000 idle connections, 20000 relayed
#
# The idle clients connect, read the greeting and say nothing (smtp.idle_timeout is 1 h
# here, max_connections and max_connections_per_ip above C). With them open: the
# greeting latency of 200 fresh connections (median and worst), then M messages relayed
# to a sink; the same relay is measured first with no idle connections. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
C=${1:-10000}
M=${2:-20000}
BIN=target/release
ulimit -n "$(ulimit -Hn)"
dir=$(mktemp -d /tmp/impulse-idle-XXXXXX)
trap 'kill -9 $pid $sink $holder 2>/dev/null || true; rm -rf "$dir"' EXIT
holder=
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN/impulse-sink" --listen "127.0.0.1:$port" --jsonl "$dir/sink.jsonl" 2>"$dir/sink.err" &
sink=$!
cat >"$dir/impulse.ron" <<EOF2
(
    data_dir: "$dir/data",
    listeners: [(address: "127.0.0.1:0")],
    routes: { "*": "127.0.0.1:$port" },
    smtp: (idle_timeout: "1h", max_connections: $((C + 1000)), max_connections_per_ip: $((C + 1000))),
)
EOF2
"$BIN/impulsed" --config "$dir/impulse.ron" 2>"$dir/stderr" &
pid=$!
for _ in $(seq 1 600); do grep -q '^ready$' "$dir/stderr" 2>/dev/null && break; sleep 0.05; done
addr=$(sed -n 's/^listening on //p' "$dir/stderr" | head -1)
host=${addr%:*}; sport=${addr##*:}
delivered() { [ -f "$dir/sink.jsonl" ] && wc -l <"$dir/sink.jsonl" || echo 0; }
relay() {
    local start end
    start=$(date +%s.%N)
    "$BIN/impulse-source" --to "$addr" -n "$M" -s 1024 -c 10 --json >/dev/null
    while [ "$(delivered)" -lt $(($1 + M)) ]; do sleep 0.05; done
    end=$(date +%s.%N)
    python3 -c "print(f'{$M / ($end - $start):.0f}')"
}
greetings() {
    python3 - "$host" "$sport" <<'EOF2'
import socket, statistics, sys, time
host, port = sys.argv[1], int(sys.argv[2])
t = []
for _ in range(200):
    a = time.perf_counter()
    s = socket.create_connection((host, port)); s.settimeout(10)
    buf = b""
    while not buf.endswith(b"\r\n"):
        buf += s.recv(512)
    t.append((time.perf_counter() - a) * 1000)
    assert buf.startswith(b"220"), buf
    s.close()
print(f"{statistics.median(t):.2f} {max(t):.2f}")
EOF2
}
alone=$(relay 0)
read -r g_med0 g_max0 < <(greetings)
python3 - "$host" "$sport" "$C" "$dir/held" <<'EOF2' &
import resource, socket, sys, time
host, port, n, flag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE); resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks = []
for i in range(n):
    s = socket.create_connection((host, port)); s.settimeout(30)
    socks.append(s)
for s in socks:
    buf = b""
    while not buf.endswith(b"\r\n"):
        buf += s.recv(512)
open(flag, "w").write(str(len(socks)))
time.sleep(3600)
EOF2
holder=$!
while [ ! -f "$dir/held" ]; do sleep 0.2; done
rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
open_now=$("$BIN/impulsectl" --socket "$dir/data/control.sock" --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["connections_in"])')
read -r g_med g_max < <(greetings)
busy=$(relay "$M")
echo "idle connections held:       $(cat "$dir/held") (status connections_in: $open_now), impulsed RSS $((rss / 1024)) MiB"
echo "greeting, no idle clients:   median $g_med0 ms, worst $g_max0 ms (200 connections)"
echo "greeting, with them:         median $g_med ms, worst $g_max ms"
echo "relay alone:                 $alone msg/s ($M x 1 KiB)"
echo "relay with them:             $busy msg/s"
