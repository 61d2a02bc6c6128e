#!/usr/bin/env bash
# bench/fleet.sh: what does a fleet of idle agents cost etcd, and what does each agent cost?
#
# One etcd (demo/lab.sh's lab, started with --enable-v2) and N agents in one node
# namespace, all on its eth0, each watching its own key /service/fleetI/leader that names
# another node ("other"), so no agent ever adds its VIP. Windows of IDLE seconds: first
# etcd alone (the baseline), then for each kind of agent: start N of them, let them settle
# SETTLE seconds, measure, stop them. Measured over each window: etcd's CPU time as
# utime+stime (/proc/PID/stat, 10 ms ticks) and as the exact run time of all its threads
# (/proc/PID/task/*/schedstat); the same summed over the N agents, and their mean VmRSS at
# the window's end. etcd's cost per agent per minute = (window - baseline) / N / minutes.
#
# Kinds: vipd-v3 (static musl vipd, --dcs-type etcd3), vipd-v2 (--dcs-type etcd2),
# vip-manager (Debian's 1.0.2, which reads only etcd's v2 API; skipped when not installed:
# apt-get install vip-manager), and vipd-before (VIPD_BEFORE=/path/to/an/older/vipd,
# --dcs-type etcd3) for a before/after comparison in one run. Each key is written through
# both APIs (v2 and v3 keep separate stores), so every kind finds its own.
#
# Usage (as root): make bench-fleet   or   N=20 IDLE=60 VIPD_BEFORE=/tmp/vipd bash bench/fleet.sh
# Output: the table on stdout and in bench/results/fleet-summary.txt, raw numbers in
# bench/results/fleet.csv.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-20}
IDLE=${IDLE:-60}
SETTLE=${SETTLE:-5}
INTERVAL=${INTERVAL:-1000}
OUT=${OUT:-bench/results}
VIPD_BEFORE=${VIPD_BEFORE:-}
VIP=192.0.2.50
NAME=bench-fleet
# shellcheck source=bench/common.sh
. bench/common.sh
[[ $N =~ ^[1-9][0-9]{0,2}$ && $IDLE =~ ^[1-9][0-9]*$ && $SETTLE =~ ^[0-9]+$ ]] ||
    die "N (1..999), IDLE and SETTLE must be whole numbers, got N=$N IDLE=$IDLE SETTLE=$SETTLE"
bench_setup vipd

mkdir -p "$OUT"
LAB_PREFIX=vipdfleet-
LAB_ETCD_ARGS=(--enable-v2)
# shellcheck source=demo/lab.sh
. demo/lab.sh
lab_up 1 || die "the lab did not come up"
NS=$(lab_node_ns 1)

# As in bench/failover.sh: run time of all threads in ns, utime+stime in ticks. A thread
# may exit between the glob and cat; mawk's %d stops at 2^31 ns, which etcd passes.
cpu_ns() {
    { cat /proc/"$1"/task/*/schedstat 2>/dev/null || true; } | awk '{ s += $1 } END { printf "%.0f\n", s }'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
TCK=$(getconf CLK_TCK)

# pause S: sleep S seconds in a way a signal cuts short (bash runs a trap only after a
# foreground command ends, but at once during `wait`); lab_down ends the sleep too.
PAUSE_PID=
pause() {
    sleep "$1" &
    PAUSE_PID=$!
    wait "$PAUSE_PID"
}
lab_on_down() { [[ -z $PAUSE_PID ]] || kill "$PAUSE_PID" 2>/dev/null || true; }

echo "bench-fleet: writing $N leader keys (v3 and v2), each naming node \"other\""
for ((i = 1; i <= N; i++)); do
    lab_put "/service/fleet$i/leader" other
    ETCDCTL_API=2 ip netns exec "$(lab_sw_ns)" "$LAB_ETCDCTL" --endpoints="$LAB_ENDPOINT" \
        set "/service/fleet$i/leader" other >/dev/null
done

# window LABEL PIDS...: measure etcd and PIDS for IDLE seconds; append a CSV row
# (label, agents, elapsed ms, etcd cpu ms, etcd run us, agents cpu ms, agents run us,
# agents' mean VmRSS KiB, agents alive at the end).
window() {
    local label=$1 pid t0 t1 e_t0 e_n0 a_t0=0 a_n0=0 a_t1=0 a_n1=0 rss=0 alive=0
    shift
    e_t0=$(cpu_ticks "$LAB_ETCD_PID")
    e_n0=$(cpu_ns "$LAB_ETCD_PID")
    for pid in "$@"; do
        a_t0=$((a_t0 + $(cpu_ticks "$pid")))
        a_n0=$((a_n0 + $(cpu_ns "$pid")))
    done
    t0=$(lab_now_ms)
    pause "$IDLE"
    local e_t1 e_n1
    e_t1=$(cpu_ticks "$LAB_ETCD_PID")
    e_n1=$(cpu_ns "$LAB_ETCD_PID")
    for pid in "$@"; do
        lab_alive "$pid" || continue
        alive=$((alive + 1))
        a_t1=$((a_t1 + $(cpu_ticks "$pid")))
        a_n1=$((a_n1 + $(cpu_ns "$pid")))
        rss=$((rss + $(rss_kib "$pid")))
    done
    t1=$(lab_now_ms)
    printf '%s,%d,%d,%d,%d,%d,%d,%d,%d\n' "$label" $# $((t1 - t0)) \
        $(((e_t1 - e_t0) * 1000 / TCK)) $(((e_n1 - e_n0) / 1000)) \
        $(((a_t1 - a_t0) * 1000 / TCK)) $(((a_n1 - a_n0) / 1000)) \
        $((alive ? rss / alive : 0)) "$alive" >>"$OUT/fleet.csv"
    ((alive == $#)) || echo "bench-fleet: $label: only $alive of $# agents were alive at the end (logs in $LAB_DIR)" >&2
}

# run_kind LABEL CMD...: CMD gets each agent's key and node name appended.
run_kind() {
    local label=$1 i pid
    shift
    local pids=()
    echo "bench-fleet: $label: $N agents, $SETTLE s to settle, $IDLE s measured"
    for ((i = 1; i <= N; i++)); do
        lab_spawn "$NS" "$LAB_DIR/$label-$i.log" "$@" \
            --trigger-key "/service/fleet$i/leader" --trigger-value "fleet$i"
        pids+=("$LAB_LAST_PID")
    done
    pause "$SETTLE"
    for pid in "${pids[@]}"; do
        lab_alive "$pid" || { tail -n 5 "$LAB_DIR/$label-1.log" >&2; die "$label: an agent exited at start"; }
    done
    window "$label" "${pids[@]}"
    if lab_has_addr "$NS" "$LAB_IF" "$VIP"; then die "$label: an agent added the VIP"; fi
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do lab_stop "$pid" 5000 || true; done
}

echo 'window,agents,elapsed_ms,etcd_cpu_ms,etcd_run_us,agents_cpu_ms,agents_run_us,agents_rss_kib_mean,agents_alive' \
    >"$OUT/fleet.csv"
echo "bench-fleet: baseline: etcd alone for $IDLE s"
window baseline
COMMON=(--ip "$VIP" --netmask 24 --interface "$LAB_IF" --dcs-endpoints "$LAB_ENDPOINT" --interval "$INTERVAL")
run_kind vipd-v3 "$VIPD" "${COMMON[@]}" --dcs-type etcd3
run_kind vipd-v2 "$VIPD" "${COMMON[@]}" --dcs-type etcd2
[[ -z $VIPD_BEFORE ]] || run_kind vipd-before "$VIPD_BEFORE" "${COMMON[@]}" --dcs-type etcd3
if command -v vip-manager >/dev/null; then
    run_kind vip-manager vip-manager "${COMMON[@]}" --dcs-type etcd
else
    echo "bench-fleet: vip-manager is not installed (apt-get install vip-manager): vipd only"
fi

# The table: per agent per minute; etcd's share net of the baseline.
awk -F, -v n="$N" -v idle="$IDLE" '
    NR == 1 { next }
    $1 == "baseline" { bc = $4 / $3 * 60000; br = $5 / 1000 / $3 * 60000
                       printf "%d agents per kind, %d s windows; etcd alone: %.1f ms/min ticks, %.2f ms/min run time\n", n, idle, bc, br
                       printf "per agent per minute (etcd: window minus baseline, divided by the agents):\n\n"
                       printf "%-12s %14s %14s %14s %14s %12s\n", "agents", "etcd cpu ms", "etcd run ms", "agent cpu ms", "agent run ms", "VmRSS KiB"
                       next }
    { m = $3 / 60000
      printf "%-12s %14.2f %14.2f %14.2f %14.2f %12d\n", $1, ($4 / m - bc) / $2, ($5 / 1000 / m - br) / $2,
             $6 / m / $2, $7 / 1000 / m / $2, $8 }' "$OUT/fleet.csv" | tee "$OUT/fleet-summary.txt"
echo "bench-fleet: raw numbers in $OUT/fleet.csv"
