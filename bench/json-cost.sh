#!/bin/sh
# bench/json-cost.sh: instructions to read one JSON document, the module's
# scanner against jansson (bench/json-cost.c), under callgrind: each case
# runs with N and 3N documents, and the difference over 2N is one
# document, start-up excluded.  make bench-json.
set -eu

cd "$(dirname "$0")/.."
n=${1:-200}
bin=build/bench/json-cost
mkdir -p build/bench
cc -O2 -Isrc/core -o $bin bench/json-cost.c src/core/fanout_json.c -ljansson -lm

count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null $bin "$1" "$2" 2>&1 \
        | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

printf '%-16s %14s\n' case instructions
for c in scan-vector jansson-vector scan-v2 jansson-v2 scan-api jansson-api; do
    a=$(count $c $n)
    b=$(count $c $((3 * n)))
    printf '%-16s %14d\n' $c $(( (b - a) / (2 * n) ))
done
