#!/usr/bin/env python3
"""Reference values for tests/functional.rs, computed with torch.autograd.functional in float64.

Writes tests/data/functional_reference.json (next to this script). Tensors are {"shape": [...],
"data": [...]} in row-major order. Each case names a function that tests/functional.rs builds
the same way, its constant tensors ("consts"), its inputs, a cotangent "u" of the output's shape,
one tangent per input ("vs"), and what torch.autograd.functional returns: the output, the
Jacobian with respect to each input, vjp(u) (one tensor per input), jvp(vs) (one tensor), and for
scalar functions the Hessian blocks (hessian[i][j] = d2f / dx_i dx_j) and hvp(vs) (one tensor per
input).

Regenerate with:  python3 tests/data/make_functional_reference.py   (needs torch)
"""

import json
import os

import torch
from torch.autograd import functional as AF

torch.manual_seed(20261204)
DT = torch.float64


def t(x):
    x = x.detach()
    return {"shape": list(x.shape), "data": x.reshape(-1).tolist()}


def randn(*shape):
    return torch.randn(shape, dtype=DT)


# The functions, each `f(consts, *inputs)`; tests/functional.rs has one of each by the same name.


def elementwise(c, x):
    return torch.sin(x) * torch.exp(x) + torch.tanh(x) ** 2


def matmul_tanh(c, x):
    return torch.tanh(c[0] @ x)


def softmax_rows(c, x):
    return torch.softmax(x, dim=1)


def logsumexp_rows(c, x):
    return torch.logsumexp(x, dim=1)


def logsumexp_all(c, x):
    return torch.logsumexp(x.reshape(-1), dim=0)


def non_square(c, x):
    # R^3 -> R^5
    return torch.cat([x * x.sum(), torch.sin(x[:2])])


def two_inputs(c, a, b):
    return torch.tanh(a @ b)


def two_inputs_scalar(c, a, b):
    return torch.logsumexp(a @ b, dim=0)


def rosenbrock(c, x):
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def mlp_loss(c, w1, w2):
    data, target = c
    return ((torch.tanh(data @ w1) @ w2 - target) ** 2).mean()


def mlp_loss_w1(c, w1):
    data, w2, target = c
    return ((torch.tanh(data @ w1) @ w2 - target) ** 2).mean()


def case(name, fn, consts, inputs):
    def f(*xs):
        return fn(consts, *xs)

    inputs = tuple(inputs)
    out = f(*inputs)
    u = randn(*out.shape)
    vs = tuple(randn(*x.shape) for x in inputs)
    jac = AF.jacobian(f, inputs)
    _, vjp = AF.vjp(f, inputs, u)
    _, jvp = AF.jvp(f, inputs, vs)
    entry = {
        "name": name,
        "consts": [t(k) for k in consts],
        "inputs": [t(x) for x in inputs],
        "out": t(out),
        "u": t(u),
        "vs": [t(v) for v in vs],
        "jacobian": [t(j) for j in jac],
        "vjp": [t(g) for g in vjp],
        "jvp": t(jvp),
    }
    if out.numel() == 1:
        hess = AF.hessian(f, inputs)
        _, hvp = AF.hvp(f, inputs, vs)
        entry["hessian"] = [[t(b) for b in row] for row in hess]
        entry["hvp"] = [t(h) for h in hvp]
    return entry


def main():
    data, w1, w2, target = randn(5, 3), randn(3, 4), randn(4, 1), randn(5, 1)
    cases = [
        case("elementwise", elementwise, [], [randn(2, 3)]),
        case("matmul_tanh", matmul_tanh, [randn(4, 3)], [randn(3, 2)]),
        case("softmax_rows", softmax_rows, [], [randn(2, 4)]),
        case("logsumexp_rows", logsumexp_rows, [], [randn(2, 4)]),
        case("logsumexp_all", logsumexp_all, [], [randn(2, 3)]),
        case("non_square", non_square, [], [randn(3)]),
        case("two_inputs", two_inputs, [], [randn(2, 3), randn(3, 2)]),
        case("two_inputs_scalar", two_inputs_scalar, [], [randn(2, 3), randn(3)]),
        case("rosenbrock", rosenbrock, [], [randn(4)]),
        case("mlp_loss", mlp_loss, [data, target], [w1, w2]),
        case("mlp_loss_w1", mlp_loss_w1, [data, w2, target], [w1]),
    ]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "functional_reference.json")
    with open(path, "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {path}")


if __name__ == "__main__":
    main()
