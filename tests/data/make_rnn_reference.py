#!/usr/bin/env python3
"""Reference values for tests/rnn.rs: nn.RNN, nn.LSTM and nn.GRU computed with PyTorch in float64.

For each case this writes the layer's state_dict (float64) to tests/data/rnn_<name>.safetensors
with safetensors.torch.save_file, and records in tests/data/rnn_reference.json: the layer's
options, the input `x`, the initial state (`h0`, `c0` or null), the per-sequence `lengths` (or
null), the output sequence `out`, the final state `h_n` (`c_n`), fixed random weights `w_out`,
`w_h`, `w_c` of those shapes, and the gradients of

    loss = sum(out * w_out) + sum(h_n * w_h) [+ sum(c_n * w_c)]

with respect to the input, the initial state and every parameter (by state_dict name).
Variable-length cases go through pack_padded_sequence(enforce_sorted=False) and
pad_packed_sequence(total_length=T), as a PyTorch user runs a padded batch. Tensors are
{"shape": [...], "data": [...]} in row-major order.

Regenerate with:  /tmp/peers/bin/python tests/data/make_rnn_reference.py   (needs torch, safetensors)
"""

import json
import os

import torch
from safetensors.torch import save_file
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

HERE = os.path.dirname(os.path.abspath(__file__))
DT = torch.float64
torch.manual_seed(20261204)


def t(x):
    x = x.detach()
    return {"shape": list(x.shape), "data": x.reshape(-1).tolist()}


CASES = [
    # name, kind, input, hidden, layers, bias, batch_first, bidirectional, N, T, h0, lengths, unbatched
    dict(name="rnn_tanh", kind="rnn_tanh", input=4, hidden=3, layers=1, bias=True, batch_first=False,
         bidirectional=False, n=3, t=5, h0=False, lengths=None),
    dict(name="rnn_relu_l2_bf_h0", kind="rnn_relu", input=3, hidden=4, layers=2, bias=True, batch_first=True,
         bidirectional=False, n=2, t=4, h0=True, lengths=None),
    dict(name="rnn_tanh_bi_lengths", kind="rnn_tanh", input=3, hidden=3, layers=1, bias=True,
         batch_first=False, bidirectional=True, n=3, t=5, h0=True, lengths=[3, 5, 1]),
    dict(name="lstm", kind="lstm", input=4, hidden=3, layers=1, bias=True, batch_first=False,
         bidirectional=False, n=3, t=5, h0=False, lengths=None),
    dict(name="lstm_l2_bi_bf_h0", kind="lstm", input=3, hidden=4, layers=2, bias=True, batch_first=True,
         bidirectional=True, n=2, t=4, h0=True, lengths=None),
    dict(name="lstm_nobias_l2", kind="lstm", input=3, hidden=2, layers=2, bias=False, batch_first=False,
         bidirectional=False, n=2, t=3, h0=True, lengths=None),
    dict(name="lstm_l2_bi_lengths", kind="lstm", input=3, hidden=3, layers=2, bias=True, batch_first=False,
         bidirectional=True, n=4, t=5, h0=True, lengths=[2, 5, 3, 1]),
    dict(name="lstm_bf_lengths", kind="lstm", input=2, hidden=3, layers=1, bias=True, batch_first=True,
         bidirectional=False, n=3, t=4, h0=False, lengths=[4, 1, 3]),
    dict(name="gru", kind="gru", input=4, hidden=3, layers=1, bias=True, batch_first=False,
         bidirectional=False, n=3, t=5, h0=False, lengths=None),
    dict(name="gru_l2_h0", kind="gru", input=3, hidden=4, layers=2, bias=True, batch_first=False,
         bidirectional=False, n=2, t=4, h0=True, lengths=None),
    dict(name="gru_bi_bf", kind="gru", input=3, hidden=3, layers=1, bias=True, batch_first=True,
         bidirectional=True, n=2, t=4, h0=False, lengths=None),
    dict(name="gru_l2_bi_bf_lengths", kind="gru", input=2, hidden=3, layers=2, bias=True, batch_first=True,
         bidirectional=True, n=3, t=4, h0=True, lengths=[1, 4, 2]),
    dict(name="gru_unbatched_h0", kind="gru", input=3, hidden=2, layers=2, bias=True, batch_first=False,
         bidirectional=True, n=None, t=4, h0=True, lengths=None),
]


def build(c):
    kw = dict(num_layers=c["layers"], bias=c["bias"], batch_first=c["batch_first"],
              bidirectional=c["bidirectional"])
    if c["kind"] == "lstm":
        return torch.nn.LSTM(c["input"], c["hidden"], **kw)
    if c["kind"] == "gru":
        return torch.nn.GRU(c["input"], c["hidden"], **kw)
    nl = "tanh" if c["kind"] == "rnn_tanh" else "relu"
    return torch.nn.RNN(c["input"], c["hidden"], nonlinearity=nl, **kw)


cases = []
for c in CASES:
    layer = build(c).to(DT)
    save_file(layer.state_dict(), os.path.join(HERE, f"rnn_{c['name']}.safetensors"))
    d = 2 if c["bidirectional"] else 1
    n, steps = c["n"], c["t"]
    if n is None:
        x = torch.randn(steps, c["input"], dtype=DT)
        state_shape = (d * c["layers"], c["hidden"])
    else:
        x = torch.randn(*((n, steps) if c["batch_first"] else (steps, n)), c["input"], dtype=DT)
        state_shape = (d * c["layers"], n, c["hidden"])
    x.requires_grad_(True)
    h0 = torch.randn(*state_shape, dtype=DT, requires_grad=True) if c["h0"] else None
    c0 = torch.randn(*state_shape, dtype=DT, requires_grad=True) if c["h0"] and c["kind"] == "lstm" else None
    if c["kind"] == "lstm":
        hx = (h0, c0) if h0 is not None else None
    else:
        hx = h0
    if c["lengths"] is not None:
        packed = pack_padded_sequence(x, torch.tensor(c["lengths"]), batch_first=c["batch_first"],
                                      enforce_sorted=False)
        out_packed, state = layer(packed, hx)
        out, _ = pad_packed_sequence(out_packed, batch_first=c["batch_first"], total_length=steps)
    else:
        out, state = layer(x, hx)
    h_n, c_n = state if c["kind"] == "lstm" else (state, None)
    w_out = torch.randn(*out.shape, dtype=DT)
    w_h = torch.randn(*h_n.shape, dtype=DT)
    loss = (out * w_out).sum() + (h_n * w_h).sum()
    w_c = None
    if c_n is not None:
        w_c = torch.randn(*c_n.shape, dtype=DT)
        loss = loss + (c_n * w_c).sum()
    names = list(layer.state_dict().keys())
    params = dict(layer.named_parameters())
    wrt = [x] + [s for s in (h0, c0) if s is not None] + [params[k] for k in names]
    grads = torch.autograd.grad(loss, wrt)
    gx, rest = grads[0], list(grads[1:])
    gh0 = rest.pop(0) if h0 is not None else None
    gc0 = rest.pop(0) if c0 is not None else None
    cases.append({
        "name": c["name"],
        "kind": c["kind"],
        "input_size": c["input"],
        "hidden_size": c["hidden"],
        "num_layers": c["layers"],
        "bias": c["bias"],
        "batch_first": c["batch_first"],
        "bidirectional": c["bidirectional"],
        "lengths": c["lengths"],
        "weights": f"rnn_{c['name']}.safetensors",
        "param_names": names,
        "x": t(x),
        "h0": t(h0) if h0 is not None else None,
        "c0": t(c0) if c0 is not None else None,
        "out": t(out),
        "h_n": t(h_n),
        "c_n": t(c_n) if c_n is not None else None,
        "w_out": t(w_out),
        "w_h": t(w_h),
        "w_c": t(w_c) if w_c is not None else None,
        "loss": loss.item(),
        "grad_x": t(gx),
        "grad_h0": t(gh0) if gh0 is not None else None,
        "grad_c0": t(gc0) if gc0 is not None else None,
        "grad_params": {k: t(g) for k, g in zip(names, rest)},
    })

with open(os.path.join(HERE, "rnn_reference.json"), "w") as f:
    json.dump({"torch_version": torch.__version__, "cases": cases}, f, indent=1)
    f.write("\n")
