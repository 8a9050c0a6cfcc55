"""Writes tests/data/derive_residual_torch.safetensors and derive_residual_reference.json: a
residual network with two branches (and a ModuleList, a BatchNorm, a bare Parameter) in
PyTorch, whose state_dict tests/derive.rs loads into the same model written with
#[derive(Module)], with no renaming, and whose eval-mode output it must reproduce.

Run: python3 tests/data/make_derive_reference.py (PyTorch 2.15 and safetensors)."""
import json
import os

import torch
from safetensors.torch import save_file
from torch import nn

torch.manual_seed(0)


class RightBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)

    def forward(self, h):
        return self.norm(self.lin(h))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(3, 4)
        self.left = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 4))
        self.right = RightBranch()
        self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
        self.bn = nn.BatchNorm1d(4)
        self.scale = nn.Parameter(torch.tensor(1.5))
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        h = self.stem(x)
        h = h + self.left(h) + self.right(h)
        for block in self.blocks:
            h = torch.tanh(block(h))
        return self.head(self.bn(h)) * self.scale


model = Residual().double()
# Running statistics that are not the defaults, so that loading them matters.
model.train()
with torch.no_grad():
    for _ in range(3):
        model(torch.randn(16, 3, dtype=torch.float64))
model.eval()
x = torch.randn(5, 3, dtype=torch.float64)
with torch.no_grad():
    y = model(x)

here = os.path.dirname(os.path.abspath(__file__))
state = {k: v.contiguous() for k, v in model.state_dict().items()}
save_file(state, os.path.join(here, "derive_residual_torch.safetensors"))
with open(os.path.join(here, "derive_residual_reference.json"), "w") as f:
    json.dump(
        {
            "names": list(state.keys()),
            "parameters": [name for name, _ in model.named_parameters()],
            "input": x.flatten().tolist(),
            "output": y.flatten().tolist(),
        },
        f,
        indent=1,
    )
print(list(state.keys()))
