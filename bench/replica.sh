#!/usr/bin/env bash
# bench/replica.sh: how fast does a replica VIP follow the scope's records, and what does
# an idle replica instance cost on a cluster whose members rewrite their records?
#
# Builds the lab (demo/lab.sh: a bridge, a real etcd, three node namespaces and a client
# namespace, documentation addresses only) and, for etcd v3, etcd v2 and Consul (a fake of
# its KV API, bench/fake-consul.py, since Debian has no Consul), runs on every node a vipd
# for the replica VIP 192.0.2.60 (vip-role replica, replica-max-lag 1MB, replica-settle
# 500 ms) and one for the primary VIP 192.0.2.50. node1 leads; bench/probe.rs writes the
# scope's records as Patroni 3.0.2 writes them and, ROUNDS times, makes the replica VIP's
# holder fall over replica-max-lag: record write → the VIP on the other replica, gone
# from the old one, and the first gratuitous ARP in the client. Then IDLE seconds during
# which every member record (and the leader's status) is rewritten every 10 s, spread
# over the period, as Patroni's loop_wait does: the CPU time of the replica instances
# and of the primary instances (/proc/PID/schedstat), side by side.
#
# Usage (as root): make bench-replica   or   ROUNDS=20 IDLE=60 bash bench/replica.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-20}
INTERVAL=${INTERVAL:-1000}
IDLE=${IDLE:-60}
OUT=${OUT:-bench/results}
SCOPE=/service/bench/
KEY=${SCOPE}leader
VIP=192.0.2.50
RO_VIP=192.0.2.60
NAME=bench
# shellcheck source=bench/common.sh
. bench/common.sh
bench_setup probe

mkdir -p "$OUT"
LAB_PREFIX=vipdro-
LAB_ETCD_ARGS=(--enable-v2)
# shellcheck source=demo/lab.sh
. demo/lab.sh
lab_up 3 || die "the lab did not come up"

bench_consul "/up" 1

probe() {
    "$PROBE" --sw "$(lab_sw_ns)" --client "$(lab_client_ns)" \
        --nodes "$(lab_node_ns 2),$(lab_node_ns 3)" --names node2,node3 --leader node1 \
        --vip "$RO_VIP" --key "$KEY" --scope "$SCOPE" "$@"
}

# run_set LABEL API ENDPOINT DCS-OPTIONS...
run_set() {
    local label=$1 api=$2 endpoint=$3 i
    shift 3
    local ro=() rw=()
    for i in 1 2 3; do
        lab_spawn "$(lab_node_ns "$i")" "$LAB_DIR/$label-ro-node$i.log" "$VIPD" --ip "$RO_VIP" \
            --netmask 24 --interface eth0 --trigger-key "$KEY" --interval "$INTERVAL" "$@" \
            --vip-role replica --replica-max-lag 1MB --replica-settle 500 --trigger-value "node$i"
        ro+=("$LAB_LAST_PID")
        lab_spawn "$(lab_node_ns "$i")" "$LAB_DIR/$label-rw-node$i.log" "$VIPD" --ip "$VIP" \
            --netmask 24 --interface eth0 --trigger-key "$KEY" --interval "$INTERVAL" "$@" \
            --trigger-value "node$i"
        rw+=("$LAB_LAST_PID")
    done
    sleep 1
    probe --etcd "$endpoint" --api "$api" --moves "$ROUNDS" --spacing-ms 1500 \
        --label "$label" | tee "$OUT/replica-$label-moves.txt"
    echo "bench: $label idle for $IDLE s, every member record rewritten every 10 s"
    probe --etcd "$endpoint" --api "$api" --moves 0 --rewrite-for "$((IDLE + 10))" \
        --label "$label" >"$OUT/replica-$label-rewrites.txt" &
    local writer=$!
    sleep 7
    local r0=() w0=()
    for i in 0 1 2; do
        r0+=("$(cpu_ns "${ro[$i]}")")
        w0+=("$(cpu_ns "${rw[$i]}")")
    done
    sleep "$IDLE"
    local rsum=0 wsum=0
    for i in 0 1 2; do
        rsum=$((rsum + $(cpu_ns "${ro[$i]}") - r0[i]))
        wsum=$((wsum + $(cpu_ns "${rw[$i]}") - w0[i]))
    done
    wait "$writer" || die "the record writer failed"
    cat "$OUT/replica-$label-rewrites.txt"
    per_min() { awk -v ns="$1" -v idle="$IDLE" 'BEGIN { printf "%.2f", ns / 3 / 1e6 * 60 / idle }'; }
    printf '%s idle: %s ms run time per replica instance per minute, %s per primary instance\n' \
        "$label" "$(per_min "$rsum")" "$(per_min "$wsum")" | tee "$OUT/replica-$label-idle.txt"
    for i in 0 1 2; do
        lab_stop "${ro[$i]}" 5000 || true
        lab_stop "${rw[$i]}" 5000 || true
    done
}

run_set etcd3 v3 "$LAB_ENDPOINT" --dcs-type etcd3 --dcs-endpoints "$LAB_ENDPOINT"
run_set etcd2 v2 "$LAB_ENDPOINT" --dcs-type etcd2 --dcs-endpoints "$LAB_ENDPOINT"
run_set consul consul "$CONSUL_URL" --dcs-type consul --dcs-endpoints "$CONSUL_URL"

echo
for s in etcd3 etcd2 consul; do
    grep -h -- '->\|idle:' "$OUT/replica-$s-moves.txt" "$OUT/replica-$s-idle.txt"
done | tee "$OUT/replica-summary.txt"
echo "bench: raw numbers in $OUT/"
