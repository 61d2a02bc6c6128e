#!/usr/bin/env bash
# demo/as-owner.sh: run cargo under `sudo env "PATH=$PATH" make ...` without breaking
# the user's checkout.
#
#   as-owner.sh run CMD...   run CMD as the owner of the checkout, with their HOME
#                            (so their rustup finds its toolchain and target/ stays theirs)
#   as-owner.sh env CMD...   run CMD as root, with the owner's RUSTUP_HOME and CARGO_HOME
#                            (for `cargo test`, whose tests need root)
#
# Both run CMD unchanged when not root, when the checkout belongs to root, or when the
# owner cannot run CMD's program themselves (a toolchain only root can read).
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
mode=${1:-}
shift || true
if [[ $mode != run && $mode != env ]] || (($# == 0)); then
    echo "usage: $0 run|env CMD..." >&2
    exit 2
fi

uid=$(stat -c %u "$ROOT")
if ((EUID != 0 || uid == 0)); then
    exec "$@"
fi
gid=$(stat -c %g "$ROOT")
if entry=$(getent passwd "$uid"); then
    IFS=: read -r user _ _ gid _ home _ <<<"$entry"
    as=(setpriv --reuid "$uid" --regid "$gid" --init-groups
        env HOME="$home" USER="$user" LOGNAME="$user")
else
    exec "$@" # no home directory to find a toolchain in
fi
if ! "${as[@]}" "$1" --version >/dev/null 2>&1; then
    exec "$@"
fi

case $mode in
run)
    echo "(running $1 as $user, the owner of $ROOT)" >&2
    exec "${as[@]}" "$@"
    ;;
env)
    rustup_home=${RUSTUP_HOME:-$home/.rustup}
    cargo_home=${CARGO_HOME:-$home/.cargo}
    env_add=()
    [[ -d $rustup_home ]] && env_add+=(RUSTUP_HOME="$rustup_home")
    [[ -d $cargo_home ]] && env_add+=(CARGO_HOME="$cargo_home")
    echo "(running $1 as root with ${user}'s toolchain)" >&2
    exec env "${env_add[@]}" "$@"
    ;;
esac
