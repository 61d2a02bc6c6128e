# shellcheck shell=bash
# shellcheck disable=SC2034 # PLAB_* variables are read by the scripts that source this file
# tests/accept/patroni-lab.sh: a real Patroni cluster in network namespaces. Source it (bash 5,
# as root); do not run it. Built on demo/lab.sh (namespaces, bridge, etcd, teardown).
#
#   . tests/accept/patroni-lab.sh
#   plab_up 3                     # etcd + node1..node3 + client, Patroni + PostgreSQL 15 on each
#   plab_wait_cluster 120000      # a leader running as primary, every other node a running replica
#   plab_switchover node2         # POST /switchover to the leader's REST API
#   # plab_down (lab_down) runs by itself on EXIT and on signals
#
# Per node I (name nodeI, address 192.0.2.(10+I), see demo/lab.sh): Patroni runs as the
# `postgres` user inside the node's namespace, REST API on :8008, PostgreSQL on :5432 (listening
# on every address, so a VIP added later is served too), data and sockets under
# $LAB_DIR/nodeI. Patroni's `etcd3:` DCS (or `etcd:`, see PLAB_DCS) is the lab's etcd; scope $PLAB_SCOPE, namespace
# /service, so the leader key is /service/$PLAB_SCOPE/leader. pg_hba trusts the lab network
# (192.0.2.0/24): a password-free throwaway lab. ttl 10, loop_wait 1, retry_timeout 4 keep
# elections and switchovers quick (Patroni wants loop_wait + 2 * retry_timeout <= ttl).
#
# Settings (set before sourcing or before plab_up):
#   LAB_PREFIX   namespace name prefix (default here: vippat-, apart from the demo's)
#   PLAB_SCOPE   Patroni scope (default lab)
#   PLAB_PG_BIN  PostgreSQL's bin directory (default /usr/lib/postgresql/15/bin)
#   PLAB_PYTHON  the Python with python3-psycopg2 (default /usr/bin/python3)
#   PLAB_DCS     Patroni's DCS section: etcd3 (default, the v3 API) or etcd (the v2 API, which
#                etcd 3.4 serves only with LAB_ETCD_ARGS=(--enable-v2))
#   PLAB_EXTRA_TAGS_NODEI  node I's `tags:` as a YAML flow mapping, e.g.
#                '{nofailover: true, noloadbalance: true}' (default: no tags); read when the
#                node's YAML is written (plab_prepare, plab_write_config)

LAB_PREFIX=${LAB_PREFIX:-vippat-}
PLAB_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=demo/lab.sh
. "$PLAB_ROOT/demo/lab.sh"

PLAB_SCOPE=${PLAB_SCOPE:-lab}
PLAB_PG_BIN=${PLAB_PG_BIN:-/usr/lib/postgresql/15/bin}
# Debian's Python, which has Debian's modules (psycopg2): not a pyenv's or a venv's first in PATH.
PLAB_PYTHON=${PLAB_PYTHON:-/usr/bin/python3}
PLAB_DCS=${PLAB_DCS:-etcd3}
PLAB_KEY=/service/$PLAB_SCOPE/leader
PLAB_API_PORT=8008
PLAB_PG_PORT=5432
PLAB_PATRONI_PIDS=()

plab_node_name() { printf 'node%s\n' "$1"; }
plab_api() { printf 'http://%s:%s\n' "$(lab_node_ip "$1")" "$PLAB_API_PORT"; }

# plab_curl ARGS...: curl from the client namespace, bounded (1 s to connect, 3 s in all).
plab_curl() {
    ip netns exec "$(lab_client_ns)" curl -sS --connect-timeout 1 --max-time 3 "$@"
}

# plab_status I PATH: the HTTP status of GET PATH on node I's REST API ("000" when unreachable).
plab_status() {
    plab_curl -o /dev/null -w '%{http_code}' "$(plab_api "$1")$2" 2>/dev/null || true
}

# plab_role I: "ROLE STATE STREAMING" from node I's GET /patroni, STREAMING being how many
# replicas stream from it (its "replication" list); nothing when unreachable.
plab_role() {
    plab_curl "$(plab_api "$1")/patroni" 2>/dev/null | "$PLAB_PYTHON" -c '
import json, sys
d = json.load(sys.stdin)
n = sum(1 for r in d.get("replication", []) if r.get("state") == "streaming")
print(d.get("role"), d.get("state"), n)' 2>/dev/null
}

# plab_leader: the member name the leader key holds (nothing when absent).
plab_leader() {
    if [[ $PLAB_DCS == etcd ]]; then
        plab_curl "$LAB_ENDPOINT/v2/keys$PLAB_KEY" 2>/dev/null | "$PLAB_PYTHON" -c '
import json, sys
print(json.load(sys.stdin)["node"]["value"])' 2>/dev/null
    else
        lab_get "$PLAB_KEY" 2>/dev/null
    fi
}

_plab_config() {
    local i=$1 dir=$2 name ip tags_var tags
    name=$(plab_node_name "$i")
    ip=$(lab_node_ip "$i")
    tags_var=PLAB_EXTRA_TAGS_NODE$i
    tags=${!tags_var:-}
    [[ -n $tags ]] && printf 'tags: %s\n' "$tags"
    cat <<EOF
scope: $PLAB_SCOPE
namespace: /service/
name: $name
log:
  level: INFO
restapi:
  listen: $ip:$PLAB_API_PORT
  connect_address: $ip:$PLAB_API_PORT
$PLAB_DCS:
  hosts: $LAB_SW_IP:2379
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 4
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 64MB
  initdb:
  - encoding: UTF8
  - locale: C
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 trust
  - host all all $LAB_SW_IP/$LAB_PREFIXLEN trust
  - host replication all $LAB_SW_IP/$LAB_PREFIXLEN trust
postgresql:
  listen: 0.0.0.0:$PLAB_PG_PORT
  connect_address: $ip:$PLAB_PG_PORT
  use_unix_socket: true
  data_dir: $dir/data
  bin_dir: $PLAB_PG_BIN
  pgpass: $dir/pgpass
  authentication:
    superuser:
      username: postgres
      password: lab
    replication:
      username: replicator
      password: lab
  parameters:
    unix_socket_directories: $dir
    max_connections: 40
    shared_buffers: 16MB
    fsync: "off"
    synchronous_commit: "off"
EOF
}

# plab_up N: plab_prepare N, then plab_start_all (started, not yet waited for).
plab_up() {
    plab_prepare "${1:-3}" && plab_start_all
}

# plab_prepare N: lab_up N and each node's directory and Patroni configuration; nothing started.
plab_prepare() {
    local n=${1:-3} i dir cmd
    for cmd in patroni curl "$PLAB_PYTHON" "$PLAB_PG_BIN/postgres" setpriv; do
        command -v "$cmd" >/dev/null || {
            lab_err "command not found: $cmd (bash .ci/deps accept installs what is missing)"
            return 1
        }
    done
    lab_up "$n" || return 1
    # The postgres user must reach its directories inside the root-owned temporary directory.
    chmod 0755 "$LAB_DIR"
    for ((i = 1; i <= n; i++)); do
        dir=$LAB_DIR/$(plab_node_name "$i")
        install -d -m 0700 -o postgres -g postgres "$dir"
        plab_write_config "$i"
    done
}

# plab_write_config I: (re)write node I's patroni.yml; a running Patroni reads it on restart.
plab_write_config() {
    local dir
    dir=$LAB_DIR/$(plab_node_name "$1")
    _plab_config "$1" "$dir" >"$dir/patroni.yml"
    chown postgres:postgres "$dir/patroni.yml"
}

# plab_start_all: start Patroni on every node.
plab_start_all() {
    local i
    for ((i = 1; i <= LAB_NODES; i++)); do
        plab_start "$i" || return 1
    done
    lab_msg "lab: Patroni on node1..node$LAB_NODES, leader key $PLAB_KEY"
}

# plab_start I: start node I's Patroni (as postgres, in its namespace); log in nodeI/patroni.log.
plab_start() {
    local i=$1 dir
    dir=$LAB_DIR/$(plab_node_name "$i")
    # setpriv execs (no fork), so the pid lab_spawn records is Patroni's own.
    lab_spawn "$(lab_node_ns "$i")" "$dir/patroni.log" env -i PATH=/usr/bin:/bin \
        HOME="$dir" LANG=C.UTF-8 setpriv --reuid=postgres --regid=postgres --init-groups \
        patroni "$dir/patroni.yml"
    PLAB_PATRONI_PIDS[i]=$LAB_LAST_PID
}

# plab_stop I: stop node I's Patroni (which stops its PostgreSQL), bounded (15 s, then SIGKILL).
plab_stop() {
    local pid=${PLAB_PATRONI_PIDS[$1]:-}
    [[ -n $pid ]] || return 0
    lab_stop "$pid" 15000 || true
    PLAB_PATRONI_PIDS[$1]=
}

# Patroni stops PostgreSQL on SIGTERM, which takes longer than lab_down's 3 s: stop every node
# first, all at once, with a bounded wait; lab_down then kills whatever is left.
lab_on_down() {
    local i pid
    for i in "${!PLAB_PATRONI_PIDS[@]}"; do
        pid=${PLAB_PATRONI_PIDS[i]}
        [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null
    done
    lab_wait_ms 20000 50 _plab_all_stopped || lab_err "Patroni still running 20 s after SIGTERM"
    if declare -F plab_on_down >/dev/null; then
        plab_on_down || true
    fi
    return 0
}
_plab_all_stopped() {
    local pid
    for pid in "${PLAB_PATRONI_PIDS[@]}"; do
        [[ -n $pid ]] && _lab_alive "$pid" && return 1
    done
    return 0
}

# _plab_cluster_ok N: the key names a node whose /patroni says a running primary with the N-1
# others streaming from it, and they say running replicas. ("replica running" alone is not
# enough: just after bootstrap or a switchover a replica runs before it streams, and Patroni
# refuses it as a switchover candidate.)
_plab_cluster_ok() {
    local n=$1 i leader name role
    leader=$(plab_leader) || return 1
    [[ -n $leader ]] || return 1
    for ((i = 1; i <= n; i++)); do
        name=$(plab_node_name "$i")
        role=$(plab_role "$i")
        if [[ $name == "$leader" ]]; then
            [[ $role == "master running $((n - 1))" || $role == "primary running $((n - 1))" ]] ||
                return 1
        else
            [[ $role == "replica running "* ]] || return 1
        fi
    done
}

# plab_wait_cluster TIMEOUT_MS: wait until _plab_cluster_ok for all LAB_NODES nodes.
plab_wait_cluster() {
    lab_wait_ms "$1" 250 _plab_cluster_ok "$LAB_NODES" && return 0
    lab_err "the cluster did not settle within $1 ms (leader: '$(plab_leader)')"
    return 1
}

# plab_switchover CANDIDATE: POST /switchover (leader = the key's holder) to the leader's API.
# Prints Patroni's answer; returns non-zero unless it answered 200. A candidate that has just
# rejoined as a replica can be refused for a while ("no good candidates": its slot or its lag
# not yet known to the leader), so a refusal is retried: 15 tries, 1 s apart.
plab_switchover() {
    local try
    for ((try = 1; try <= 15; try++)); do
        _plab_switchover_once "$1" && return 0
        grep -q 'no good candidates' "$LAB_DIR/switchover.out" 2>/dev/null || return 1
        sleep 1
    done
    return 1
}
_plab_switchover_once() {
    local candidate=$1 leader i code
    leader=$(plab_leader)
    [[ -n $leader ]] || {
        lab_err "switchover: no leader"
        return 1
    }
    i=${leader#node}
    code=$(plab_curl -o "$LAB_DIR/switchover.out" -w '%{http_code}' --max-time 30 \
        -X POST -H 'Content-Type: application/json' \
        -d "{\"leader\":\"$leader\",\"candidate\":\"$candidate\"}" \
        "$(plab_api "$i")/switchover") || true
    cat "$LAB_DIR/switchover.out" 2>/dev/null
    echo
    [[ $code == 200 ]]
}

# plab_logs: the end of every node's Patroni log, for a failure report.
plab_logs() {
    local i f
    for ((i = 1; i <= LAB_NODES; i++)); do
        f=$LAB_DIR/$(plab_node_name "$i")/patroni.log
        [[ -f $f ]] || continue
        printf '%s\n' "---- $f (last 15 lines)"
        tail -n 15 "$f"
    done
}
