#!/usr/bin/env bash
# Alternates two release builds of edda-bench on W1 (C = 1 and C = 32) and W2, with the disk's bare
# WAL+FULL commit rate (L) measured before each build's turn, and prints medians and ratios.
#
#   Benchmarks/Compare/compare.sh <before>/.build/release/edda-bench <after>/.build/release/edda-bench [rounds]
set -euo pipefail
before=$1
after=$2
rounds=${3:-5}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp /tmp/edda-compare.XXXXXX.jsonl)
work=$(mktemp -d /tmp/edda-compare.XXXXXX)
trap 'rm -rf "$work"' EXIT
for round in $(seq 1 "$rounds"); do
    for build in before after; do
        bin=$before
        [ "$build" = after ] && bin=$after
        echo "{\"build\":\"$build\",\"load\":$(cut -d' ' -f1 /proc/loadavg),\"floor\":$(python3 "$here/floor.py" "$work")}" >>"$out"
        for args in "w1 --concurrency 1 --workflows 1000" "w1 --concurrency 32 --workflows 10000" "w2 --workflows 2000"; do
            # shellcheck disable=SC2086
            line=$(cd "$work" && "$bin" $args 2>/dev/null | tail -1)
            echo "{\"build\":\"$build\",\"load\":$(cut -d' ' -f1 /proc/loadavg),\"args\":\"$args\",\"result\":$line}" >>"$out"
        done
    done
done
python3 "$here/summary.py" "$out"
echo "raw: $out"
