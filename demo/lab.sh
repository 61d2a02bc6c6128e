# shellcheck shell=bash
# shellcheck disable=SC2034 # LAB_* variables are read by the scripts that source this file
# demo/lab.sh: a throwaway network lab for vipd, built from network namespaces.
# Source it (bash 5, as root); do not run it.
#
#   . demo/lab.sh
#   lab_up 2                              # etcd + node1, node2 + client
#   lab_spawn "$(lab_node_ns 1)" "$LAB_DIR/node1.log" vipd --trigger-value node1 ...
#   lab_put /service/demo/leader node1
#   lab_wait_ms 3000 10 lab_has_addr "$(lab_node_ns 1)" eth0 192.0.2.50
#   lab_del /service/demo/leader
#   # lab_down runs by itself on EXIT, INT, TERM, HUP, PIPE (also after a failure)
#
# Layout (every name starts with $LAB_PREFIX, default "vipdemo-"):
#   ${LAB_PREFIX}sw       bridge br0 192.0.2.1/24 and etcd on http://192.0.2.1:2379
#   ${LAB_PREFIX}nodeI    eth0 192.0.2.(10+I)/24, MAC 02:00:00:00:00:(10+I)  (I = 1..89)
#   ${LAB_PREFIX}client   eth0 192.0.2.100/24,   MAC 02:00:00:00:01:00
# Each eth0 is one end of a veth pair whose other end (veth-nodeI, veth-client) is a
# port of br0. Nothing is created in the caller's namespace; only documentation
# addresses (192.0.2.0/24, RFC 5737) are used. etcd keeps its data in $LAB_DIR, a
# temporary directory (logs go there too) removed by lab_down.
#
# Every wait is bounded in count and in time. Functions return non-zero on failure
# and print one line on stderr saying why; none of them exits the caller's shell.
#
# Settings (set before lab_up):
#   LAB_PREFIX   name prefix of the namespaces (default vipdemo-)
#   LAB_ETCD     the etcd binary (default etcd), LAB_ETCDCTL (default etcdctl)
#   LAB_ETCD_ARGS  an array of extra etcd arguments, e.g. (--enable-v2)
#   LAB_QUIET=1  no progress lines from lab_up

LAB_PREFIX=${LAB_PREFIX:-vipdemo-}
LAB_ETCD=${LAB_ETCD:-etcd}
LAB_ETCDCTL=${LAB_ETCDCTL:-etcdctl}
LAB_QUIET=${LAB_QUIET:-0}
declare -p LAB_ETCD_ARGS >/dev/null 2>&1 || LAB_ETCD_ARGS=()

# Fixed facts of the lab (read-only for callers).
LAB_IF=eth0
LAB_BRIDGE=br0
LAB_SW_IP=192.0.2.1
LAB_CLIENT_IP=192.0.2.100
LAB_PREFIXLEN=24
LAB_ENDPOINT="http://$LAB_SW_IP:2379"

# State.
LAB_NODES=0
LAB_DIR=
LAB_PIDS=()
LAB_NETNS=()
LAB_LAST_PID=
LAB_LAST_STATUS=
LAB_ETCD_PID=
_LAB_DOWN_DONE=0
_LAB_MAIN_PID=
_LAB_DIR_MADE=

# ---------------------------------------------------------------- small helpers

lab_msg() { [[ $LAB_QUIET == 1 ]] || printf '%s\n' "$*" >&2; }
lab_err() { printf 'lab: %s\n' "$*" >&2; }

# lab_now_ms: wall-clock milliseconds (bash 5 $EPOCHREALTIME, no fork).
lab_now_ms() {
    local t=${EPOCHREALTIME/[.,]/}
    printf '%s\n' "$((10#$t / 1000))"
}

# lab_wait_ms TIMEOUT_MS STEP_MS CMD...: run CMD every STEP_MS until it succeeds.
# Returns 0 as soon as it does, 1 after TIMEOUT_MS (at most TIMEOUT_MS/STEP_MS+1 tries).
lab_wait_ms() {
    local timeout=$1 step=$2
    shift 2
    local tries=$((timeout / step + 1)) deadline
    deadline=$(($(lab_now_ms) + timeout))
    local sleep_s
    sleep_s=$(printf '0.%03d' "$step")
    ((step >= 1000)) && sleep_s=$((step / 1000))
    while ((tries-- > 0)); do
        "$@" && return 0
        (($(lab_now_ms) >= deadline)) && return 1
        sleep "$sleep_s"
    done
    return 1
}

# _lab_alive PID: the process exists and is not a zombie.
_lab_alive() {
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}
lab_alive() { _lab_alive "$1"; }

# ---------------------------------------------------------------- names

lab_sw_ns() { printf '%s\n' "${LAB_PREFIX}sw"; }
lab_client_ns() { printf '%s\n' "${LAB_PREFIX}client"; }
lab_node_ns() { printf '%s\n' "${LAB_PREFIX}node$1"; }
lab_node_ip() { printf '192.0.2.%s\n' "$((10 + $1))"; }
# The MAC's last byte spells the node's last address octet: node1 (.11) -> ...:11.
lab_node_mac() { printf '02:00:00:00:00:%s\n' "$((10 + $1))"; }
lab_client_mac() { printf '%s\n' 02:00:00:00:01:00; }

# ---------------------------------------------------------------- addresses

# lab_addrs NS [IF]: the IPv4/IPv6 addresses (with /len) on IF (default eth0), one a line.
lab_addrs() {
    local out
    out=$(ip -n "$1" -br addr show dev "${2:-$LAB_IF}" 2>/dev/null) || return 1
    # "eth0@if5  UP  192.0.2.11/24 192.0.2.50/24 fe80::1/64"
    local -a f
    read -r -a f <<<"$out"
    ((${#f[@]} > 2)) && printf '%s\n' "${f[@]:2}"
    return 0
}

# lab_has_addr NS IF ADDR: ADDR (exact, any prefix length) is on IF in NS.
lab_has_addr() {
    local a
    for a in $(lab_addrs "$1" "$2"); do
        [[ ${a%/*} == "$3" ]] && return 0
    done
    return 1
}
lab_lacks_addr() { ! lab_has_addr "$@"; }

# lab_neigh NS IP: the neighbour entry for IP in NS ("lladdr MAC STATE"), empty if none.
lab_neigh() {
    local line
    line=$(ip -n "$1" neigh show "$2" dev "$LAB_IF" 2>/dev/null) || return 1
    printf '%s\n' "${line%"${line##*[![:space:]]}"}"
}

# lab_neigh_mac NS IP: the MAC the neighbour entry holds, or nothing.
lab_neigh_mac() {
    local -a f
    read -r -a f <<<"$(lab_neigh "$1" "$2")"
    local i
    for ((i = 0; i + 1 < ${#f[@]}; i++)); do
        [[ ${f[i]} == lladdr ]] && printf '%s\n' "${f[i + 1]}" && return 0
    done
    return 1
}

# ---------------------------------------------------------------- processes

# lab_spawn NS LOG CMD...: start CMD inside NS in the background, stdout and stderr
# to LOG, stdin from /dev/null. Sets LAB_LAST_PID; lab_down stops it.
lab_spawn() {
    local ns=$1 log=$2
    shift 2
    ip netns exec "$ns" "$@" </dev/null >"$log" 2>&1 &
    LAB_LAST_PID=$!
    LAB_PIDS+=("$LAB_LAST_PID")
    # Until the child has exec'd it is a copy of this shell, and a signal sent to it
    # then is caught by our trap and lost. Wait (bounded) until it is `ip` or CMD.
    lab_wait_ms 1000 1 _lab_execd "$LAB_LAST_PID" || true
}
_lab_execd() {
    local mine theirs
    read -r mine <"/proc/$BASHPID/comm" || return 0
    read -r theirs 2>/dev/null <"/proc/$1/comm" || return 0
    [[ $theirs != "$mine" ]]
}

# lab_stop PID [TIMEOUT_MS]: SIGTERM, wait up to TIMEOUT_MS (default 5000), then
# SIGKILL. Sets LAB_LAST_STATUS to the exit status (128+N when killed by signal N).
# Returns 0 when it exited by itself after SIGTERM, 1 when it had to be killed.
lab_stop() {
    local pid=$1 timeout=${2:-5000} rc=0
    LAB_LAST_STATUS=
    kill -TERM "$pid" 2>/dev/null || true
    if ! lab_wait_ms "$timeout" 20 lab_dead "$pid"; then
        lab_err "pid $pid did not exit ${timeout} ms after SIGTERM: killing it"
        kill -KILL "$pid" 2>/dev/null || true
        lab_wait_ms 2000 20 lab_dead "$pid" || true
        rc=1
    fi
    # The process has exited: wait returns at once with its status (our child).
    wait "$pid" 2>/dev/null && LAB_LAST_STATUS=0 || LAB_LAST_STATUS=$?
    return "$rc"
}
lab_dead() { ! _lab_alive "$1"; }
_lab_all_dead() {
    local pid
    for pid in "${LAB_PIDS[@]}"; do
        _lab_alive "$pid" && return 1
    done
    return 0
}

# ---------------------------------------------------------------- etcd

# lab_etcdctl ARGS...: etcdctl (API v3) against the lab's etcd, from the switch namespace.
lab_etcdctl() {
    ETCDCTL_API=3 ip netns exec "$(lab_sw_ns)" "$LAB_ETCDCTL" \
        --endpoints="$LAB_ENDPOINT" --dial-timeout=2s --command-timeout=5s "$@"
}
lab_put() { lab_etcdctl put "$1" "$2" >/dev/null; }
lab_del() { lab_etcdctl del "$1" >/dev/null; }
# lab_get KEY: print the value (nothing when the key is absent).
lab_get() { lab_etcdctl get --print-value-only "$1"; }

_lab_etcd_healthy() {
    _lab_alive "$LAB_ETCD_PID" || return 2
    lab_etcdctl endpoint health >/dev/null 2>&1
}

# ---------------------------------------------------------------- up and down

_lab_netns_add() {
    ip netns add "$1" || return 1
    LAB_NETNS+=("$1")
    ip -n "$1" link set lo up
}

# _lab_veth NS IF MAC IP SWPORT: veth pair NS:IF <-> switch:SWPORT (a port of br0).
_lab_veth() {
    local ns=$1 ifname=$2 mac=$3 ip=$4 port=$5 sw
    sw=$(lab_sw_ns)
    ip link add name "$ifname" address "$mac" netns "$ns" type veth \
        peer name "$port" netns "$sw" || return 1
    ip -n "$sw" link set "$port" master "$LAB_BRIDGE" up &&
        ip -n "$ns" addr add "$ip/$LAB_PREFIXLEN" dev "$ifname" &&
        ip -n "$ns" link set "$ifname" up
}

# lab_up N_NODES: build the lab (see the top of this file) and register lab_down on
# EXIT, INT, TERM, HUP and PIPE (replacing the caller's traps for them; a caller that needs its
# own cleanup defines a function lab_on_down, which lab_down calls first).
lab_up() {
    local n=${1:-2} i ns leftover
    if [[ ! $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 89)); then
        lab_err "lab_up: number of nodes must be 1..89, got '$n'"
        return 2
    fi
    if ((EUID != 0)); then
        lab_err "network namespaces need root"
        return 1
    fi
    for i in ip "$LAB_ETCD" "$LAB_ETCDCTL"; do
        command -v "$i" >/dev/null || {
            lab_err "command not found: $i"
            return 1
        }
    done
    if ((${#LAB_NETNS[@]} > 0)); then
        lab_err "lab_up: the lab is already up"
        return 1
    fi
    leftover=$(ip netns list | awk -v p="$LAB_PREFIX" 'index($1, p) == 1 { printf "%s ", $1 }')
    if [[ -n $leftover ]]; then
        lab_err "namespaces from an earlier run still exist: ${leftover% }"
        lab_err "remove them with: for n in ${leftover% }; do ip netns pids \$n | xargs -r kill; ip netns del \$n; done"
        return 1
    fi

    _LAB_DOWN_DONE=0
    _LAB_MAIN_PID=$BASHPID
    trap 'lab_down' EXIT
    trap '_lab_on_signal 130' INT
    trap '_lab_on_signal 143' TERM
    trap '_lab_on_signal 129' HUP
    trap '_lab_on_signal 141' PIPE

    LAB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/${LAB_PREFIX%-}.XXXXXX") || return 1
    _LAB_DIR_MADE=$LAB_DIR
    LAB_NODES=$n

    lab_msg "lab: namespaces ${LAB_PREFIX}{sw,client,node1..node$n}, bridge $LAB_BRIDGE"
    ns=$(lab_sw_ns)
    _lab_netns_add "$ns" || return 1
    # A plain layer-2 switch: where the host has br_netfilter loaded (Docker does),
    # bridged frames would otherwise pass the host's iptables hooks, and the
    # benchmark would measure the host's firewall. Per namespace since Linux 5.3.
    if [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
        ip netns exec "$ns" sysctl -q -w net.bridge.bridge-nf-call-iptables=0 \
            net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0 \
            >/dev/null 2>&1 || true
    fi
    ip -n "$ns" link add "$LAB_BRIDGE" type bridge &&
        ip -n "$ns" addr add "$LAB_SW_IP/$LAB_PREFIXLEN" dev "$LAB_BRIDGE" &&
        ip -n "$ns" link set "$LAB_BRIDGE" up || return 1

    _lab_netns_add "$(lab_client_ns)" || return 1
    _lab_veth "$(lab_client_ns)" "$LAB_IF" "$(lab_client_mac)" "$LAB_CLIENT_IP" veth-client ||
        return 1
    for ((i = 1; i <= n; i++)); do
        ns=$(lab_node_ns "$i")
        _lab_netns_add "$ns" || return 1
        _lab_veth "$ns" "$LAB_IF" "$(lab_node_mac "$i")" "$(lab_node_ip "$i")" "veth-node$i" ||
            return 1
    done

    lab_msg "lab: starting etcd on $LAB_ENDPOINT (data in $LAB_DIR/etcd)"
    local arch_env=()
    # etcd 3.4 refuses to start on arm64 without this.
    [[ $(uname -m) == aarch64 ]] && arch_env=(ETCD_UNSUPPORTED_ARCH=arm64)
    lab_spawn "$(lab_sw_ns)" "$LAB_DIR/etcd.log" env "${arch_env[@]}" "$LAB_ETCD" \
        --name lab --data-dir "$LAB_DIR/etcd" \
        --listen-client-urls "$LAB_ENDPOINT" --advertise-client-urls "$LAB_ENDPOINT" \
        --listen-peer-urls http://127.0.0.1:2380 \
        --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster lab=http://127.0.0.1:2380 \
        --logger zap --log-level warn "${LAB_ETCD_ARGS[@]}"
    LAB_ETCD_PID=$LAB_LAST_PID
    if ! lab_wait_ms 15000 100 _lab_etcd_healthy; then
        lab_err "etcd did not become healthy within 15 s; the end of its log:"
        tail -n 20 "$LAB_DIR/etcd.log" >&2
        return 1
    fi
    return 0
}

# In the shell that ran lab_up: clean up and exit; in a subshell: just exit.
_lab_on_signal() {
    if [[ $BASHPID == "$_LAB_MAIN_PID" ]]; then
        lab_down
        trap - EXIT
    fi
    exit "$1"
}

# lab_down: stop every process lab_spawn started (SIGTERM, then SIGKILL), any other
# process still inside the lab's namespaces, delete the namespaces and $LAB_DIR.
# Safe to call more than once and after a partial lab_up.
lab_down() {
    # Option changes stay inside this function; cleanup must not stop at an error.
    local -
    set +e
    # Only the shell that ran lab_up owns the lab (not a subshell that inherited a trap).
    [[ $BASHPID == "${_LAB_MAIN_PID:-}" ]] || return 0
    ((_LAB_DOWN_DONE)) && return 0
    _LAB_DOWN_DONE=1
    if declare -F lab_on_down >/dev/null; then
        lab_on_down || true
    fi
    local pid ns i
    # SIGTERM to all at once, 3 s in all for them to exit, then SIGKILL.
    for pid in "${LAB_PIDS[@]}"; do
        _lab_alive "$pid" && kill -TERM "$pid" 2>/dev/null
    done
    lab_wait_ms 3000 20 _lab_all_dead
    for pid in "${LAB_PIDS[@]}"; do
        _lab_alive "$pid" && kill -KILL "$pid" 2>/dev/null
    done
    # Anything else left in our namespaces (an etcdctl that hung, a child of a child).
    for ns in "${LAB_NETNS[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null
        done
    done
    for pid in "${LAB_PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    for ((i = ${#LAB_NETNS[@]} - 1; i >= 0; i--)); do
        ip netns del "${LAB_NETNS[i]}" 2>/dev/null ||
            lab_err "could not delete namespace ${LAB_NETNS[i]}"
    done
    # Only the directory lab_up made.
    if [[ -n $_LAB_DIR_MADE && -d $_LAB_DIR_MADE ]]; then
        rm -rf -- "$_LAB_DIR_MADE"
    fi
    _LAB_DIR_MADE=
    LAB_PIDS=()
    LAB_NETNS=()
    LAB_DIR=
    return 0
}
