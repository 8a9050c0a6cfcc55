#!/usr/bin/env python3
"""Reference values for tests/conv.rs, computed with PyTorch in float64.

Writes tests/data/conv_reference.json (next to this script). Tensors are {"shape": [...],
"data": [...]} in row-major order. For each case the script records the inputs, the forward
output, a fixed random `seed` of the output's shape, and the gradients of sum(out * seed) with
respect to every input. The "hvp" cases also record a direction `v` (one tensor per input) and
the Hessian-vector product of f = sum(seed * tanh(op(inputs))) along v, computed by
differentiating the gradient (create_graph=True).

Regenerate with:  python3 tests/data/make_conv_reference.py   (needs torch)
"""

import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20261123)
DT = torch.float64


def t(x):
    x = x.detach()
    return {"shape": list(x.shape), "data": x.reshape(-1).tolist()}


def randn(*shape):
    return torch.randn(*shape, dtype=DT)


def first_order(fn, inputs):
    xs = [x.clone().requires_grad_(True) for x in inputs]
    out = fn(*xs)
    seed = randn(*out.shape)
    grads = torch.autograd.grad((out * seed).sum(), xs)
    return out, seed, grads


def conv_case(name, n, c_in, c_out, hw, kernel, stride, padding, bias):
    x = randn(n, c_in, *hw)
    w = randn(c_out, c_in, *kernel)
    inputs = [x, w] + ([randn(c_out)] if bias else [])

    def fn(x, w, b=None):
        return F.conv2d(x, w, b, stride=stride, padding=padding)

    out, seed, grads = first_order(fn, inputs)
    return {
        "name": name,
        "stride": list(stride),
        "padding": list(padding),
        "inputs": [t(v) for v in inputs],
        "out": t(out),
        "seed": t(seed),
        "grads": [t(g) for g in grads],
    }


def pool_case(name, shape, kernel, stride, padding):
    x = randn(*shape)

    def fn(x):
        return F.max_pool2d(x, kernel, stride=stride, padding=padding)

    out, seed, grads = first_order(fn, [x])
    return {
        "name": name,
        "kernel": list(kernel),
        "stride": list(stride),
        "padding": list(padding),
        "inputs": [t(x)],
        "out": t(out),
        "seed": t(seed),
        "grads": [t(g) for g in grads],
    }


def window(kernel, stride, padding, dilation):
    return {
        "kernel": list(kernel),
        "stride": list(stride),
        "padding": list(padding),
        "dilation": list(dilation),
    }


def unfold_case(name, shape, kernel, stride, padding, dilation):
    x = randn(*shape)

    def fn(x):
        return F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)

    out, seed, grads = first_order(fn, [x])
    return {
        "name": name,
        **window(kernel, stride, padding, dilation),
        "inputs": [t(x)],
        "out": t(out),
        "seed": t(seed),
        "grads": [t(g) for g in grads],
    }


def fold_case(name, n, c, size, kernel, stride, padding, dilation):
    probe = F.unfold(torch.zeros(n, c, *size, dtype=DT), kernel, dilation=dilation, padding=padding, stride=stride)
    cols = randn(*probe.shape)

    def fn(cols):
        return F.fold(cols, size, kernel, dilation=dilation, padding=padding, stride=stride)

    out, seed, grads = first_order(fn, [cols])
    return {
        "name": name,
        "output_size": list(size),
        **window(kernel, stride, padding, dilation),
        "inputs": [t(cols)],
        "out": t(out),
        "seed": t(seed),
        "grads": [t(g) for g in grads],
    }


def hvp_case(name, op, args, inputs, fn):
    xs = [x.clone().requires_grad_(True) for x in inputs]
    out = fn(*xs)
    seed = randn(*out.shape)
    f = (seed * torch.tanh(out)).sum()
    grads = torch.autograd.grad(f, xs, create_graph=True)
    v = [randn(*x.shape) for x in xs]
    hv = torch.autograd.grad(sum((g * d).sum() for g, d in zip(grads, v)), xs)
    return {
        "name": name,
        "op": op,
        **args,
        "inputs": [t(x) for x in inputs],
        "seed": t(seed),
        "grads": [t(g) for g in grads],
        "v": [t(d) for d in v],
        "hvp": [t(h) for h in hv],
    }


def main():
    conv = [
        conv_case("k3_s1_p0", 2, 3, 4, (6, 5), (3, 3), (1, 1), (0, 0), True),
        conv_case("k3_s2_p1", 2, 2, 3, (7, 6), (3, 3), (2, 2), (1, 1), True),
        conv_case("k2x3_s1_p1", 3, 2, 2, (5, 6), (2, 3), (1, 1), (1, 1), True),
        conv_case("k2x3_s2_p0_nobias", 2, 3, 4, (6, 7), (2, 3), (2, 2), (0, 0), False),
        conv_case("k3x2_s2x1_p0x1", 2, 2, 3, (7, 5), (3, 2), (2, 1), (0, 1), True),
        conv_case("k1_s1_p0", 1, 4, 2, (3, 3), (1, 1), (1, 1), (0, 0), True),
    ]
    pool = [
        pool_case("k2_s2_p0", (2, 3, 6, 6), (2, 2), (2, 2), (0, 0)),
        pool_case("k3_s2_p1", (2, 2, 7, 7), (3, 3), (2, 2), (1, 1)),
        pool_case("k2x3_s1x2_p0_overlapping", (1, 2, 5, 7), (2, 3), (1, 2), (0, 0)),
        pool_case("k3_s1_p1_overlapping", (1, 1, 4, 5), (3, 3), (1, 1), (1, 1)),
    ]
    unfold = [
        unfold_case("k2x3_s2x1_p1x2_d2x1", (2, 2, 6, 7), (2, 3), (2, 1), (1, 2), (2, 1)),
        unfold_case("k3_s1_p0_d1", (1, 3, 4, 5), (3, 3), (1, 1), (0, 0), (1, 1)),
    ]
    fold = [
        fold_case("k2x3_s2x1_p1x2_d2x1", 2, 2, (6, 7), (2, 3), (2, 1), (1, 2), (2, 1)),
        fold_case("k3_s2_p1_d1", 1, 2, (5, 5), (3, 3), (2, 2), (1, 1), (1, 1)),
    ]
    hvp = [
        hvp_case(
            "conv2d_k3_s2_p1",
            "conv2d",
            {"stride": [2, 2], "padding": [1, 1]},
            [randn(2, 2, 5, 6), randn(3, 2, 3, 3), randn(3)],
            lambda x, w, b: F.conv2d(x, w, b, stride=(2, 2), padding=(1, 1)),
        ),
        hvp_case(
            "max_pool2d_k3_s2_p1",
            "max_pool2d",
            {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1]},
            [randn(2, 2, 5, 5)],
            lambda x: F.max_pool2d(x, (3, 3), stride=(2, 2), padding=(1, 1)),
        ),
    ]
    data = {
        "generator": f"tests/data/make_conv_reference.py, torch {torch.__version__}, float64",
        "conv2d": conv,
        "max_pool2d": pool,
        "unfold": unfold,
        "fold": fold,
        "hvp": hvp,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conv_reference.json")
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
