"""Writes the PyTorch references that tests/attention.rs compares against (run once; the outputs
are committed).

    /tmp/peers/bin/python tests/data/make_attention_reference.py   # needs torch, safetensors

For each case: the module's state_dict in float64, saved with safetensors.torch.save_file as
tests/data/attention/<name>.safetensors (loaded with tapegrad::io::load), and in
attention_reference.json the configuration, the fixed inputs and masks, the output, the attention
weights when asked for, and the gradients of the fixed scalar loss

    sum(out * seed) (+ sum(weights * weights_seed) when the weights are returned)

with respect to every input and every parameter (by state_dict name). Every parameter is
redrawn from N(0, 0.5^2) before saving, so that zero-initialised biases and unit norm weights
do not hide a mistake. Comparisons run in evaluation mode (dropout is the identity) with
gradients enabled, which keeps PyTorch off its fused inference path.

Boolean masks are `true` where a position is masked (nn.MultiheadAttention's convention); for
F.scaled_dot_product_attention the script passes the negation, as that function reads `true` as
"takes part".
"""

import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "attention")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)
DT = torch.float64


def t(x):
    return {"shape": list(x.shape), "data": x.detach().flatten().tolist()}


def mask_json(m):
    return None if m is None else {"shape": list(m.shape), "data": [bool(v) for v in m.flatten().tolist()]}


def randomise(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)


def save(module, name):
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, os.path.join(OUT, f"{name}.safetensors"))


def finish(case, module, inputs, out, weights):
    seed = torch.randn_like(out)
    loss = (out * seed).sum()
    case["seed"] = t(seed)
    case["out"] = t(out)
    if weights is not None:
        wseed = torch.randn_like(weights)
        loss = loss + (weights * wseed).sum()
        case["weights"] = t(weights)
        case["weights_seed"] = t(wseed)
    else:
        case["weights"] = None
    params = dict(module.named_parameters()) if module is not None else {}
    wrt = list(inputs) + list(params.values())
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    for g in grads:
        assert g is not None and torch.isfinite(g).all(), case["name"]
    case["inputs"] = [t(x) for x in inputs]
    case["input_grads"] = [t(g) for g in grads[: len(inputs)]]
    case["param_grads"] = {k: t(g) for k, g in zip(params.keys(), grads[len(inputs) :])}
    case["param_names"] = list(params.keys())
    for v in case.values():
        if isinstance(v, dict) and "data" in v:
            assert all(x == x for x in v["data"]), case["name"]  # no NaN
    return case


def causal(l, s):
    return torch.ones(l, s, dtype=torch.bool).triu(1)


E, H, L, S, N = 6, 2, 3, 4, 2

# ---------------------------------------------------------------- multi-head attention
mha_cases = []


def mha_case(name, batch_first, bias=True, self_attn=False, same_kv=False, attn_mask=None,
             key_padding_mask=None, is_causal=False, need_weights=True, average=True, unbatched=False):
    m = torch.nn.MultiheadAttention(E, H, dropout=0.2, bias=bias, batch_first=batch_first).to(DT)
    randomise(m)
    m.eval()
    save(m, name)

    def shape(length):
        if unbatched:
            return (length, E)
        return (N, length, E) if batch_first else (length, N, E)

    q = torch.randn(*shape(L), dtype=DT, requires_grad=True)
    if self_attn:
        inputs, (qq, kk, vv) = [q], (q, q, q)
    elif same_kv:
        kv = torch.randn(*shape(S), dtype=DT, requires_grad=True)
        inputs, (qq, kk, vv) = [q, kv], (q, kv, kv)
    else:
        k = torch.randn(*shape(S), dtype=DT, requires_grad=True)
        v = torch.randn(*shape(S), dtype=DT, requires_grad=True)
        inputs, (qq, kk, vv) = [q, k, v], (q, k, v)
    length_s = L if self_attn else S
    torch_mask = attn_mask
    if is_causal:
        # PyTorch's is_causal is a hint that needs the causal mask itself; tapegrad builds it.
        c = causal(L, length_s)
        torch_mask = c if attn_mask is None else (attn_mask | c)
    out, w = m(qq, kk, vv, key_padding_mask=key_padding_mask, need_weights=need_weights,
               attn_mask=torch_mask, average_attn_weights=average, is_causal=is_causal)
    case = {
        "name": name, "embed_dim": E, "num_heads": H, "batch_first": batch_first, "bias": bias,
        "self_attention": self_attn, "same_kv": same_kv, "attn_mask": mask_json(attn_mask),
        "key_padding_mask": mask_json(key_padding_mask), "is_causal": is_causal,
        "need_weights": need_weights, "average_attn_weights": average, "unbatched": unbatched,
    }
    mha_cases.append(finish(case, m, inputs, out, w))


kpm = torch.tensor([[False, False, False, False], [False, True, False, True]])
am = torch.tensor([[False, True, False, False], [False, False, False, True], [True, False, False, False]])
mha_case("mha_seq_first_self", batch_first=False, self_attn=True)
mha_case("mha_batch_first_self", batch_first=True, self_attn=True)
mha_case("mha_batch_first_cross_masks", batch_first=True, attn_mask=am, key_padding_mask=kpm)
mha_case("mha_seq_first_kv_padding", batch_first=False, same_kv=True, key_padding_mask=kpm)
mha_case("mha_causal_self", batch_first=True, self_attn=True, is_causal=True, need_weights=False)
mha_case("mha_causal_with_padding", batch_first=False, self_attn=True, is_causal=True,
         key_padding_mask=torch.tensor([[False, False, True], [False, False, False]]))
per_head = torch.rand(N * H, L, S) < 0.4
per_head[..., 0] = False  # every query keeps a key: need_weights=True gives NaN on empty rows
mha_case("mha_3d_mask_per_head", batch_first=False, attn_mask=per_head, average=False)
mha_case("mha_no_bias", batch_first=True, bias=False, attn_mask=am)
mha_case("mha_unbatched", batch_first=False, unbatched=True, key_padding_mask=torch.tensor([False, False, True, False]))
# A query with every key masked: PyTorch's need_weights=False path (fused attention) gives 0.
mha_case("mha_fully_masked_row", batch_first=True, need_weights=False,
         attn_mask=torch.tensor([[True, True, True, True], [False, True, False, False],
                                 [False, False, False, False]]))

# ---------------------------------------------------------------- encoder layers
D, NH, FF, LE = 6, 2, 10, 4
layer_cases = []


def layer_case(name, norm_first, activation, batch_first, eps=1e-5, src_mask=None, kpm=None, is_causal=False):
    layer = torch.nn.TransformerEncoderLayer(D, NH, dim_feedforward=FF, dropout=0.1, activation=activation,
                                             layer_norm_eps=eps, batch_first=batch_first,
                                             norm_first=norm_first).to(DT)
    randomise(layer)
    layer.eval()
    save(layer, name)
    x = torch.randn(*((N, LE, D) if batch_first else (LE, N, D)), dtype=DT, requires_grad=True)
    mask = src_mask
    if is_causal:
        mask = causal(LE, LE) if src_mask is None else (src_mask | causal(LE, LE))
    out = layer(x, src_mask=mask, src_key_padding_mask=kpm, is_causal=is_causal)
    case = {
        "name": name, "d_model": D, "nhead": NH, "dim_feedforward": FF, "norm_first": norm_first,
        "activation": activation, "batch_first": batch_first, "layer_norm_eps": eps,
        "src_mask": mask_json(src_mask), "src_key_padding_mask": mask_json(kpm), "is_causal": is_causal,
    }
    layer_cases.append(finish(case, layer, [x], out, None))


pad4 = torch.tensor([[False, False, False, False], [False, False, True, True]])
sm4 = torch.tensor([[False, True, False, False], [False, False, False, True],
                    [True, False, False, False], [False, False, True, False]])
layer_case("layer_post_relu_seq_first_padding", False, "relu", False, kpm=pad4)
layer_case("layer_pre_gelu_batch_first_causal", True, "gelu", True, is_causal=True)
layer_case("layer_post_gelu_batch_first_mask", False, "gelu", True, eps=1e-6, src_mask=sm4)
layer_case("layer_pre_relu_seq_first", True, "relu", False)

# ---------------------------------------------------------------- a two-layer encoder
encoder_cases = []
layer = torch.nn.TransformerEncoderLayer(D, NH, dim_feedforward=FF, dropout=0.1, activation="gelu",
                                         batch_first=True, norm_first=True).to(DT)
enc = torch.nn.TransformerEncoder(layer, 2, norm=torch.nn.LayerNorm(D, dtype=DT),
                                  enable_nested_tensor=False)
randomise(enc)
enc.eval()
save(enc, "encoder_two_layers")
x = torch.randn(N, LE, D, dtype=DT, requires_grad=True)
out = enc(x, src_key_padding_mask=pad4)
encoder_cases.append(finish({"name": "encoder_two_layers", "num_layers": 2, "d_model": D, "nhead": NH,
                             "dim_feedforward": FF, "src_key_padding_mask": mask_json(pad4)},
                            enc, [x], out, None))

# ---------------------------------------------------------------- RMSNorm
rms_cases = []
for name, shape, eps, affine, xshape in [
    ("rmsnorm_2d_default_eps", [3, 4], None, True, (2, 3, 4)),
    ("rmsnorm_eps_no_affine", [4], 1e-3, False, (5, 4)),
]:
    m = torch.nn.RMSNorm(shape, eps=eps, elementwise_affine=affine, dtype=DT)
    randomise(m)
    save(m, name)
    x = torch.randn(*xshape, dtype=DT, requires_grad=True)
    out = m(x)
    rms_cases.append(finish({"name": name, "normalized_shape": shape, "eps": eps, "elementwise_affine": affine},
                            m, [x], out, None))

# ---------------------------------------------------------------- Conv1d
conv_cases = []
for name, cin, cout, k, stride, padding, dilation, bias, xshape in [
    ("conv1d_stride_padding_dilation", 3, 4, 3, 2, 1, 2, True, (2, 3, 9)),
    ("conv1d_plain", 2, 3, 2, 1, 0, 1, True, (1, 2, 5)),
    ("conv1d_unbatched_no_bias", 2, 2, 3, 1, 2, 1, False, (2, 6)),
]:
    m = torch.nn.Conv1d(cin, cout, k, stride=stride, padding=padding, dilation=dilation, bias=bias, dtype=DT)
    randomise(m)
    save(m, name)
    x = torch.randn(*xshape, dtype=DT, requires_grad=True)
    out = m(x)
    conv_cases.append(finish({"name": name, "in_channels": cin, "out_channels": cout, "kernel": k,
                              "stride": stride, "padding": padding, "dilation": dilation, "bias": bias},
                             m, [x], out, None))

# ---------------------------------------------------------------- the function
sdpa_cases = []
for name, mask, is_causal, vshape in [
    ("sdpa_plain", None, False, (2, 2, 5, 3)),
    ("sdpa_mask", torch.tensor([[False, True, False, True, False], [True, False, False, False, False],
                                [False, False, False, False, True]]), False, (2, 2, 5, 3)),
    ("sdpa_causal", None, True, (2, 2, 5, 3)),
    ("sdpa_mask_and_causal_broadcast", torch.tensor([False, False, True, False, False]), True, (1, 2, 5, 3)),
    ("sdpa_fully_masked_row", torch.tensor([[True] * 5, [False, True, False, False, False],
                                            [False, False, False, False, True]]), False, (2, 2, 5, 3)),
]:
    q = torch.randn(2, 2, 3, 4, dtype=DT, requires_grad=True)
    k = torch.randn(2, 1, 5, 4, dtype=DT, requires_grad=True)
    v = torch.randn(*vshape, dtype=DT, requires_grad=True)
    full = mask
    if is_causal:
        c = causal(3, 5)
        full = c if mask is None else (mask | c)
    # F.sdpa reads a boolean mask as "takes part": pass the negation.
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if full is None else ~full)
    sdpa_cases.append(finish({"name": name, "mask": mask_json(mask), "is_causal": is_causal},
                             None, [q, k, v], out, None))

reference = {
    "mha": mha_cases,
    "encoder_layer": layer_cases,
    "encoder": encoder_cases,
    "rmsnorm": rms_cases,
    "conv1d": conv_cases,
    "sdpa": sdpa_cases,
    "torch_version": torch.__version__,
}
with open(os.path.join(HERE, "attention_reference.json"), "w") as f:
    json.dump(reference, f, indent=None)
    f.write("\n")
