#!/usr/bin/env bash
# W9 of WORKLOADS.md: W2's model and optimizer, 2 ranks x 1 thread against 1 rank x 1 thread,
# batch 64 per rank, in alternating rounds; then the all-reduce alone. Run from the repository
# root on an idle machine:   bash tapegrad-mpi/benches/w9.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
exe=$(cargo bench -p tapegrad-mpi --bench w9 --no-run --message-format=json 2>/dev/null |
    grep -o '"executable":"[^"]*w9[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$exe" ] || { echo "w9.sh: could not build the w9 bench" >&2; exit 1; }
flags="--bind-to core"; [ "$(id -u)" -ne 0 ] || flags="$flags --allow-run-as-root"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$rounds"); do
    # shellcheck disable=SC2086
    one=$(mpirun $flags -np 1 "$exe" train | tee /dev/stderr | sed -n 's/.* \([0-9]*\) samples\/s.*/\1/p')
    # shellcheck disable=SC2086
    two=$(mpirun $flags -np 2 "$exe" train | tee /dev/stderr | sed -n 's/.* \([0-9]*\) samples\/s.*/\1/p')
    # shellcheck disable=SC2086
    alone=$(mpirun $flags -np 2 "$exe" independent | tee /dev/stderr | sed -n 's/.* \([0-9]*\) samples\/s.*/\1/p')
    echo "round $round: without all-reduce $(awk -v a="$one" -v b="$alone" 'BEGIN { printf "%.3f", b / (2 * a) }')"
    echo "round $round: efficiency $(awk -v a="$one" -v b="$two" 'BEGIN { printf "%.3f", b / (2 * a) }') (2 ranks $two samples/s, 1 rank $one)"
done
# shellcheck disable=SC2086
mpirun $flags -np 2 "$exe" bandwidth
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
