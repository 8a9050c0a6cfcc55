"""Writes tests/data/extreme_losses_reference.json: PyTorch's f32 values and gradients of the
losses and normalisations at extreme inputs (issue 18), which tests/extreme_losses.rs compares
tapegrad with. Run once; the output is committed.

    python tests/data/make_extreme_reference.py   # needs torch

Each case is a [N, C] (or [N]) f32 input built from a sweep over ±1e3, ±1e30, ±f32::MAX, ±inf
and NaN, PyTorch's output, and the gradient of the output's sum (seed of ones) with respect to the
input, in f32 and (the same inputs) in f64. Non-finite numbers are written as the strings "nan",
"inf" and "-inf".
"""

import json
import math
import os

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
MAX = float(torch.finfo(torch.float32).max)
SWEEP = [0.0, 1.0, -1.0, 15.0, -15.0, 17.0, -17.0, 20.0, -20.0, 88.0, -88.0, 104.0, -104.0,
         1e3, -1e3, 1e30, -1e30, MAX, -MAX, math.inf, -math.inf, math.nan]


def enc(v):
    out = []
    for x in v:
        if math.isnan(x):
            out.append("nan")
        elif math.isinf(x):
            out.append("inf" if x > 0 else "-inf")
        else:
            out.append(x)
    return out


def rows():
    """Rows of three logits that stress a softmax: [v, v, 0], [v, 0, -v], [v, -v, v]."""
    out = []
    for v in SWEEP:
        out += [[v, v, 0.0], [v, 0.0, -v], [v, -v, v]]
    return out


cases = []


def run(x, f, dtype):
    t = torch.tensor(x, dtype=torch.float32).to(dtype).requires_grad_(True)
    y = f(t)
    y.backward(torch.ones_like(y))
    return t, y, t.grad


def case(name, x, f, **extra):
    t, y, g = run(x, f, torch.float32)
    # The same inputs in float64: nearer the exact values, where PyTorch's f32 kernels round
    # more than tapegrad's (its binary cross-entropy loses ln(1 + e^-|x|) below x = -15).
    _, y64, g64 = run(x, f, torch.float64)
    cases.append({
        "name": name,
        "shape": list(t.shape),
        "input": enc(t.detach().flatten().tolist()),
        "output_shape": list(y.shape),
        "output": enc(y.detach().flatten().tolist()),
        "grad": enc(g.flatten().tolist()),
        "output_f64": enc(y64.detach().flatten().tolist()),
        "grad_f64": enc(g64.flatten().tolist()),
        **extra,
    })


r = rows()
targets = [i % 3 for i in range(len(r))]
case("log_softmax", r, lambda t: F.log_softmax(t, 1))
case("softmax", r, lambda t: F.softmax(t, 1))
case("logsumexp", r, lambda t: torch.logsumexp(t, 1))
# Per-row losses (reduction none) so that one bad row does not hide the others.
case("cross_entropy", r, lambda t: F.cross_entropy(t, torch.tensor(targets), reduction="none"),
     targets=targets)
case("cross_entropy_smoothed", r,
     lambda t: F.cross_entropy(t, torch.tensor(targets), reduction="none", label_smoothing=0.1),
     targets=targets, label_smoothing=0.1)
case("nll", r, lambda t: F.nll_loss(F.log_softmax(t, 1), torch.tensor(targets), reduction="none"),
     targets=targets)
case("sigmoid", SWEEP, torch.sigmoid)
for y in [0.0, 0.3, 1.0]:
    case(f"bce_with_logits_{y}", SWEEP,
         lambda t, y=y: F.binary_cross_entropy_with_logits(t, torch.full_like(t, y), reduction="none"),
         target=y)

with open(os.path.join(HERE, "extreme_losses_reference.json"), "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f)
print(len(cases), "cases")
