#!/usr/bin/env bash
# bench/react.sh: how fast does vipd react to the kernel, and what does waiting on every
# source cost when idle?
#
# Builds the lab (demo/lab.sh: a bridge, a real etcd, three node namespaces and a client
# namespace, documentation addresses only) and, for each DCS path (etcd v3, etcd v2, and
# Consul through a fake of its KV API, bench/fake-consul.py, since Debian has no Consul),
# runs vipd on the three nodes with the first as leader, then with bench/probe.rs:
#   delete: the VIP removed by hand from the leader (over rtnetlink, as `ip addr del`)
#           → the VIP back on the node, and the first gratuitous ARP in the client;
#   link:   the leader's eth0 taken down, then up → the first gratuitous ARP in the client
#           after the link came up;
# each ROUNDS times; then IDLE seconds with a stable leader: CPU time of each agent
# (/proc/PID/schedstat). VIPD_BEFORE=/path/to/an/older/vipd measures it too.
#
# Usage (as root): make bench   or   ROUNDS=20 IDLE=60 bash bench/react.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-20}
INTERVAL=${INTERVAL:-1000}
IDLE=${IDLE:-60}
OUT=${OUT:-bench/results}
VIPD_BEFORE=${VIPD_BEFORE:-}
KEY=/service/bench/leader
VIP=192.0.2.50
NAME=bench
# shellcheck source=bench/common.sh
. bench/common.sh
bench_setup probe

mkdir -p "$OUT"
LAB_PREFIX=vipdreact-
LAB_ETCD_ARGS=(--enable-v2)
# shellcheck source=demo/lab.sh
. demo/lab.sh
lab_up 3 || die "the lab did not come up"

bench_consul "${KEY}" node1

# run_set LABEL API CMD...: CMD gets " --trigger-value nodeI" appended per node.
run_set() {
    local label=$1 api=$2 i pid what
    shift 2
    local pids=()
    for i in 1 2 3; do
        lab_spawn "$(lab_node_ns "$i")" "$LAB_DIR/$label-node$i.log" "$@" --trigger-value "node$i"
        pids+=("$LAB_LAST_PID")
    done
    sleep 2
    for what in delete link; do
        "$PROBE" --sw "$(lab_sw_ns)" --client "$(lab_client_ns)" \
            --nodes "$(lab_node_ns 1),$(lab_node_ns 2),$(lab_node_ns 3)" --names node1,node2,node3 \
            --vip "$VIP" --etcd "$LAB_ENDPOINT" --key "$KEY" --api "$api" --moves "$ROUNDS" \
            --spacing-ms 2500 --label "$label" --disturb "$what" | tee "$OUT/react-$label-$what.txt"
    done
    echo "bench: $label idle for $IDLE s (leader stable)"
    sleep 3
    local n0=()
    for pid in "${pids[@]}"; do n0+=("$(cpu_ns "$pid")"); done
    sleep "$IDLE"
    local d=() sum=0
    for i in 0 1 2; do
        d+=($(($(cpu_ns "${pids[$i]}") - n0[i])))
        sum=$((sum + d[i]))
    done
    per_min() { awk -v ns="$1" -v n="$2" -v idle="$IDLE" 'BEGIN { printf "%.2f", ns / n / 1e6 * 60 / idle }'; }
    printf '%s idle: %s ms run time per agent per minute (leader %s, followers %s)\n' "$label" \
        "$(per_min "$sum" 3)" "$(per_min "${d[0]}" 1)" "$(per_min $((d[1] + d[2])) 2)" \
        | tee "$OUT/react-$label-idle.txt"
    for pid in "${pids[@]}"; do lab_stop "$pid" 5000 || true; done
}

COMMON=(--ip "$VIP" --netmask 24 --interface eth0 --trigger-key "$KEY" --interval "$INTERVAL")
sets=()
agents=(vipd "$VIPD")
[[ -z $VIPD_BEFORE ]] || agents+=(vipd-before "$VIPD_BEFORE")
for ((a = 0; a < ${#agents[@]}; a += 2)); do
    name=${agents[a]} bin=${agents[a + 1]}
    run_set "$name-etcd3" v3 "$bin" "${COMMON[@]}" --dcs-type etcd3 --dcs-endpoints "$LAB_ENDPOINT"
    run_set "$name-etcd2" v2 "$bin" "${COMMON[@]}" --dcs-type etcd2 --dcs-endpoints "$LAB_ENDPOINT"
    # The probe's own key write goes to etcd (ignored here): the fake Consul already says node1.
    run_set "$name-consul" v3 "$bin" "${COMMON[@]}" --dcs-type consul --dcs-endpoints "$CONSUL_URL"
    sets+=("$name-etcd3" "$name-etcd2" "$name-consul")
done

echo
for s in "${sets[@]}"; do
    grep -h -- '->\|idle:' "$OUT/react-$s-delete.txt" "$OUT/react-$s-link.txt" "$OUT/react-$s-idle.txt"
done | tee "$OUT/react-summary.txt"
echo "bench: raw numbers in $OUT/"
