#!/usr/bin/env bash
# W4 against every peer, in rounds: each round runs every program once at one and at two threads,
# starting one program later than the round before, so no program always runs first (this VM's
# speed drifts within minutes; compare within a round, then take the median of the ratios).
#
# usage (from the repository root): bash benches/peers/w4_rounds.sh ROUNDS
#   PYTHON   the peers' venv python (torch, jax):        default /tmp/peers/bin/python
#   PEERS_RS target dir of benches/peers/rust, built:    default /tmp/peers-rust-target
# prints one line per round: ROUND then "program/threads=GFLOP/s" for every run.
set -euo pipefail
rounds=${1:?usage: w4_rounds.sh ROUNDS}
python=${PYTHON:-/tmp/peers/bin/python}
peers_rs=${PEERS_RS:-/tmp/peers-rust-target}/release
shared=../shared/peers

cargo bench --bench w4_median --no-run >/dev/null 2>&1
ours=$(ls -t target/release/deps/w4_median-* | grep -v '\.d$' | head -1)
# First touches of fresh pages are slow on this VM (shared/peers/README.md).
"$python" -c "import numpy as np; np.ones(2**29).sum()"

run() { # program threads -> GFLOP/s ("1 2" for tapegrad: one run times both)
    case $1 in
        tapegrad) "$ours" | awk '{printf "%s ", $4}' ;;
        torch) "$python" "$shared/torch_w.py" w4 "$2" ;;
        jax) taskset -c "$([ "$2" = 1 ] && echo 0 || echo 0,1)" "$python" benches/peers/jax_w4.py eager 2>/dev/null | tail -1 ;;
        candle | dfdx) RAYON_NUM_THREADS=$2 "$peers_rs/$1_w4" ;;
    esac
}

programs=(tapegrad torch jax candle dfdx)
date -u
for round in $(seq 1 "$rounds"); do
    line="$round"
    for i in "${!programs[@]}"; do
        p=${programs[$(((i + round - 1) % ${#programs[@]}))]}
        if [ "$p" = tapegrad ]; then
            read -r one two <<<"$(run tapegrad)"
            line+=" tapegrad/1=$one tapegrad/2=$two"
        else
            for threads in 1 2; do line+=" $p/$threads=$(run "$p" "$threads")"; done
        fi
    done
    echo "$line"
done
date -u
