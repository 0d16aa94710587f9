#!/usr/bin/env bash
# Queue benchmark: N messages queued for a dead next hop, then kill -9 and requeue.
#
#   cargo build --release -p impulse -p impulse-source
#   tools/bench/queue.sh [N] [SIZE]          # default 1000000 messages of 1024 bytes
#
# Prints: impulsed's RSS per queued message, `impulsectl tree` latency (collapsed, and
# the whole listing with `--all --json`, streamed past the 16 MiB write cap), spool bytes on
# disk, and the restart requeue time (kill -9, start, until status counts N live and
# queued). The next hop is 127.0.0.1:9 with nothing listening, so every message is
# deferred after its first attempt and hibernates in its domain's delayed queue.
# Loopback only; the temporary directory is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
SIZE=${2:-1024}
BIN=target/release
dir=$(mktemp -d /tmp/impulse-queue-XXXXXX)
trap 'kill -9 $pid 2>/dev/null || true; tail -n 5 "$dir"/stderr.* >&2; rm -rf "$dir"' EXIT
cat >"$dir/impulse.ron" <<EOF
(
    data_dir: "$dir/data",
    listeners: [(address: "127.0.0.1:0")],
    routes: { "*": "127.0.0.1:9" },
    domains: { "*": (retry_interval: "1h", max_retry_interval: "4h", connect_timeout: "5s") },
    spool: (min_free: 0),
)
EOF
start() {
    "$BIN/impulsed" --config "$dir/impulse.ron" 2>"$dir/stderr.$1" &
    pid=$!
    for _ in $(seq 1 600); do
        grep -q '^ready$' "$dir/stderr.$1" 2>/dev/null && break
        sleep 0.05
    done
    addr=$(sed -n 's/^listening on //p' "$dir/stderr.$1" | head -1)
}
ctl() { "$BIN/impulsectl" --socket "$dir/data/control.sock" "$@"; }
live() { ctl --json status | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["messages_live"], s["queued_delayed"], s["queued_active"])'; }
rss_kib() { awk '/^VmRSS/ {print $2}' /proc/$pid/status; }
wait_queued() {
    while :; do
        read -r l d a < <(live)
        [ "$l" -ge "$N" ] && [ "$d" -ge "$N" ] && break
        sleep 0.2
    done
}

start 1
rss0=$(rss_kib)
t0=$(date +%s.%N)
"$BIN/impulse-source" --to "$addr" -n "$N" -s "$SIZE" -c 10 --json >"$dir/source.json"
t1=$(date +%s.%N)
wait_queued
rss=$(rss_kib)
tree_start=$(date +%s.%N)
ctl tree >"$dir/tree.txt"
tree_end=$(date +%s.%N)
ctl --json memory >"$dir/memory.json"
all_start=$(date +%s.%N)
ctl --json tree --all >"$dir/tree-all.json"
all_end=$(date +%s.%N)
spool_bytes=$(du -sb "$dir/data/spool" | cut -f1)
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
r0=$(date +%s.%N)
start 2
wait_queued
r1=$(date +%s.%N)
rss_after=$(rss_kib)
python3 - "$N" "$SIZE" "$rss0" "$rss" "$rss_after" "$t0" "$t1" "$tree_start" "$tree_end" \
    "$spool_bytes" "$r0" "$r1" "$dir/memory.json" "$dir/tree.txt" \
    "$all_start" "$all_end" "$dir/tree-all.json" <<'EOF'
import json, sys
n, size, rss0, rss, rss2 = map(int, sys.argv[1:6])
t0, t1, ts, te = map(float, sys.argv[6:10])
spool = int(sys.argv[10]); r0, r1 = map(float, sys.argv[11:13])
mem = json.load(open(sys.argv[13]))
classes = {c["class"]: c["live_bytes"] for c in mem["classes"]}
total = mem["total_live_bytes"]
print(f"queued:                 {n} x {size} B for a dead next hop")
print(f"reception:              {n / (t1 - t0):.0f} msg/s")
print(f"RSS per queued message: {(rss - rss0) * 1024 / n:.0f} B (RSS {rss // 1024} MiB, {rss0 // 1024} MiB idle)")
print(f"counted live bytes:     {total / n:.0f} B per message; message class {classes.get('message', 0) * 100 / max(total, 1):.0f} %")
print(f"tree latency:           {(te - ts) * 1000:.0f} ms ({sum(1 for _ in open(sys.argv[14]))} lines)")
a0, a1 = map(float, sys.argv[15:17])
full = json.load(open(sys.argv[17]))
print(f"tree --all --json:      {len(full['actors'])} actors of {full['total']} in {a1 - a0:.2f} s ({__import__('os').path.getsize(sys.argv[17]) / 2**20:.0f} MiB, streamed)")
print(f"spool on disk:          {spool / 2**20:.0f} MiB ({spool / n:.0f} B per message)")
print(f"restart requeue:        {r1 - r0:.2f} s (kill -9 to {n} queued); RSS after {rss2 // 1024} MiB")
EOF
