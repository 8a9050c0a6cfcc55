"""W2 (WORKLOADS.md) in JAX with jit, for a same-machine ratio in BENCHMARKS.md.

MLP 784-256-128-10 (ReLU), batch 64, softmax cross-entropy (mean), Adam lr 1e-3 (betas 0.9/0.999,
eps 1e-8), inputs N(0, 1), labels uniform in 0..10; the whole step (forward, backward, Adam) is one
jitted function. Prints ms per step: the median of 200 timed steps after 20 warm-up steps.

usage: taskset -c 0 python jax_w2.py      # 1 thread (one core)
       taskset -c 0,1 python jax_w2.py    # 2 threads
"""
import statistics
import time

import jax
import jax.numpy as jnp

key = jax.random.PRNGKey(0)
k_x, k_y, *k_layers = jax.random.split(key, 2 + 3)
x = jax.random.normal(k_x, (64, 784), jnp.float32)
y = jax.random.randint(k_y, (64,), 0, 10)


def init(k, n_in, n_out):
    bound = 1.0 / n_in**0.5
    kw, kb = jax.random.split(k)
    return (jax.random.uniform(kw, (n_out, n_in), jnp.float32, -bound, bound),
            jax.random.uniform(kb, (n_out,), jnp.float32, -bound, bound))


params = [init(k, a, b) for k, (a, b) in zip(k_layers, [(784, 256), (256, 128), (128, 10)])]


def loss_fn(params, x, y):
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w.T + b
        if i < len(params) - 1:
            h = jax.nn.relu(h)
    logp = jax.nn.log_softmax(h, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def adam_init(params):
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    return (zeros, zeros, 0)


@jax.jit
def step(params, state, x, y):
    m, v, t = state
    grads = jax.grad(loss_fn)(params, x, y)
    t = t + 1
    b1, b2, lr, eps = 0.9, 0.999, 1e-3, 1e-8
    m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
    v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
    mhat_scale = 1.0 / (1 - b1**t)
    vhat_scale = 1.0 / (1 - b2**t)
    params = jax.tree_util.tree_map(
        lambda p, m, v: p - lr * (m * mhat_scale) / (jnp.sqrt(v * vhat_scale) + eps), params, m, v)
    return params, (m, v, t)


state = adam_init(params)
for _ in range(20):
    params, state = step(params, state, x, y)
jax.block_until_ready(params)
times = []
for _ in range(200):
    t0 = time.perf_counter()
    params, state = step(params, state, x, y)
    jax.block_until_ready(params)
    times.append(time.perf_counter() - t0)
print(f"{statistics.median(times) * 1e3:.3f}")
