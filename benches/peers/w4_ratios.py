"""Median paired ratios from the output of w4_rounds.sh (one or more files).

For each thread count and each peer: tapegrad's GFLOP/s divided by the peer's in the same round,
the median of those ratios, and in how many rounds tapegrad was ahead.

usage: python3 benches/peers/w4_ratios.py ROUNDS.log [MORE.log ...]
"""
import re
import statistics
import sys

rounds = []
for path in sys.argv[1:]:
    with open(path) as f:
        for line in f:
            figures = dict(re.findall(r"(\w+/\d)=([\d.]+)", line))
            if figures:
                rounds.append({k: float(v) for k, v in figures.items()})
peers = sorted({k.split("/")[0] for r in rounds for k in r} - {"tapegrad"})
for threads in "12":
    print(f"{threads} thread(s), {len(rounds)} rounds; median GFLOP/s tapegrad "
          f"{statistics.median(r[f'tapegrad/{threads}'] for r in rounds):.2f}")
    for peer in peers:
        ratios = [r[f"tapegrad/{threads}"] / r[f"{peer}/{threads}"] for r in rounds]
        print(f"  vs {peer:8} median ratio {statistics.median(ratios):.3f}, ahead in "
              f"{sum(x >= 1 for x in ratios)}/{len(ratios)} (peer's median GFLOP/s "
              f"{statistics.median(r[f'{peer}/{threads}'] for r in rounds):.2f})")
