#!/usr/bin/env bash
# bench/conflict.sh: what does the conflict listener cost a holding vipd while other
# ARP traffic passes?
#
# Builds the test lab (demo/lab.sh: a bridge, a real etcd, one node namespace and a
# client namespace, documentation addresses only), makes node1 hold the VIP, then
# measures the holder's CPU time (utime+stime from /proc/PID/stat, all threads) over
# IDLE seconds twice: on a quiet segment, and while the client sends RATE gratuitous
# ARP packets per second for other documentation addresses (192.0.2.150-199), which the
# listener's BPF filter must drop in the kernel. The conflict probe runs at its default
# (every 10 s) in both.
#
# Usage (as root): bash bench/conflict.sh   or   IDLE=60 RATE=1000 bash bench/conflict.sh
# Raw numbers: bench/results/conflict.csv and conflict-summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

IDLE=${IDLE:-60}
RATE=${RATE:-1000}
OUT=${OUT:-bench/results}
KEY=/service/bench/leader
VIP=192.0.2.50

die() { echo "bench: $*" >&2; exit 1; }
[[ $EUID == 0 ]] || die "run as root (network namespaces): sudo env \"PATH=\$PATH\" bash bench/conflict.sh"
command -v python3 >/dev/null || die "python3 is needed for the ARP sender (apt-get install python3)"

echo "bench: building vipd (release)"
cargo build --quiet --release
VIPD=$PWD/target/release/vipd

mkdir -p "$OUT"
LAB_PREFIX=vipdbenchc-
# shellcheck source=demo/lab.sh
. demo/lab.sh
lab_up 1 || die "the lab did not come up"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# The exact run time in ns of all threads (schedstat): utime+stime counts 10 ms ticks.
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
TCK=$(getconf CLK_TCK)

# RATE gratuitous ARP requests per second from the client's MAC for 192.0.2.150-199,
# paced in batches of a tenth of a second, for the given number of seconds.
SENDER='
import socket, struct, sys, time
rate, duration = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0x0806))
mac = s.getsockname()[4]
def garp(i):
    ip = bytes([192, 0, 2, 150 + i % 50])
    return (b"\xff" * 6 + mac + b"\x08\x06" + struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1)
            + mac + ip + b"\x00" * 6 + ip)
frames = [garp(i) for i in range(50)]
batch, sent, start = max(1, rate // 10), 0, time.monotonic()
while time.monotonic() - start < duration:
    for _ in range(batch):
        s.send(frames[sent % 50])
        sent += 1
    due = start + sent / rate
    time.sleep(max(0.0, due - time.monotonic()))
print(sent)
'

NODE=$(lab_node_ns 1)
lab_put "$KEY" node1
lab_spawn "$NODE" "$LAB_DIR/vipd.log" "$VIPD" --ip "$VIP" --netmask 24 --interface eth0 \
    --trigger-key "$KEY" --trigger-value node1 --dcs-endpoints "$LAB_ENDPOINT"
PID=$LAB_LAST_PID
lab_wait_ms 10000 20 lab_has_addr "$NODE" eth0 "$VIP" || die "node1 never held the VIP"
sleep 3

# measure LABEL: the holder's CPU time over IDLE seconds (utime+stime in ms, run time in µs).
measure() {
    local t0 t1 n0 n1
    t0=$(cpu_ticks "$PID")
    n0=$(cpu_ns "$PID")
    sleep "$IDLE"
    t1=$(cpu_ticks "$PID")
    n1=$(cpu_ns "$PID")
    printf '%s,%d,%d,%d\n' "$1" "$(((t1 - t0) * 1000 / TCK))" "$(((n1 - n0) / 1000))" "$IDLE" \
        >>"$OUT/conflict.csv"
}

: >"$OUT/conflict.csv"
echo "bench: holder idle for $IDLE s, quiet segment"
measure quiet
echo "bench: holder idle for $IDLE s, $RATE unrelated ARP packets per second"
lab_spawn "$(lab_client_ns)" "$LAB_DIR/sender.log" python3 -c "$SENDER" "$RATE" "$((IDLE + 2))"
SENDER_PID=$LAB_LAST_PID
sleep 1
measure "arp-$RATE-per-s"
lab_wait_ms 5000 50 lab_dead "$SENDER_PID" || true
SENT=$(cat "$LAB_DIR/sender.log")
grep -q "conflict" "$LAB_DIR/vipd.log" && die "the holder logged a conflict: $(grep conflict "$LAB_DIR/vipd.log")"
lab_stop "$PID" 5000 || true

{
    printf '%-20s %12s %12s %10s\n' segment "cpu ms/min" "run ms/min" "seconds"
    awk -F, '{ printf "%-20s %12.1f %12.2f %10d\n", $1, $2 * 60 / $4, $3 / 1000 * 60 / $4, $4 }' "$OUT/conflict.csv"
    printf 'ARP packets sent: %s\n' "$SENT"
} | tee "$OUT/conflict-summary.txt"
echo "bench: raw numbers in $OUT/"
