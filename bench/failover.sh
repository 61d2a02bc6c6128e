#!/usr/bin/env bash
# bench/failover.sh: how fast does the VIP move, and what does an idle agent cost?
#
# Builds the test lab (demo/lab.sh: a bridge, a real etcd, three node namespaces and
# a client namespace, documentation addresses only), runs the agents on the three
# nodes (started at random phases of the interval), moves the leader key MOVES times
# (each at a random phase too) and measures each move with bench/probe.rs (one
# clock: t0 just before the HTTP write → VIP on the new node, VIP gone from the old
# one, first gratuitous ARP in the client namespace; windows with the VIP on two
# nodes or on none). Then IDLE seconds with a stable leader:
# CPU time (utime+stime from /proc/PID/stat, and the exact run time from
# /proc/PID/schedstat) and peak memory (VmHWM) of each agent.
#
# Agents: vipd (static musl build) with its watch, vipd --no-watch, vipd with
# --patroni-url (primary-check on) against a fake Patroni on each node's loopback that
# says "running primary" at once (the gating's own delay), the vipd at VIPD_BEFORE
# when given (a before/after comparison in one run), and Debian's vip-manager 1.0.2
# when installed (apt-get install vip-manager); 1.0.2 reads only etcd's v2 API, so
# etcd runs with --enable-v2 and its key is written through v2.
#
# Usage (as root): make bench   or   MOVES=20 INTERVAL=1000 IDLE=60 bash bench/failover.sh
#                  VIPD_BEFORE=/path/to/an/older/vipd adds it as "vipd-before".
# Raw numbers: bench/results/ (CSV per agent and a summary).
set -euo pipefail
cd "$(dirname "$0")/.."

MOVES=${MOVES:-20}
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
LAB_PREFIX=vipdbench-
LAB_ETCD_ARGS=(--enable-v2)
# shellcheck source=demo/lab.sh
. demo/lab.sh
lab_up 3 || die "the lab did not come up"

# cpu_ns PID: run time in ns of all the process's threads (schedstat; Go runs its work on
# several threads, so the main thread's alone would undercount vip-manager).
# cpu_ticks PID: utime+stime in clock ticks (all threads, 10 ms granularity).
# (%.0f: mawk's %d stops at 2^31 ns.)
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
TCK=$(getconf CLK_TCK)

# run_set LABEL API CMD...: CMD gets " --trigger-value nodeI" appended per node.
run_set() {
    local label=$1 api=$2 i pid
    shift 2
    local pids=()
    lab_put "$KEY" none
    for i in 1 2 3; do
        # Random phases, as agents started at different times have: the agents that
        # poll once per interval then see a move at different moments.
        local ms=$((RANDOM % INTERVAL))
        sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
        lab_spawn "$(lab_node_ns "$i")" "$LAB_DIR/$label-node$i.log" "$@" --trigger-value "node$i"
        pids+=("$LAB_LAST_PID")
    done
    sleep 2
    "$PROBE" --sw "$(lab_sw_ns)" --client "$(lab_client_ns)" \
        --nodes "$(lab_node_ns 1),$(lab_node_ns 2),$(lab_node_ns 3)" --names node1,node2,node3 \
        --vip "$VIP" --etcd "$LAB_ENDPOINT" --key "$KEY" --api "$api" --moves "$MOVES" \
        --spacing-ms "$INTERVAL" --label "$label" --out "$OUT/$label-moves.csv" | tee "$OUT/$label-moves.txt"
    echo "bench: $label idle for $IDLE s (leader stable)"
    sleep 3
    local t0=() n0=()
    for pid in "${pids[@]}"; do
        t0+=("$(cpu_ticks "$pid")")
        n0+=("$(cpu_ns "$pid")")
    done
    sleep "$IDLE"
    : >"$OUT/$label-idle.csv"
    for i in 0 1 2; do
        pid=${pids[$i]}
        local ticks ns hwm
        ticks=$(($(cpu_ticks "$pid") - t0[i]))
        ns=$(($(cpu_ns "$pid") - n0[i]))
        hwm=$(hwm_kib "$pid")
        printf '%s,node%d,%d,%d,%d,%d\n' "$label" $((i + 1)) "$((ticks * 1000 / TCK))" "$((ns / 1000))" "$hwm" "$IDLE" \
            >>"$OUT/$label-idle.csv"
    done
    for pid in "${pids[@]}"; do lab_stop "$pid" 5000 || true; done
}

# A fake Patroni REST API on each node's 127.0.0.1:8008: GET /patroni says a running
# primary at once, in the shape Patroni 3.0 answers.
FAKE_PATRONI='
import http.server
B = b"{\"state\": \"running\", \"role\": \"master\", \"patroni\": {\"version\": \"3.0.2\"}}"
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(B)))
        self.end_headers()
        self.wfile.write(B)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", 8008), H).serve_forever()
'
for i in 1 2 3; do
    lab_spawn "$(lab_node_ns "$i")" "$LAB_DIR/patroni-node$i.log" python3 -c "$FAKE_PATRONI"
done

COMMON=(--ip "$VIP" --netmask 24 --interface eth0 --trigger-key "$KEY" --dcs-endpoints "$LAB_ENDPOINT" --interval "$INTERVAL")
# vipd puts the key through v3; the v2 writes are for vip-manager only.
run_set vipd v3 "$VIPD" "${COMMON[@]}"
run_set vipd-nowatch v3 "$VIPD" "${COMMON[@]}" --no-watch
run_set vipd-gated v3 "$VIPD" "${COMMON[@]}" --patroni-url http://127.0.0.1:8008
sets=(vipd vipd-nowatch vipd-gated)
if [[ -n $VIPD_BEFORE ]]; then
    run_set vipd-before v3 "$VIPD_BEFORE" "${COMMON[@]}"
    sets+=(vipd-before)
fi
if command -v vip-manager >/dev/null; then
    run_set vip-manager v2 vip-manager "${COMMON[@]}" --dcs-type etcd
    sets+=(vip-manager)
else
    echo "bench: vip-manager is not installed (apt-get install vip-manager): measuring vipd only"
fi

# Summary: medians and maxima per agent, idle CPU and memory, ratios to vip-manager.
summary() {
    local s
    printf '\n%-14s %11s %11s %11s %11s %11s %11s %10s %10s %10s\n' agent \
        "vip med ms" "vip max ms" "garp med" "garp max" "2-node max" "0-node max" "cpu ms/min" "run ms/min" "VmHWM KiB"
    for s in "${sets[@]}"; do
        awk -F, -v s="$s" -v idle="$IDLE" -v idlefile="$OUT/$s-idle.csv" '
            function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
                                            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
            NR > 1 && $5 != "" { na++; add[na] = $5; if ($5 > amax) amax = $5 }
            NR > 1 && $7 != "" { ng++; garp[ng] = $7; if ($7 > gmax) gmax = $7 }
            NR > 1 { if ($8 > tmax) tmax = $8; if ($9 > nmax) nmax = $9 }
            END {
                while ((getline line < idlefile) > 0) { split(line, f, ","); cpu += f[3]; run += f[4]; if (f[5] > hwm) hwm = f[5]; k++ }
                printf "%-14s %11.2f %11.2f %11.2f %11.2f %11.2f %11.2f %10.1f %10.2f %10d\n", s,
                    (na ? med(add, na) : -1), amax, (ng ? med(garp, ng) : -1), gmax, tmax, nmax,
                    (k ? cpu / k * 60 / idle : -1), (k ? run / k / 1000 * 60 / idle : -1), hwm
            }' "$OUT/$s-moves.csv"
    done
}
summary | tee "$OUT/summary.txt"
if [[ " ${sets[*]} " == *" vip-manager "* ]]; then
    awk 'NR > 2 { v[$1] = $0; for (i = 2; i <= NF; i++) c[$1, i] = $i }
         END { printf "\nratios vipd / vip-manager:"; split("vip-med vip-max garp-med garp-max 2node-max 0node-max cpu run hwm", h, " ")
               for (i = 2; i <= 10; i++) if (c["vip-manager", i] > 0) printf "  %s %.3f", h[i - 1], c["vipd", i] / c["vip-manager", i]
               printf "\n" }' "$OUT/summary.txt" | tee -a "$OUT/summary.txt"
fi
echo "bench: raw numbers in $OUT/"
