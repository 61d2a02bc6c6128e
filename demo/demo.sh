#!/usr/bin/env bash
# demo/demo.sh (`make demo`, as root): vipd moving a virtual IP between two nodes.
#
# Builds a throwaway lab of network namespaces (demo/lab.sh): a "switch" with a bridge
# and a real etcd, two nodes running vipd, and a client that watches ARP. Moves
# Patroni's leader key with etcdctl and shows the VIP and its gratuitous ARP
# announcements following it, with timings. Everything is removed at the end, also
# after a failure or Ctrl-C. Only documentation addresses (192.0.2.0/24) are used.
#
# Environment: VIPD=/path/to/vipd uses that binary instead of `cargo build --release`.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=demo/lab.sh
. "$ROOT/demo/lab.sh"

KEY=/service/demo/leader
VIP=192.0.2.50
NETMASK=24
INTERVAL=1000
ANNOUNCE_COUNT=3 # vipd's default

say() { printf '%s\n' "$*"; }
fail() {
    printf '\ndemo FAILED: %s\n' "$*" >&2
    show_logs >&2 || true
    exit 1
}

# ---------------------------------------------------------------- prerequisites

if ((EUID != 0)); then
    say "demo: needs root (network namespaces). Run: sudo env \"PATH=\$PATH\" make demo" >&2
    exit 1
fi
if ((BASH_VERSINFO[0] < 5)); then
    say "demo: needs bash 5 or newer" >&2
    exit 1
fi

# The packages the demo needs, from the project's one list (installed when missing).
install_missing() {
    bash "$ROOT/.ci/deps" demo || fail "cannot install the packages the demo needs"
}

# build_vipd: sets VIPD_BIN.
build_vipd() {
    if [[ -n ${VIPD:-} ]]; then
        [[ -x $VIPD ]] || fail "VIPD=$VIPD is not an executable file"
        VIPD_BIN=$VIPD
        return
    fi
    if ! command -v cargo >/dev/null; then
        say "demo: cargo not found in PATH (PATH=$PATH)." >&2
        say "      With rustup in your home directory run: sudo env \"PATH=\$PATH\" make demo" >&2
        say "      or build first and point to the binary: VIPD=/path/to/vipd make demo" >&2
        exit 1
    fi
    say "building vipd: cargo build --release"
    # Under sudo, as-owner.sh builds as the owner of the checkout.
    (cd "$ROOT" && bash demo/as-owner.sh run cargo build --release --quiet) ||
        fail "cargo build failed"
    VIPD_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/vipd
    [[ $VIPD_BIN == /* ]] || VIPD_BIN=$ROOT/$VIPD_BIN
    [[ -x $VIPD_BIN ]] || fail "no binary at $VIPD_BIN after the build"
}

install_missing
build_vipd

# ---------------------------------------------------------------- helpers

N1=$(lab_node_ns 1)
N2=$(lab_node_ns 2)
CL=$(lab_client_ns)
MAC1=$(lab_node_mac 1)
MAC2=$(lab_node_mac 2)
MACC=$(lab_client_mac)
ARP_LOG= # set once the lab is up
declare -A VIPD_PID=()

vipd_args() { # NODE_NAME
    printf '%s\n' --interval "$INTERVAL" --dcs-endpoints "$LAB_ENDPOINT" \
        --trigger-key "$KEY" --trigger-value "$1" \
        --ip "$VIP" --netmask "$NETMASK" --interface "$LAB_IF"
}

show_logs() {
    local n
    [[ -n ${LAB_DIR:-} ]] || return 0
    for n in node1 node2; do
        [[ -s $LAB_DIR/$n.log ]] || continue
        say "--- vipd log, $n ---"
        tail -n 40 "$LAB_DIR/$n.log" | sed 's/^/  /'
    done
}

# arp_since T0_MS: captured frames with a timestamp at or after T0_MS.
arp_since() {
    awk -v t0="$1" '$1 ~ /^[0-9]+\.[0-9]+$/ && $1 * 1000 >= t0' "$ARP_LOG"
}

# announcements_since T0_MS MAC: gratuitous ARPs for the VIP sent by MAC.
announcements_since() {
    arp_since "$1" | grep -F " $2 > " |
        grep -cE "who-has $VIP tell $VIP|Reply $VIP is-at" || true
}

# print_arp T0_MS: the captured frames about the VIP since T0_MS, time relative to it.
print_arp() {
    local t0=$1 line ts us ms src dst what
    while read -r line; do
        [[ $line == *"$VIP"* ]] || continue
        ts=${line%% *}
        us=${ts#*.}000
        ms=$((${ts%.*} * 1000 + 10#${us:0:3} - t0))
        read -r _ src _ dst _ <<<"$line"
        what=${line#*: }
        what=${what%, length*}
        printf '     %+6d ms  %s > %s  %s\n' "$ms" "$src" "${dst%,}" "$what"
    done < <(arp_since "$t0")
}

# who_has_vip: "node1", "node2", "node1+node2" or "nobody".
who_has_vip() {
    local h=()
    lab_has_addr "$N1" "$LAB_IF" "$VIP" && h+=(node1)
    lab_has_addr "$N2" "$LAB_IF" "$VIP" && h+=(node2)
    local IFS=+
    if ((${#h[@]} > 0)); then say "${h[*]}"; else say nobody; fi
}

both_alive() { lab_alive "${VIPD_PID[node1]}" && lab_alive "${VIPD_PID[node2]}"; }

# wait_vip NS present|absent: poll `ip -br addr` every 10 ms, at most 5 s; print the
# time in ms since T0 (set by put_timed) when the state was reached; non-zero on timeout.
wait_vip() {
    local ns=$1 want=$2 check=lab_has_addr
    [[ $want == absent ]] && check=lab_lacks_addr
    lab_wait_ms 5000 10 "$check" "$ns" "$LAB_IF" "$VIP" || return 1
    say $(($(lab_now_ms) - T0))
}

# put_timed ARGS...: T0 = just before, PUT_MS = how long etcdctl took.
put_timed() {
    T0=$(lab_now_ms)
    "$@" || fail "$* failed"
    PUT_MS=$(($(lab_now_ms) - T0))
}

# wait_announcements T0_MS MAC: until ANNOUNCE_COUNT were captured (at most 5 s).
wait_announcements() {
    local want=$ANNOUNCE_COUNT
    _enough() { (($(announcements_since "$1" "$2") >= want)); }
    lab_wait_ms 5000 100 _enough "$1" "$2" || true
}

# ---------------------------------------------------------------- the lab

LAB_QUIET=1
lab_up 2 || fail "could not build the lab"
ARP_LOG=$LAB_DIR/arp.txt

say
say "vipd demo: one etcd, two nodes running vipd, one client, on one bridge"
say "  etcd    $LAB_ENDPOINT  ($("$LAB_ETCD" --version | head -n 1))"
say "  node1   $(lab_node_ip 1)  $MAC1  vipd --trigger-value node1"
say "  node2   $(lab_node_ip 2)  $MAC2  vipd --trigger-value node2"
say "  client  $LAB_CLIENT_IP $MACC  tcpdump arp"
say "  VIP $VIP/$NETMASK on $LAB_IF, leader key $KEY"
say "  times: ms since etcdctl was started; addresses polled every 10 ms"
say "  namespaces ${LAB_PREFIX}{sw,node1,node2,client}; $("$VIPD_BIN" --version 2>&1 || true)"

# The client captures ARP and anything IPv4 it sends itself.
lab_spawn "$CL" "$ARP_LOG" tcpdump --immediate-mode -l -n -e -tt -i "$LAB_IF" \
    "arp or (ether src $MACC and ip)"
lab_wait_ms 5000 50 grep -q 'listening on' "$ARP_LOG" ||
    fail "tcpdump did not start: $(cat "$ARP_LOG")"

for i in 1 2; do
    mapfile -t args < <(vipd_args "node$i")
    lab_spawn "$(lab_node_ns "$i")" "$LAB_DIR/node$i.log" "$VIPD_BIN" "${args[@]}"
    VIPD_PID[node$i]=$LAB_LAST_PID
done
# Give both a turn of the loop; both must still be running and hold no VIP.
lab_wait_ms 1500 100 false || true
both_alive || fail "vipd exited at start"
[[ $(who_has_vip) == nobody ]] || fail "VIP present before any leader: $(who_has_vip)"

# ---------------------------------------------------------------- 1: leader node1

say
say "1. etcdctl put $KEY node1"
put_timed lab_put "$KEY" node1
t_up=$(wait_vip "$N1" present) || fail "VIP not on node1 within 5 s"
say "   VIP on node1 after $t_up ms (etcdctl put took $PUT_MS ms of it)"
wait_announcements "$T0" "$MAC1"
say "   gratuitous ARP seen by the client (time since the put):"
print_arp "$T0"
[[ $(who_has_vip) == node1 ]] || fail "VIP on $(who_has_vip), expected node1 only"

# ---------------------------------------------------------------- 2: client traffic

say
say "2. client: ping -c 1 $VIP"
ping_out=$(ip netns exec "$CL" ping -n -c 1 -W 2 "$VIP") || fail "ping failed: $ping_out"
say "   $(grep -m 1 'bytes from' <<<"$ping_out")"
neigh=$(lab_neigh "$CL" "$VIP")
say "   client neighbour: $neigh  (node1 is $MAC1)"
[[ $(lab_neigh_mac "$CL" "$VIP") == "$MAC1" ]] || fail "client neighbour entry: $neigh"

# ---------------------------------------------------------------- 3: leader node2

say
say "3. etcdctl put $KEY node2"
put_timed lab_put "$KEY" node2
# One loop watches all three, every 10 ms, at most 5 s.
t_up='' t_gone='' t_neigh=''
for ((k = 0; k < 500; k++)); do
    [[ -z $t_up ]] && lab_has_addr "$N2" "$LAB_IF" "$VIP" && t_up=$(($(lab_now_ms) - T0))
    [[ -z $t_gone ]] && lab_lacks_addr "$N1" "$LAB_IF" "$VIP" && t_gone=$(($(lab_now_ms) - T0))
    [[ -z $t_neigh && $(lab_neigh_mac "$CL" "$VIP") == "$MAC2" ]] && t_neigh=$(($(lab_now_ms) - T0))
    [[ -n $t_up && -n $t_gone && -n $t_neigh ]] && break
    (($(lab_now_ms) - T0 > 5000)) && break
    sleep 0.01
done
[[ -n $t_up ]] || fail "VIP not on node2 within 5 s"
[[ -n $t_gone ]] || fail "VIP still on node1 after 5 s"
[[ -n $t_neigh ]] || fail "client neighbour after 5 s: $(lab_neigh "$CL" "$VIP")"
say "   VIP on node2 after $t_up ms, gone from node1 after $t_gone ms (put: $PUT_MS ms)"
say "   client neighbour after $t_neigh ms: $(lab_neigh "$CL" "$VIP")  (node2 is $MAC2)"
wait_announcements "$T0" "$MAC2"
sent=$(arp_since "$T0" | grep -cF " $MACC > " || true)
if ((sent == 0)); then
    say "   the client sent nothing (no ARP, no IPv4) since the put; it heard:"
else
    say "   the client itself sent $sent frames since the put; it heard:"
fi
print_arp "$T0"
[[ $(who_has_vip) == node2 ]] || fail "VIP on $(who_has_vip), expected node2 only"

say
say "   monitoring, vipd --once --dry-run (exit 0: nothing to change, 3: change needed):"
for i in 1 2; do
    mapfile -t args < <(vipd_args "node$i")
    rc=0
    out=$(ip netns exec "$(lab_node_ns "$i")" "$VIPD_BIN" --once --dry-run "${args[@]}" \
        2>"$LAB_DIR/once.err") || rc=$?
    say "   node$i: $out  (exit $rc)"
    ((rc == 0 || rc == 3)) || sed 's/^/     /' "$LAB_DIR/once.err"
done

# ---------------------------------------------------------------- 4: no leader

say
say "4. etcdctl del $KEY"
put_timed lab_del "$KEY"
t_gone=$(wait_vip "$N2" absent) || fail "VIP still on node2 5 s after the delete"
say "   VIP released from node2 after $t_gone ms; now on: $(who_has_vip)"
[[ $(who_has_vip) == nobody ]] || fail "VIP still on $(who_has_vip)"

# ---------------------------------------------------------------- 5: stop

say
say "5. SIGTERM both vipd"
put_timed lab_put "$KEY" node1
wait_vip "$N1" present >/dev/null || fail "VIP not back on node1"
say "   (leader node1 again; VIP on: $(who_has_vip))"
for n in node1 node2; do
    t=$(lab_now_ms)
    lab_stop "${VIPD_PID[$n]}" 5000 || fail "$n: vipd did not exit within 5 s of SIGTERM"
    say "   $n: vipd exited with status $LAB_LAST_STATUS after $(($(lab_now_ms) - t)) ms"
done
say "   VIP on: $(who_has_vip)"
[[ $(who_has_vip) == nobody ]] || fail "VIP left behind after SIGTERM"

say
show_logs
lab_down
say
say "demo done: namespaces deleted, etcd and tcpdump stopped."
