#!/usr/bin/env bash
# Run one row of the relay benchmark REPEAT times and print each run's JSON (with the
# 1-minute load average just before it) and the medians.
#
#   tools/bench/run.sh [--repeat K] impulse [-n N] [-s SIZE] [-c SESSIONS]
#   tools/bench/run.sh [--repeat K] postfix [-n N] [-s SIZE] [-c SESSIONS] [--source ...]
#
# impulse: cargo build --release, then
#          target/release/impulse-bench relay --impulsed target/release/impulsed ARGS --json
# postfix: tools/bench/postfix-relay.sh ARGS (needs root; installs Postfix if missing)
#
# With IMPULSE_BIN_DIR=DIR, the binaries (impulsed, impulse-bench, impulse-sink,
# impulse-source) are taken from DIR and nothing is built: copy a build there to keep
# measuring the same binaries while the tree changes.
#
# Every line printed is also appended to target/bench-results.jsonl.
set -euo pipefail

REPEAT=1
if [ "${1:-}" = --repeat ]; then REPEAT=$2; shift 2; fi
WHAT=${1:-}
[ -n "$WHAT" ] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
shift

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$ROOT/target/bench-results.jsonl
cd "$ROOT"

case "$WHAT" in impulse|postfix) ;; *) echo "impulse or postfix, not $WHAT" >&2; exit 2 ;; esac
if [ -z "${IMPULSE_BIN_DIR:-}" ]; then
    case "$WHAT" in
        impulse) cargo build --release -q >&2 ;;
        postfix) cargo build --release -q -p impulse-sink -p impulse-source >&2 ;;
    esac
fi
BIN=${IMPULSE_BIN_DIR:-$ROOT/target/release}

load1() { cut -d' ' -f1 /proc/loadavg; }
results=()
for i in $(seq "$REPEAT"); do
    load=$(load1)
    at=$(date -Is)
    if [ "$WHAT" = impulse ]; then
        json=$("$BIN/impulse-bench" relay --impulsed "$BIN/impulsed" "$@" --json) \
            || echo "run $i: impulse-bench exited $? (loss?)" >&2
    else
        json=$(IMPULSE_BIN_DIR=$BIN "$HERE/postfix-relay.sh" "$@" | tail -n1) || echo "run $i: postfix-relay.sh failed (loss?)" >&2
    fi
    line=$(jq -c --arg what "$WHAT" --arg load "$load" --arg at "$at" \
        '{what: $what, at: $at, load1_before: ($load|tonumber)} + . + {load1_after: '"$(load1)"'}' <<<"$json")
    echo "$line"
    echo "$line" >>"$OUT"
    results+=("$line")
done

printf '%s\n' "${results[@]}" | jq -s -r '
    def median: sort | if length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
    "median of \(length): accepted \(map(.accepted_per_s) | median | floor) msg/s, delivered \(map(.delivered_per_s) | median | floor) msg/s, lost \(map(.lost) | add), peak RSS \(map(.peak_rss_kib // 0) | median) KiB, load1 \(map(.load1_before) | min)-\(map(.load1_before) | max)"'
