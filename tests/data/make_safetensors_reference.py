"""Writes the PyTorch checkpoints that tests/io.rs loads (run once; the outputs are committed).

    python tests/data/make_safetensors_reference.py   # needs torch, numpy, safetensors

- torch_mlp.safetensors: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), seed 0, f32,
  saved with safetensors.torch.save_file(model.state_dict(), ...).
- torch_bn.safetensors: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)) after
  three forward passes in training mode (so the running statistics have moved); it includes
  BatchNorm's `1.num_batches_tracked` (int64).
- torch_dtypes.safetensors: one tensor each of F16, BF16, F64, F32 and I64.
- torch_safetensors_reference.json: the fixed inputs, each model's output on them (evaluation
  mode), and the dtype tensors' values as f64.
"""

import json
import os

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)

x = torch.tensor(
    [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [-2.0, 0.0, 1.0], [0.1, 0.2, 0.3], [3.0, -3.0, 0.5]],
    dtype=torch.float32,
)

mlp = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
save_file(mlp.state_dict(), os.path.join(HERE, "torch_mlp.safetensors"))
with torch.no_grad():
    mlp_out = mlp(x)

bn = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
bn.train()
with torch.no_grad():
    for _ in range(3):
        bn(torch.randn(8, 3))
bn.eval()
save_file(bn.state_dict(), os.path.join(HERE, "torch_bn.safetensors"))
with torch.no_grad():
    bn_out = bn(x)

dtypes = {
    "f16": torch.tensor([1.0, -0.5, 65504.0, 6.1035156e-05, 5.9604645e-08, 0.1], dtype=torch.float16),
    "bf16": torch.tensor([1.0, -0.5, 3.0e38, 0.1, -7.0], dtype=torch.bfloat16),
    "f64": torch.tensor([[0.1, 1e-300], [-2.5, 1e300]], dtype=torch.float64),
    "f32": torch.tensor(0.1, dtype=torch.float32),
    "i64": torch.tensor([1, 2, 3], dtype=torch.int64),
}
save_file(dtypes, os.path.join(HERE, "torch_dtypes.safetensors"))

reference = {
    "input": x.tolist(),
    "mlp_output": mlp_out.tolist(),
    "mlp_names": list(mlp.state_dict().keys()),
    "bn_output": bn_out.tolist(),
    "bn_names": list(bn.state_dict().keys()),
    "bn_running_mean": bn[1].running_mean.tolist(),
    "bn_running_var": bn[1].running_var.tolist(),
    "dtypes": {k: v.double().flatten().tolist() for k, v in dtypes.items() if k != "i64"},
    "torch_version": torch.__version__,
}
with open(os.path.join(HERE, "torch_safetensors_reference.json"), "w") as f:
    json.dump(reference, f, indent=1)
    f.write("\n")
