#!/bin/sh
# check-size.sh FILE MIB [FILE MIB...]: every FILE is at most MIB mebibytes (a decimal
# number, 1 MiB = 1048576 bytes). Prints one line per file; exits 1 when one is over
# its budget or missing, 2 on bad arguments. `make check-size` runs it on the static
# binaries.
set -u

if [ $# -eq 0 ] || [ $(($# % 2)) -ne 0 ]; then
    echo "usage: $0 FILE MIB [FILE MIB...]" >&2
    exit 2
fi

status=0
while [ $# -gt 0 ]; do
    file=$1
    mib=$2
    shift 2
    case $mib in
    '' | *[!0-9.]* | *.*.* | .*)
        echo "$0: budget '$mib' is not a number of MiB" >&2
        exit 2
        ;;
    esac
    if [ ! -f "$file" ]; then
        echo "MISSING $file (budget $mib MiB)"
        status=1
        continue
    fi
    size=$(wc -c <"$file" | tr -d ' ')
    # awk for the decimal arithmetic: budget in bytes, rounded down.
    budget=$(awk -v m="$mib" 'BEGIN { printf "%d", m * 1048576 }')
    line=$(awk -v s="$size" -v b="$budget" -v m="$mib" -v f="$file" 'BEGIN {
        printf "%s: %d bytes = %.2f MiB, budget %s MiB (%d bytes), %s %.2f MiB",
            f, s, s / 1048576, m, b, (s <= b ? "margin" : "OVER by"),
            (s <= b ? b - s : s - b) / 1048576 }')
    if [ "$size" -le "$budget" ]; then
        echo "OK   $line"
    else
        echo "OVER $line"
        status=1
    fi
done
exit $status
