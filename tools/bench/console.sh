#!/usr/bin/env bash
# Console benchmark: `impulsectl find` and `impulsectl queues` against N queued messages
# while mail flows, and the relay rate with and without them running every second.
#
#   cargo build --release -p impulse -p impulse-source -p impulse-sink
#   tools/bench/console.sh [N] [M]     # default 1000000 queued, 20000 relayed per phase
#
# N messages are queued for dead.example (next hop 127.0.0.1:9, nothing listening: each
# is deferred once and hibernates). Then M messages are relayed to example.com (a sink)
# twice: alone, and with `find --sender nobody@nowhere.test --limit 10` (a full scan that
# matches nothing: the worst case) and `queues` run one after the other every second.
# Prints each command's latency (median and worst) and both relay rates. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
M=${2:-20000}
BIN=target/release
dir=$(mktemp -d /tmp/impulse-console-XXXXXX)
trap 'kill -9 $pid $sink 2>/dev/null || true; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN/impulse-sink" --listen "127.0.0.1:$port" --jsonl "$dir/sink.jsonl" 2>"$dir/sink.err" &
sink=$!
cat >"$dir/impulse.ron" <<EOF2
(
    data_dir: "$dir/data",
    listeners: [(address: "127.0.0.1:0")],
    routes: { "dead.example": "127.0.0.1:9", "*": "127.0.0.1:$port" },
    domains: { "*": (retry_interval: "1h", max_retry_interval: "4h", connect_timeout: "5s") },
    spool: (min_free: 0),
)
EOF2
"$BIN/impulsed" --config "$dir/impulse.ron" 2>"$dir/stderr" &
pid=$!
for _ in $(seq 1 600); do grep -q '^ready$' "$dir/stderr" 2>/dev/null && break; sleep 0.05; done
addr=$(sed -n 's/^listening on //p' "$dir/stderr" | head -1)
ctl() { "$BIN/impulsectl" --socket "$dir/data/control.sock" "$@"; }
"$BIN/impulse-source" --to "$addr" -n "$N" -s 1024 -c 10 --domain dead.example --json >/dev/null
while :; do
    d=$(ctl --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["queued_delayed"])')
    [ "$d" -ge "$N" ] && break
    sleep 0.5
done
delivered() { [ -f "$dir/sink.jsonl" ] && wc -l <"$dir/sink.jsonl" || echo 0; }
relay() { # $1: messages already at the sink before
    local start end
    start=$(date +%s.%N)
    "$BIN/impulse-source" --to "$addr" -n "$M" -s 1024 -c 10 --domain example.com --json >/dev/null
    while [ "$(delivered)" -lt $(($1 + M)) ]; do sleep 0.05; done
    end=$(date +%s.%N)
    python3 -c "print(f'{$M / ($end - $start):.0f}')"
}
alone=$(relay 0)
: >"$dir/find.ms"; : >"$dir/queues.ms"
(
    while :; do
        a=$(date +%s%N); ctl --json find --sender nobody@nowhere.test --limit 10 >/dev/null; b=$(date +%s%N)
        ctl --json queues >/dev/null; c=$(date +%s%N)
        echo $(((b - a) / 1000000)) >>"$dir/find.ms"; echo $(((c - b) / 1000000)) >>"$dir/queues.ms"
        sleep 1
    done
) &
probe=$!
busy=$(relay "$M")
kill $probe 2>/dev/null || true
scanned=$(ctl --json find --sender nobody@nowhere.test --limit 10 | python3 -c 'import json,sys; print(json.load(sys.stdin)["scanned"])')
python3 - "$N" "$M" "$alone" "$busy" "$dir/find.ms" "$dir/queues.ms" "$scanned" <<'EOF2'
import statistics, sys
n, m, alone, busy = map(int, sys.argv[1:5])
def show(name, path):
    v = sorted(int(x) for x in open(path) if x.strip())
    print(f"{name:<32} {len(v)} runs: median {statistics.median(v):.0f} ms, worst {max(v)} ms")
print(f"queued:                          {n} x 1 KiB for a dead next hop")
show("find (full scan, no match):", sys.argv[5])
print(f"  messages looked at per find:   {sys.argv[7]}")
show("queues:", sys.argv[6])
print(f"relay alone:                     {alone} msg/s ({m} messages)")
print(f"relay with find+queues each 1 s: {busy} msg/s ({busy * 100 / alone:.0f} %)")
EOF2
