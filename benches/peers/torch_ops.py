"""The workloads of benches/ops.rs (issue 14) in PyTorch eager, for same-machine ratios in
BENCHMARKS.md: ten ops on 2^20-element f32 tensors, forward ("fwd", no autograd) and forward +
backward of a seed of ones ("fwd+bwd"), and einsum("bhqd,bhkd->bhqk") against q @ kᵀ.

Timed as the other peer scripts time PyTorch: warm-up runs, then the median of many, in ms.

usage: python torch_ops.py THREADS      # torch.set_num_threads(THREADS); run pinned with taskset
"""
import statistics
import sys
import time

import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
torch.set_num_threads(threads)
torch.manual_seed(14)
N = 1 << 20


def randn(*shape):
    return torch.randn(*shape, dtype=torch.float32)


rows = torch.randint(0, 1024, (1024,))
cols = torch.randint(0, 1024, (1024, 1024))
mask = torch.rand(1024, 1024) < 0.5
F = torch.nn.functional
workloads = [
    ("cat [1024, 512] x2, axis 1", [randn(1024, 512), randn(1024, 512)], lambda a, b: torch.cat([a, b], 1)),
    ("permute [64, 128, 128] -> [1, 2, 0]", [randn(64, 128, 128)], lambda x: x.permute(1, 2, 0).contiguous()),
    ("index_select [1024, 1024], 1024 rows", [randn(1024, 1024)], lambda x: x.index_select(0, rows)),
    ("gather [1024, 1024], axis 1", [randn(1024, 1024)], lambda x: x.gather(1, cols)),
    ("masked_fill [1024, 1024]", [randn(1024, 1024)], lambda x: x.masked_fill(mask, 0.0)),
    ("where_cond [1024, 1024]", [randn(1024, 1024), randn(1024, 1024)], lambda a, b: torch.where(mask, a, b)),
    ("logsumexp [1024, 1024], axis 1", [randn(1024, 1024)], lambda x: torch.logsumexp(x, 1)),
    ("cumsum [1024, 1024], axis 1", [randn(1024, 1024)], lambda x: torch.cumsum(x, 1)),
    ("gelu [2^20]", [randn(N)], lambda x: F.gelu(x)),
    ("softplus [2^20]", [randn(N)], lambda x: F.softplus(x)),
]


def median_ms(run, warmup=5, reps=31):
    for _ in range(warmup):
        run()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


print(f"PyTorch {torch.__version__}, {threads} thread(s); median ms")
for name, inputs, op in workloads:
    def fwd():
        with torch.no_grad():
            op(*inputs)

    leaves = [t.clone().requires_grad_(True) for t in inputs]
    seed = torch.ones_like(op(*inputs))

    def fwd_bwd():
        for leaf in leaves:
            leaf.grad = None
        op(*leaves).backward(seed)

    print(f"{name:40s} fwd {median_ms(fwd):8.3f}   fwd+bwd {median_ms(fwd_bwd):8.3f}")

q = randn(8, 8, 128, 64).requires_grad_(True)
k = randn(8, 8, 128, 64).requires_grad_(True)
seed = torch.ones(8, 8, 128, 128)
for name, op in [("einsum bhqd,bhkd->bhqk", lambda: torch.einsum("bhqd,bhkd->bhqk", q, k)),
                 ("matmul q @ k^T", lambda: q @ k.transpose(-1, -2))]:
    def step():
        q.grad = None
        k.grad = None
        op().backward(seed)

    print(f"{name:40s} fwd+bwd {median_ms(step):8.3f}")
