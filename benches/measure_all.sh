#!/usr/bin/env bash
# Every figure of BENCHMARKS.md's latest section in one sitting, in this order: run it on an idle
# machine (nothing else building), from the repository root. PY is the peers' Python
# (`python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch jax numpy`).
# Writes one file per step to OUT (default target/measure).
set -u
PY=${PY:-/tmp/peers/bin/python}
OUT=${OUT:-target/measure}
mkdir -p "$OUT"
date -u > "$OUT/start"
cargo bench --no-run > /dev/null 2>&1
cargo bench --bench ops -- --warm-up-time 1 --measurement-time 3 > "$OUT/ops.txt" 2>&1
taskset -c 0 "$PY" benches/peers/torch_ops.py 1 > "$OUT/torch_ops_1.txt" 2>&1
"$PY" benches/peers/torch_ops.py 2 > "$OUT/torch_ops_2.txt" 2>&1
cargo bench --bench core > "$OUT/core.txt" 2>&1
cargo bench --bench nn -- W1 > "$OUT/nn_w1.txt" 2>&1
cargo bench --bench seq > "$OUT/seq.txt" 2>&1
for w in w7 w8; do
    for t in 1 2; do
        for lib in torch jax; do
            "$PY" benches/peers/seq_w.py "$lib" "$w" "$t" > "$OUT/${lib}_${w}_$t.txt" 2>&1
        done
    done
done
date -u > "$OUT/end"
