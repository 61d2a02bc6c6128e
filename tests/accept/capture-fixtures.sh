#!/usr/bin/env bash
# tests/accept/capture-fixtures.sh [OUT_DIR] (as root): capture a real Patroni's REST answers.
#
# Builds the lab of tests/accept/patroni-lab.sh (etcd + three Patroni 3 / PostgreSQL 15 nodes),
# and, from the client namespace, polls every node's GET /patroni and the status codes of
# /primary, /leader and /replica every 20 ms (tests/accept/patroni-poll.py) while it
#   1. bootstraps the cluster,
#   2. makes SWITCHOVERS (default 3) switchovers (POST /switchover), round robin,
#   3. pauses the cluster, stops one replica's PostgreSQL with pg_ctl (Patroni then reports it
#      stopped and does not restart it), resumes (Patroni starts it again),
#   4. restarts one replica through POST /restart.
# Then writes the first body of every distinct (role, state, status codes) verbatim into
# OUT_DIR (default tests/fixtures/patroni; its *.json are replaced), capture-summary.md there
# (the table of files and the switchover timings) and events.jsonl (the whole timeline).
# Everything is torn down at the end.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/accept/patroni-lab.sh
. "$ROOT/tests/accept/patroni-lab.sh"

OUT=${1:-$ROOT/tests/fixtures/patroni}
SWITCHOVERS=${SWITCHOVERS:-3}
POLL=$ROOT/tests/accept/patroni-poll.py

fail() {
    lab_err "capture FAILED: $*"
    plab_logs >&2 || true
    exit 1
}

# patch_config JSON: PATCH /config on node 1's API (any member applies it to the DCS).
patch_config() {
    plab_curl -o /dev/null -w '%{http_code}' -X PATCH -H 'Content-Type: application/json' \
        -d "$1" "$(plab_api 1)/config" | grep -qx 200
}

# state_is I STATE: node I's /patroni says state STATE.
state_is() { [[ $(plab_role "$1") == *" $2 "* ]]; }
paused() { plab_curl "$(plab_api "$1")/patroni" 2>/dev/null | grep -q '"pause": true'; }

# a_replica [NOT]: the number of a node the key does not name, other than node NOT (the last
# old leader, which may still be busy rejoining as a replica).
a_replica() {
    local leader i
    leader=$(plab_leader)
    for ((i = 1; i <= LAB_NODES; i++)); do
        [[ $(plab_node_name "$i") != "$leader" && $i != "${1:-}" ]] && printf '%s\n' "$i" && return 0
    done
    return 1
}

plab_prepare 3 || fail "lab"
events=$LAB_DIR/events.jsonl
stop=$LAB_DIR/poll.stop
apis=()
for ((i = 1; i <= LAB_NODES; i++)); do
    apis+=("$(plab_node_name "$i")=$(plab_api "$i")")
done
lab_spawn "$(lab_client_ns)" "$LAB_DIR/poll.log" "$PLAB_PYTHON" "$POLL" poll --out "$events" \
    --etcd "$LAB_ENDPOINT" --key "$PLAB_KEY" --stop-file "$stop" --max-seconds 900 "${apis[@]}"
poll_pid=$LAB_LAST_PID
sleep 0.5

echo "== bootstrap"
plab_start_all || fail "starting Patroni"
plab_wait_cluster 120000 || fail "bootstrap"
echo "leader: $(plab_leader)"
sleep 2

for ((k = 1; k <= SWITCHOVERS; k++)); do
    leader=$(plab_leader)
    next=$((${leader#node} % LAB_NODES + 1))
    echo "== switchover $k: $leader -> node$next"
    plab_switchover "node$next" || fail "switchover $k"
    plab_wait_cluster 60000 || fail "switchover $k did not settle"
    [[ $(plab_leader) == "node$next" ]] || fail "switchover $k: leader is $(plab_leader)"
    sleep 2
done

r=$(a_replica "${leader#node}") || fail "no replica"
dir=$LAB_DIR/$(plab_node_name "$r")
echo "== pause, stop node$r's PostgreSQL, resume"
patch_config '{"pause": true}' || fail "pause"
lab_wait_ms 10000 100 paused "$r" || fail "node$r not paused"
ip netns exec "$(lab_node_ns "$r")" setpriv --reuid=postgres --regid=postgres --init-groups \
    "$PLAB_PG_BIN/pg_ctl" -D "$dir/data" stop -m fast -w -t 20 >/dev/null || fail "pg_ctl stop"
lab_wait_ms 10000 100 state_is "$r" stopped ||
    fail "node$r not reported stopped: $(plab_curl "$(plab_api "$r")/patroni")"
sleep 1
patch_config '{"pause": false}' || fail "resume"
plab_wait_cluster 60000 || fail "resume did not settle"
sleep 1

r=$(a_replica "$r") || fail "no replica"
echo "== restart node$r (POST /restart)"
plab_curl -o /dev/null -X POST -H 'Content-Type: application/json' -d '{}' \
    "$(plab_api "$r")/restart" || fail "restart"
plab_wait_cluster 60000 || fail "restart did not settle"
sleep 1

touch "$stop"
lab_wait_ms 5000 50 lab_dead "$poll_pid" || fail "the poller did not stop"

mkdir -p "$OUT"
rm -f -- "$OUT"/*.json
{
    echo "# Patroni REST answers captured by tests/accept/capture-fixtures.sh"
    echo
    echo "Generated $(date -u +%Y-%m-%dT%H:%MZ): patroni $(patroni --version | cut -d' ' -f2)," \
        "$("$PLAB_PG_BIN/postgres" --version), $(etcd --version | head -n 1)," \
        "$SWITCHOVERS switchovers."
    echo
    "$PLAB_PYTHON" "$POLL" fixtures --events "$events" --out "$OUT"
} >"$OUT/capture-summary.md"
# The whole timeline: every change each node showed (body verbatim) and every key event.
cp "$events" "$OUT/events.jsonl"
cat "$OUT/capture-summary.md"
echo "capture: $(grep -c . "$events") observations; fixtures in $OUT"
