# shellcheck shell=bash
# shellcheck disable=SC2034 # VIPD, PROBE and CONSUL_URL are read by the scripts that source this file
# bench/common.sh: what every benchmark script does first. Source it from the project's
# root after setting NAME (the script's name in messages) and, optionally, VIPD_BEFORE:
#   bench_setup vipd|probe   root check, VIPD_BEFORE made absolute, the packages, the
#                            static vipd in $VIPD and (probe) the measuring program in $PROBE.
#   bench_consul KEY VALUE   (after lab_up) the fake Consul on the switch, CONSUL_URL set,
#                            KEY written with VALUE once it answers.
#   cpu_ns PID               the run time of PID's threads so far, in ns.

MUSL=x86_64-unknown-linux-musl

die() { echo "$NAME: $*" >&2; exit 1; }

bench_setup() {
    [[ $EUID == 0 ]] || die "run as root (network namespaces): sudo env \"PATH=\$PATH\" make $NAME"
    [[ -z ${VIPD_BEFORE:-} || -x $VIPD_BEFORE ]] || die "VIPD_BEFORE is not an executable: $VIPD_BEFORE"
    [[ -z ${VIPD_BEFORE:-} ]] || VIPD_BEFORE=$(realpath "$VIPD_BEFORE")
    bash .ci/deps bench || die "cannot install the packages the benchmark needs"
    local what="the static vipd"
    [[ $1 == probe ]] && what+=" and the probe"
    echo "$NAME: building $what"
    if ! rustup target list --installed 2>/dev/null | grep -qx "$MUSL"; then
        rustup target add "$MUSL" || die "cannot add the rust target $MUSL"
    fi
    cargo build --quiet --release --target "$MUSL"
    VIPD=$PWD/target/$MUSL/release/vipd
    if [[ $1 == probe ]]; then
        cargo build --quiet --release --example failover-probe
        PROBE=$PWD/target/release/examples/failover-probe
    fi
}

bench_consul() {
    CONSUL_URL="http://$LAB_SW_IP:8500"
    lab_spawn "$(lab_sw_ns)" "$LAB_DIR/consul.log" python3 bench/fake-consul.py "$LAB_SW_IP" 8500
    # shellcheck disable=SC2317 # called through lab_wait_ms
    _bench_consul_put() {
        ip netns exec "$(lab_sw_ns)" python3 -c \
            "import urllib.request as u; u.urlopen(u.Request('$CONSUL_URL/v1/kv$1', data=b'$2', method='PUT'))" \
            2>/dev/null
    }
    lab_wait_ms 5000 50 _bench_consul_put "$1" "$2" || die "the fake Consul did not start"
}

cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
