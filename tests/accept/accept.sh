#!/usr/bin/env bash
# tests/accept/accept.sh (`make accept`, as root): vipd in front of a real Patroni cluster.
#
# Builds the lab of tests/accept/patroni-lab.sh (etcd, three Patroni 3 / PostgreSQL 15 nodes,
# a client, all in network namespaces on one bridge, documentation addresses only), runs
# vipd on every node for the VIP 192.0.2.50/24, and from the client opens a new PostgreSQL
# connection through the VIP every CLIENT_MS (default 20) ms, each asking
# pg_is_in_recovery(), while it makes SWITCHOVERS (default 3) switchovers (POST /switchover).
# Prints per switchover how many connections reached a writable primary, a node in recovery
# (read-only) or failed, and the longest time without a primary; fails when any connection
# reached a node in recovery, when vipd is not running on a node, or when the VIP is not on
# exactly the leader once the cluster has settled.
#
# Environment:
#   VIPD=PATH     this vipd binary instead of `cargo build --release` (target/release/vipd)
#   VIPD_ARGS     extra vipd arguments, split on blanks; @NODE@ and @NODE_IP@ become the
#                 node's name and address. Unset: '--patroni-url http://@NODE_IP@:8008' when
#                 `vipd --help` knows that option (the deployment this test is for), else none;
#                 VIPD_ARGS= (empty) runs vipd on the leader key alone
#   SWITCHOVERS   number of switchovers (default 3); CLIENT_MS the client's pace (default 20)
#   ACCEPT_KEEP=DIR  copy the logs, the client's attempts and the key's events there at the end
#   ACCEPT_REFERENCE=1  check the test itself: vipd follows not Patroni's leader key but a key
#                 that a reference gate (patroni-poll.py gate) writes only while a node's
#                 /patroni says a running primary; this must pass
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/accept/patroni-lab.sh
. "$ROOT/tests/accept/patroni-lab.sh"

VIP=192.0.2.50
SWITCHOVERS=${SWITCHOVERS:-3}
CLIENT_MS=${CLIENT_MS:-20}
EXTRA=()
REFERENCE=${ACCEPT_REFERENCE:-0}
TRIGGER_KEY=$PLAB_KEY
[[ $REFERENCE == 1 ]] && TRIGGER_KEY=/service/$PLAB_SCOPE/reference-writable
declare -A VIPD_PIDS=()

fail() {
    lab_err "accept FAILED: $*"
    show_logs >&2 || true
    exit 1
}

show_logs() {
    local i pids
    [[ -n ${LAB_DIR:-} ]] || return 0
    plab_logs
    # What each node still runs (PostgreSQL's process titles say what a backend waits for).
    for ((i = 1; i <= LAB_NODES; i++)); do
        pids=$(ip netns pids "$(lab_node_ns "$i")" 2>/dev/null | paste -sd, -)
        [[ -n $pids ]] || continue
        printf '%s\n' "---- processes in node$i"
        ps -o pid=,etimes=,args= -p "$pids" | cut -c1-150
    done
    for ((i = 1; i <= LAB_NODES; i++)); do
        [[ -s $LAB_DIR/vipd-node$i.log ]] || continue
        printf '%s\n' "---- vipd on node$i (last 15 lines)"
        tail -n 15 "$LAB_DIR/vipd-node$i.log"
    done
}

if ((EUID != 0)); then
    echo "accept: needs root (network namespaces): sudo env \"PATH=\$PATH\" make accept" >&2
    exit 1
fi
bash "$ROOT/.ci/deps" accept || fail "cannot install the packages the test needs"

if [[ -n ${VIPD:-} ]]; then
    VIPD_BIN=$VIPD
else
    echo "accept: cargo build --release"
    (cd "$ROOT" && bash demo/as-owner.sh run cargo build --release --quiet) ||
        fail "cargo build failed"
    VIPD_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/vipd
    [[ $VIPD_BIN == /* ]] || VIPD_BIN=$ROOT/$VIPD_BIN
fi
[[ -x $VIPD_BIN ]] || fail "no vipd executable at $VIPD_BIN"
if [[ -z ${VIPD_ARGS+set} ]]; then
    VIPD_ARGS=
    help=$("$VIPD_BIN" --help 2>&1) || true
    [[ $help == *--patroni-url* ]] && VIPD_ARGS='--patroni-url http://@NODE_IP@:8008'
fi
read -r -a EXTRA <<<"$VIPD_ARGS"

# vipd_args I: vipd's arguments on node I, VIPD_ARGS with @NODE@ and @NODE_IP@ filled in.
vipd_args() {
    local name ip a
    name=$(plab_node_name "$1")
    ip=$(lab_node_ip "$1")
    printf '%s\n' --interface "$LAB_IF" --ip "$VIP" --netmask 24 --trigger-key "$TRIGGER_KEY" \
        --trigger-value "$name" --dcs-type etcd3 --dcs-endpoints "$LAB_ENDPOINT" --interval 1000
    for a in "${EXTRA[@]}"; do
        a=${a//@NODE_IP@/$ip}
        printf '%s\n' "${a//@NODE@/$name}"
    done
}

# vip_holders: the nodes holding the VIP, e.g. "node2" (several: "node1 node2").
vip_holders() {
    local i out=()
    for ((i = 1; i <= LAB_NODES; i++)); do
        lab_has_addr "$(lab_node_ns "$i")" "$LAB_IF" "$VIP" && out+=("$(plab_node_name "$i")")
    done
    printf '%s\n' "${out[*]}"
}
vip_only_on_leader() { [[ $(vip_holders) == "$(plab_leader)" ]]; }

# Called by the lab's teardown, before anything is stopped.
plab_on_down() {
    [[ -n ${ACCEPT_KEEP:-} && -n ${LAB_DIR:-} ]] || return 0
    mkdir -p "$ACCEPT_KEEP"
    cp -r "$LAB_DIR"/*.log "$LAB_DIR"/*.jsonl "$LAB_DIR"/*.txt "$ACCEPT_KEEP"/ 2>/dev/null
    for ((i = 1; i <= LAB_NODES; i++)); do
        cp "$LAB_DIR/node$i/patroni.log" "$ACCEPT_KEEP/patroni-node$i.log" 2>/dev/null
    done
    return 0
}

vipd_alive() {
    local i
    for i in "${!VIPD_PIDS[@]}"; do
        lab_alive "${VIPD_PIDS[$i]}" || fail "vipd on node$i exited (see its log)"
    done
}

t_begin=$(lab_now_ms)
plab_up 3 || fail "lab"
plab_wait_cluster 120000 || fail "the cluster did not bootstrap"
echo "accept: cluster up in $(($(lab_now_ms) - t_begin)) ms, leader $(plab_leader)"

if [[ $REFERENCE == 1 ]]; then
    apis=()
    for ((i = 1; i <= LAB_NODES; i++)); do
        apis+=("$(plab_node_name "$i")=$(plab_api "$i")")
    done
    lab_spawn "$(lab_client_ns)" "$LAB_DIR/gate.log" "$PLAB_PYTHON" \
        "$ROOT/tests/accept/patroni-poll.py" gate --etcd "$LAB_ENDPOINT" --key "$TRIGGER_KEY" \
        --stop-file "$LAB_DIR/gate.stop" --max-seconds $((120 * SWITCHOVERS + 120)) "${apis[@]}"
    echo "accept: reference run: vipd follows $TRIGGER_KEY, written by the reference gate"
fi
for ((i = 1; i <= LAB_NODES; i++)); do
    mapfile -t args < <(vipd_args "$i")
    lab_spawn "$(lab_node_ns "$i")" "$LAB_DIR/vipd-node$i.log" "$VIPD_BIN" "${args[@]}"
    VIPD_PIDS[$i]=$LAB_LAST_PID
done
echo "accept: on node$LAB_NODES: vipd ${args[*]}"
lab_wait_ms 15000 50 vip_only_on_leader || fail "VIP on '$(vip_holders)', leader $(plab_leader)"
vipd_alive

attempts=$LAB_DIR/attempts.jsonl
switches=$LAB_DIR/switches.txt
keys=$LAB_DIR/keys.jsonl
stop=$LAB_DIR/client.stop
: >"$switches"
# The leader key's events, timestamped as they arrive (a watch stream; no node is polled).
lab_spawn "$(lab_client_ns)" "$LAB_DIR/keys.log" "$PLAB_PYTHON" "$ROOT/tests/accept/patroni-poll.py" \
    poll --out "$keys" --etcd "$LAB_ENDPOINT" --key "$PLAB_KEY" --stop-file "$stop" \
    --max-seconds $((120 * SWITCHOVERS + 60))
lab_spawn "$(lab_client_ns)" "$LAB_DIR/client.log" "$PLAB_PYTHON" "$ROOT/tests/accept/vip-client.py" \
    run --host "$VIP" --out "$attempts" --stop-file "$stop" --interval-ms "$CLIENT_MS" \
    --max-seconds $((120 * SWITCHOVERS + 60))
client_pid=$LAB_LAST_PID
sleep 2

for ((k = 1; k <= SWITCHOVERS; k++)); do
    leader=$(plab_leader)
    next=node$((${leader#node} % LAB_NODES + 1))
    t0=$(lab_now_ms)
    echo "accept: switchover $k: $leader -> $next"
    plab_switchover "$next" >/dev/null || fail "switchover $k refused: $(cat "$LAB_DIR/switchover.out")"
    plab_wait_cluster 60000 || fail "switchover $k did not settle"
    [[ $(plab_leader) == "$next" ]] || fail "switchover $k: the leader is $(plab_leader)"
    lab_wait_ms 15000 50 vip_only_on_leader ||
        fail "switchover $k: VIP on '$(vip_holders)', leader $(plab_leader)"
    echo "$t0 $(lab_now_ms) $leader $next" >>"$switches"
    vipd_alive
    sleep 2
done

touch "$stop"
lab_wait_ms 5000 50 lab_dead "$client_pid" || fail "the client did not stop"
[[ -s $attempts ]] || fail "the client made no attempt: $(tail -n 3 "$LAB_DIR/client.log")"
echo "accept: $(($(lab_now_ms) - t_begin)) ms in all; vipd ${EXTRA[*]:-(no extra arguments)}"
"$PLAB_PYTHON" "$ROOT/tests/accept/vip-client.py" report --attempts "$attempts" --switches "$switches" \
    --keys "$keys"
