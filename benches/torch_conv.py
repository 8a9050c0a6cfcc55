"""PyTorch figures for the `conv` group of benches/nn.rs, same shapes, 1 thread.

usage: python3 benches/torch_conv.py  -> ms per CNN Adam step, ms per conv2d forward + backward
"""
import statistics
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(0)


def med(fn, reps, warm=5):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


nn = torch.nn
model = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(16 * 7 * 7, 10),
)
opt = torch.optim.Adam(model.parameters())
x = torch.randn(32, 1, 28, 28)
y = torch.randint(0, 10, (32,))


def step():
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()


conv1 = nn.Conv2d(1, 8, 3, padding=1)


def conv():
    xv = x.clone().requires_grad_(True)
    conv1.zero_grad()
    conv1(xv).sum().backward()


print(f"cnn step {med(step, 100) * 1e3:.3f} ms")
print(f"conv2d forward + backward {med(conv, 200) * 1e3:.3f} ms")
