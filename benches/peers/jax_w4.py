"""W4 (WORKLOADS.md) in JAX, for a same-machine ratio in BENCHMARKS.md.

A, B: 1024x1024 f32; C = A @ B; loss = sum(C); gradients of loss with respect to A and B
(three GEMMs). Timed the way shared/peers/torch_w.py times PyTorch: three warm-up runs, then the
median of seven, printed as GFLOP/s (3 * 2 * 1024^3 / time).

usage: taskset -c 0 python jax_w4.py eager     # 1 thread (one core); "jit" jits the whole step
       taskset -c 0,1 python jax_w4.py eager   # 2 threads
"""
import statistics
import sys
import time

import jax
import jax.numpy as jnp

mode = sys.argv[1] if len(sys.argv) > 1 else "eager"
k_a, k_b = jax.random.split(jax.random.PRNGKey(0))
a = jax.random.normal(k_a, (1024, 1024), jnp.float32)
b = jax.random.normal(k_b, (1024, 1024), jnp.float32)

# value_and_grad, not grad: with grad alone, jit drops the forward product (nothing returned needs
# it) and times two GEMMs of W4's three.
step = jax.value_and_grad(lambda a, b: jnp.sum(a @ b), argnums=(0, 1))
if mode == "jit":
    step = jax.jit(step)


def run():
    jax.block_until_ready(step(a, b))


for _ in range(3):
    run()
times = []
for _ in range(7):
    t = time.perf_counter()
    run()
    times.append(time.perf_counter() - t)
print(f"{3 * 2 * 1024 ** 3 / statistics.median(times) / 1e9:.2f}")
