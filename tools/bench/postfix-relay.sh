#!/usr/bin/env bash
# Postfix side of the relay benchmark: smtp-source -> Postfix -> impulse-sink, on loopback.
#
#   tools/bench/postfix-relay.sh [-n MESSAGES] [-s SIZE] [-c SESSIONS]
#                                [--port PORT] [--sink-port PORT]
#                                [--source smtp-source|impulse-source]
#                                [--timeout SECONDS] [--keep]
#
# Installs Postfix (Debian/Ubuntu, "No configuration") when smtp-source or postfix is
# missing, then writes a throwaway Postfix instance into a temporary directory: its own
# config_directory, queue_directory and data_directory, an smtpd on 127.0.0.1:PORT,
# relayhost [127.0.0.1]:SINK_PORT, no chroot, logging to a file in the directory. Postfix
# keeps its default durability (cleanup fsyncs each queue file before smtpd answers 250).
#
# The sink is impulse-sink (the same recording sink impulse-bench relays to), writing one
# JSON line per accepted message; delivered = lines in that file. The clock starts when
# the source starts: accepted msg/s = accepted / source run time, delivered msg/s =
# delivered / time until the sink holds every accepted message (polled every 50 ms).
#
# --source impulse-source sends with our load generator instead (pipelined, 100
# messages per connection, as impulse-bench does); the default smtp-source does not
# pipeline and is run with -d (keep the connection open between messages).
#
# impulse-sink and impulse-source are taken from $IMPULSE_BIN_DIR (default
# target/release, built if missing).
#
# Needs root (Postfix's master runs as root and drops to the postfix user). Stops
# Postfix and the sink and removes the directory on exit (unless --keep).
set -euo pipefail

MESSAGES=20000
SIZE=1024
SESSIONS=10
PORT=2625
SINK_PORT=2626
SOURCE=smtp-source
TIMEOUT=600
KEEP=0

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        -n|--messages) MESSAGES=$2; shift 2 ;;
        -s|--size) SIZE=$2; shift 2 ;;
        -c|--sessions) SESSIONS=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        --sink-port) SINK_PORT=$2; shift 2 ;;
        --source) SOURCE=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage 2 >&2 ;;
    esac
done
case "$SOURCE" in smtp-source|impulse-source) ;; *) echo "--source: smtp-source or impulse-source" >&2; exit 2 ;; esac

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN_DIR=${IMPULSE_BIN_DIR:-$ROOT/target/release}
SINK_BIN=$BIN_DIR/impulse-sink
SOURCE_BIN=$BIN_DIR/impulse-source

[ "$(id -u)" = 0 ] || { echo "postfix-relay.sh: run as root (Postfix's master needs it)" >&2; exit 1; }

# --- Postfix, installed if missing -----------------------------------------------------
if ! command -v smtp-source >/dev/null || ! command -v postfix >/dev/null; then
    echo "installing postfix (No configuration)..." >&2
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >&2
fi
DAEMON_DIR=$(postconf -dh daemon_directory)
VERSION=$(postconf -dh mail_version)

# --- our sink (and source), built if missing -------------------------------------------
if [ ! -x "$SINK_BIN" ] || { [ "$SOURCE" = impulse-source ] && [ ! -x "$SOURCE_BIN" ]; }; then
    (cd "$ROOT" && cargo build --release -q -p impulse-sink -p impulse-source) >&2
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$PORT" "$SINK_PORT"; do
    port_free "$p" || { echo "127.0.0.1:$p is in use (use --port / --sink-port)" >&2; exit 1; }
done

DIR=$(mktemp -d /tmp/postfix-bench.XXXXXX)
chmod 755 "$DIR"
SINK_PID=
POSTFIX_UP=0
cleanup() {
    set +e
    if [ "$POSTFIX_UP" = 1 ]; then
        master=$(tr -dc 0-9 <"$DIR/queue/pid/master.pid" 2>/dev/null)
        postfix -c "$DIR/etc" stop >/dev/null 2>&1
        # Wait for the master to exit (at most 10 s) before removing its queue.
        for _ in $(seq 100); do [ -n "$master" ] && kill -0 "$master" 2>/dev/null || break; sleep 0.1; done
    fi
    [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null
    if [ "$KEEP" = 1 ]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$DIR/etc" "$DIR/queue" "$DIR/data"
chown postfix: "$DIR/data"

cat >"$DIR/etc/main.cf" <<EOF
# Throwaway benchmark instance (written by tools/bench/postfix-relay.sh).
compatibility_level = 3.6
config_directory = $DIR/etc
queue_directory = $DIR/queue
data_directory = $DIR/data
daemon_directory = $DAEMON_DIR
mail_owner = postfix
setgid_group = postdrop
maillog_file = $DIR/maillog
maillog_file_prefixes = $DIR

myhostname = postfix-bench.impulse.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$SINK_PORT
EOF

# The stock service list, chroot off (the temporary queue directory has no chroot
# environment), smtpd on 127.0.0.1:PORT instead of port 25.
cat >"$DIR/etc/master.cf" <<EOF
127.0.0.1:$PORT inet n  -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF

now() { date +%s.%N; }
lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }

# --- sink ------------------------------------------------------------------------------
JSONL=$DIR/sink.jsonl
: >"$JSONL"
"$SINK_BIN" --listen "127.0.0.1:$SINK_PORT" --jsonl "$JSONL" >"$DIR/sink.out" 2>&1 &
SINK_PID=$!
for _ in $(seq 100); do grep -q "listening on" "$DIR/sink.out" && break; sleep 0.05; done
grep -q "listening on" "$DIR/sink.out" || { cat "$DIR/sink.out" >&2; echo "sink did not start" >&2; exit 1; }

# --- postfix ---------------------------------------------------------------------------
postfix -c "$DIR/etc" check >&2
postfix -c "$DIR/etc" start >&2
POSTFIX_UP=1
for _ in $(seq 100); do port_free "$PORT" || break; sleep 0.1; done
port_free "$PORT" && { tail "$DIR/maillog" >&2 2>/dev/null; echo "postfix smtpd not listening on $PORT" >&2; exit 1; }
# Let the start-up probe's connection be logged and forgotten before the clock starts.
sleep 1
echo "postfix $VERSION in $DIR: smtpd 127.0.0.1:$PORT -> sink 127.0.0.1:$SINK_PORT" >&2

# --- the run ---------------------------------------------------------------------------
T0=$(now)
if [ "$SOURCE" = smtp-source ]; then
    (
        set +e
        smtp-source -d -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" \
            -f bench@impulse.test -t user@example.com "127.0.0.1:$PORT" >"$DIR/source.out" 2>&1
        echo $? >"$DIR/source.rc"
        now >"$DIR/source.end"
    ) &
else
    (
        set +e
        "$SOURCE_BIN" --to "127.0.0.1:$PORT" -n "$MESSAGES" -s "$SIZE" -c "$SESSIONS" \
            --from bench@impulse.test --json >"$DIR/source.out" 2>&1
        echo $? >"$DIR/source.rc"
        now >"$DIR/source.end"
    ) &
fi
SOURCE_PID=$!

# Poll the sink until it holds every message, the source has failed and the sink has
# what it accepted, or the timeout passes.
DEADLINE=$(echo "$T0 + $TIMEOUT" | bc)
T_DELIVERED=
while :; do
    n=$(lines "$JSONL")
    if [ "$n" -ge "$MESSAGES" ]; then T_DELIVERED=$(now); break; fi
    if [ "$(echo "$(now) > $DEADLINE" | bc)" = 1 ]; then break; fi
    # The source gave up early: stop once Postfix's queue has drained.
    if [ -s "$DIR/source.rc" ] && [ "$(cat "$DIR/source.rc")" != 0 ] \
        && [ "$(find "$DIR/queue/incoming" "$DIR/queue/active" -type f | wc -l)" = 0 ]; then
        T_DELIVERED=$(now); break
    fi
    sleep 0.05
done
wait "$SOURCE_PID" || true
RC=$(cat "$DIR/source.rc")
T_SOURCE=$(cat "$DIR/source.end")

if [ "$SOURCE" = smtp-source ]; then
    # smtp-source aborts at the first reply that is not the expected success (no -A), so
    # a clean exit means every message got its 250.
    if [ "$RC" = 0 ]; then ACCEPTED=$MESSAGES
    else ACCEPTED=$(grep -c 'postfix/cleanup\[[0-9]*\]: [0-9A-Za-z]*: message-id=' "$DIR/maillog" || true)
        echo "smtp-source exited $RC: $(tail -3 "$DIR/source.out")" >&2
    fi
else
    ACCEPTED=$(grep -o '"sent_ok":[0-9]*' "$DIR/source.out" | cut -d: -f2)
    [ "$RC" = 0 ] || echo "impulse-source exited $RC: $(tail -3 "$DIR/source.out")" >&2
fi

# Let stragglers (duplicates) land, then count.
sleep 0.5
DELIVERED=$(lines "$JSONL")
UNIQUE=$(grep -o '"message_id":"[^"]*"' "$JSONL" | sort -u | wc -l)
DUPLICATED=$((DELIVERED - UNIQUE))
LOST=$((ACCEPTED > UNIQUE ? ACCEPTED - UNIQUE : 0))
QUEUED=$(find "$DIR/queue/incoming" "$DIR/queue/active" "$DIR/queue/deferred" "$DIR/queue/hold" -type f 2>/dev/null | wc -l)
DEFERRED_LOG=$(grep -c 'status=deferred' "$DIR/maillog" || true)
BOUNCED_LOG=$(grep -c 'status=bounced' "$DIR/maillog" || true)

SRC_S=$(echo "$T_SOURCE - $T0" | bc)
ACC_RATE=$(echo "scale=1; $ACCEPTED / $SRC_S" | bc)
DEL_NOTE=
if [ -n "$T_DELIVERED" ]; then
    DEL_S=$(echo "$T_DELIVERED - $T0" | bc)
    DEL_RATE=$(echo "scale=1; $DELIVERED / $DEL_S" | bc)
else
    DEL_S=null
    DEL_RATE=0
    DEL_NOTE=" (timed out after ${TIMEOUT}s)"
fi

cat <<EOF
relay benchmark: $SOURCE -> postfix $VERSION -> impulse-sink
messages     $MESSAGES x $SIZE B body over $SESSIONS sessions
accepted     $ACCEPTED in ${SRC_S}s = $ACC_RATE msg/s
delivered    $DELIVERED in ${DEL_S}s = $DEL_RATE msg/s$DEL_NOTE
lost         $LOST
duplicated   $DUPLICATED
left queued  $QUEUED (deferred log lines $DEFERRED_LOG, bounced $BOUNCED_LOG)
EOF
printf '{"mta":"postfix","source":"%s","messages":%s,"size":%s,"sessions":%s,"accepted":%s,"source_elapsed_s":%s,"accepted_per_s":%s,"delivered":%s,"delivery_elapsed_s":%s,"delivered_per_s":%s,"lost":%s,"duplicated":%s,"left_queued":%s}\n' \
    "$SOURCE" "$MESSAGES" "$SIZE" "$SESSIONS" "$ACCEPTED" "$SRC_S" "$ACC_RATE" "$DELIVERED" "$DEL_S" "$DEL_RATE" "$LOST" "$DUPLICATED" "$QUEUED"
[ "$LOST" = 0 ]
