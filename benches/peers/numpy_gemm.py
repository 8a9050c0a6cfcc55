"""One 1024x1024 f32 GEMM through NumPy's OpenBLAS. usage: numpy_gemm.py THREADS -> best and median GFLOP/s."""
import os
import sys

os.environ["OPENBLAS_NUM_THREADS"] = sys.argv[1]  # read when numpy loads OpenBLAS
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

a = np.random.randn(1024, 1024).astype(np.float32)
b = np.random.randn(1024, 1024).astype(np.float32)
times = []
for _ in range(13):
    start = time.perf_counter()
    a @ b
    times.append(time.perf_counter() - start)
times = times[3:]
flop = 2 * 1024 ** 3
print(f"best {flop / min(times) / 1e9:.1f} median {flop / statistics.median(times) / 1e9:.1f} GFLOP/s")
