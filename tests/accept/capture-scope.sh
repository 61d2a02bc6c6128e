#!/usr/bin/env bash
# tests/accept/capture-scope.sh [OUT_DIR] (as root): capture a real Patroni's DCS records.
#
# Builds the lab of tests/accept/patroni-lab.sh (etcd + three Patroni 3 / PostgreSQL 15 nodes,
# Patroni's `etcd3:` DCS, scope lab) and writes into OUT_DIR (default tests/fixtures/scope):
#   1. once the cluster has settled (a leader, two streaming replicas): every key under
#      /service/lab/ through etcd's v3 JSON gateway (POST /v3/kv/range), the reply verbatim as
#      etcd3-range.json and each key's value, verbatim, as etcd3/<key below /service/lab/>
#      (etcd3/leader, etcd3/members/node1, ...); GET /cluster as cluster.json, GET /patroni of
#      the leader and of a replica as patroni-leader.json and patroni-replica.json;
#   2. a switchover (POST /switchover, to a replica other than node3), so that a history key
#      exists; then synchronous mode (PATCH /config {"synchronous_mode": true}); once the sync
#      key names a standby: the scope again (etcd3-sync-range.json, etcd3-sync/), GET /cluster
#      as cluster-sync.json, the sync standby's GET /patroni as patroni-sync-standby.json;
#   3. node3's Patroni restarted with tags {nofailover: true, noloadbalance: true}: the scope
#      again (etcd3-tags-range.json, etcd3-tags/), cluster-tags.json, node3's GET /patroni as
#      patroni-tags.json;
#   4. unless ETCD2=0: a second lab, etcd started with --enable-v2 and Patroni's `etcd:` (v2)
#      DCS; once settled, GET /v2/keys/service/lab?recursive=true as etcd2-recursive.json and
#      GET /cluster as cluster-etcd2.json.
# Then versions.txt (patroni, postgres, etcd). Files are the bytes the servers sent, never
# reformatted. The JSON files and the etcd3*/ directories in OUT_DIR are replaced; README.md
# there is written by hand. Everything is torn down at the end (and on failure or a signal).
# Traffic stays inside the lab's namespaces (192.0.2.0/24); every wait is bounded.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/accept/patroni-lab.sh
. "$ROOT/tests/accept/patroni-lab.sh"

OUT=${1:-$ROOT/tests/fixtures/scope}
ETCD2=${ETCD2:-1}
PREFIX=/service/$PLAB_SCOPE/

fail() {
    lab_err "capture FAILED: $*"
    plab_logs >&2 || true
    exit 1
}

b64() { printf '%s' "$1" | base64 -w0; }

# get_to FILE URL: GET URL from the client namespace into FILE (verbatim); fails unless 200.
get_to() {
    local code
    code=$(plab_curl -o "$1" -w '%{http_code}' "$2") || return 1
    [[ $code == 200 ]] || {
        lab_err "GET $2: HTTP $code"
        return 1
    }
}

# leader_no: the leader's node number (from the leader key).
leader_no() {
    local leader
    leader=$(plab_leader)
    [[ $leader == node* ]] || return 1
    printf '%s\n' "${leader#node}"
}

# dump_scope NAME: every key under $PREFIX; the gateway's reply as OUT/NAME-range.json and each
# value as OUT/NAME/<key below $PREFIX>.
dump_scope() {
    local name=$1 end
    # range_end: the prefix with its last byte plus one ("/" + 1 = "0").
    end=${PREFIX%/}0
    plab_curl -o "$OUT/$name-range.json" -X POST \
        -d "{\"key\":\"$(b64 "$PREFIX")\",\"range_end\":\"$(b64 "$end")\"}" \
        "$LAB_ENDPOINT/v3/kv/range" || return 1
    rm -rf -- "${OUT:?}/$name"
    "$PLAB_PYTHON" - "$OUT/$name-range.json" "$OUT/$name" "$PREFIX" <<'EOF'
import base64, json, os, sys
reply, out, prefix = sys.argv[1], sys.argv[2], sys.argv[3].encode()
kvs = json.load(open(reply, "rb")).get("kvs", [])
if not kvs:
    sys.exit("no keys under " + prefix.decode())
for kv in kvs:
    key = base64.b64decode(kv["key"])
    assert key.startswith(prefix) and b".." not in key, key
    path = os.path.join(out, key[len(prefix):].decode())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(base64.b64decode(kv.get("value", "")))
    print("  " + key.decode())
EOF
}

# sync_named: the sync key (etcdctl, v3) names a standby.
sync_named() {
    lab_get "${PREFIX}sync" | "$PLAB_PYTHON" -c '
import json, sys
sys.exit(0 if json.load(sys.stdin).get("sync_standby") else 1)' 2>/dev/null
}

# cluster_has ROLE_OR_TAG: the leader's GET /cluster mentions the string.
cluster_has() {
    local l
    l=$(leader_no) || return 1
    plab_curl "$(plab_api "$l")/cluster" 2>/dev/null | grep -q -- "$1"
}

mkdir -p "$OUT"
rm -f -- "$OUT"/*.json "$OUT/versions.txt"

# ---------------------------------------------------------------- etcd3: bootstrap
echo "== etcd3: bootstrap"
plab_up 3 || fail "lab"
plab_wait_cluster 120000 || fail "bootstrap"
# Let every member write its record with its WAL position once more after settling.
sleep 3
plab_wait_cluster 30000 || fail "bootstrap (again)"
l=$(leader_no) || fail "no leader"
r=$((l % LAB_NODES + 1))
echo "leader: node$l, replica: node$r"
dump_scope etcd3 || fail "dump etcd3"
get_to "$OUT/cluster.json" "$(plab_api "$l")/cluster" || fail "GET /cluster"
get_to "$OUT/patroni-leader.json" "$(plab_api "$l")/patroni" || fail "GET /patroni (leader)"
get_to "$OUT/patroni-replica.json" "$(plab_api "$r")/patroni" || fail "GET /patroni (replica)"

# ---------------------------------------------------------------- etcd3: switchover, sync
next=1
[[ $l == 1 ]] && next=2
echo "== etcd3: switchover node$l -> node$next"
plab_switchover "node$next" || fail "switchover"
plab_wait_cluster 60000 || fail "switchover did not settle"
[[ $(plab_leader) == "node$next" ]] || fail "switchover: leader is $(plab_leader)"
l=$next

echo "== etcd3: synchronous_mode on"
code=$(plab_curl -o "$LAB_DIR/patch.out" -w '%{http_code}' -X PATCH \
    -H 'Content-Type: application/json' -d '{"synchronous_mode": true}' \
    "$(plab_api "$l")/config") || true
[[ $code == 200 ]] || fail "PATCH /config: HTTP $code $(cat "$LAB_DIR/patch.out")"
lab_wait_ms 30000 250 sync_named || fail "the sync key names no standby"
lab_wait_ms 30000 250 cluster_has '"sync_standby"' || fail "/cluster shows no sync_standby"
plab_wait_cluster 30000 || fail "sync mode did not settle"
sleep 2
sync=$(lab_get "${PREFIX}sync" | "$PLAB_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["sync_standby"])')
echo "sync standby: $sync"
dump_scope etcd3-sync || fail "dump etcd3-sync"
get_to "$OUT/cluster-sync.json" "$(plab_api "$l")/cluster" || fail "GET /cluster (sync)"
get_to "$OUT/patroni-sync-standby.json" "$(plab_api "${sync#node}")/patroni" ||
    fail "GET /patroni (sync standby)"

# ---------------------------------------------------------------- etcd3: tags on node3
echo "== etcd3: node3 restarted with tags"
[[ $(plab_leader) != node3 ]] || fail "node3 is the leader"
# shellcheck disable=SC2034 # read by patroni-lab.sh's _plab_config, by name
PLAB_EXTRA_TAGS_NODE3='{nofailover: true, noloadbalance: true}'
plab_write_config 3
plab_stop 3
plab_start 3 || fail "starting node3 again"
plab_wait_cluster 90000 || fail "node3's restart did not settle"
lab_wait_ms 30000 250 cluster_has '"nofailover": true' || fail "/cluster shows no tags"
lab_wait_ms 30000 250 sync_named || fail "the sync key names no standby (tags)"
sleep 2
l=$(leader_no) || fail "no leader"
dump_scope etcd3-tags || fail "dump etcd3-tags"
get_to "$OUT/cluster-tags.json" "$(plab_api "$l")/cluster" || fail "GET /cluster (tags)"
get_to "$OUT/patroni-tags.json" "$(plab_api 3)/patroni" || fail "GET /patroni (node3, tags)"

lab_down

# ---------------------------------------------------------------- etcd (v2)
if [[ $ETCD2 == 1 ]]; then
    echo "== etcd (v2 API): bootstrap"
    PLAB_DCS=etcd
    # shellcheck disable=SC2034 # read by patroni-lab.sh's _plab_config, by name
    PLAB_EXTRA_TAGS_NODE3=
    PLAB_PATRONI_PIDS=()
    LAB_ETCD_ARGS=(--enable-v2)
    plab_up 3 || fail "lab (etcd v2)"
    plab_wait_cluster 120000 || fail "bootstrap (etcd v2)"
    sleep 3
    plab_wait_cluster 30000 || fail "bootstrap (etcd v2, again)"
    l=$(leader_no) || fail "no leader (etcd v2)"
    get_to "$OUT/etcd2-recursive.json" "$LAB_ENDPOINT/v2/keys${PREFIX%/}?recursive=true" ||
        fail "GET /v2/keys"
    get_to "$OUT/cluster-etcd2.json" "$(plab_api "$l")/cluster" || fail "GET /cluster (etcd v2)"
    lab_down
fi

# (etcd --version whole, then its first line: `| head -n 1` would SIGPIPE etcd under pipefail.)
etcd_version=$(etcd --version)
{
    patroni --version
    "$PLAB_PG_BIN/postgres" --version
    printf '%s\n' "${etcd_version%%$'\n'*}"
} >"$OUT/versions.txt"
cat "$OUT/versions.txt"
echo "capture: fixtures in $OUT"
