"""``python -m neurogate.demo``: train a two-layer LIF network on a synthetic spike-pattern task.

Each of ``classes`` classes is a frozen random spike pattern ``[T, inputs]`` (Poisson, rate
``rate``); a sample is its class pattern with every spike deleted with probability ``noise`` and
as many spurious spikes added. The network is Linear -> LIF -> Linear -> LIF; the class is the
output neuron that fires most, trained with cross-entropy on output spike counts through the
surrogate gradient. It runs in seconds on a laptop CPU and prints the held-out accuracy.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from .layers import LIF


def make_patterns(classes: int, samples: int, T: int, inputs: int, rate: float, noise: float,
                  seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(spikes [T, samples, inputs], labels [samples])`` for the spike-pattern task."""
    g = torch.Generator().manual_seed(seed)
    templates = (torch.rand(classes, T, inputs, generator=g) < rate).float()
    labels = torch.arange(samples) % classes
    x = templates[labels]
    keep = torch.rand(x.shape, generator=g) >= noise
    spurious = torch.rand(x.shape, generator=g) < noise * rate
    x = ((x * keep) + spurious).clamp(max=1)
    return x.transpose(0, 1).contiguous(), labels


class TwoLayerSNN(nn.Module):
    """Linear -> LIF -> Linear -> LIF over ``[T, B, inputs]``; returns output spike counts."""

    def __init__(self, inputs: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(inputs, hidden), LIF(tau=5.0)
        self.fc2, self.lif2 = nn.Linear(hidden, classes), LIF(tau=5.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif2(self.fc2(self.lif1(self.fc1(x)))).sum(0)


def run(classes: int = 10, T: int = 40, inputs: int = 100, hidden: int = 128, epochs: int = 3,
        batch: int = 64, noise: float = 0.3, seed: int = 0) -> float:
    """Train and return the test accuracy (printing progress)."""
    torch.manual_seed(seed)
    x_train, y_train = make_patterns(classes, 2000, T, inputs, 0.05, noise, seed)
    x_test, y_test = make_patterns(classes, 2500, T, inputs, 0.05, noise, seed)
    x_test, y_test = x_test[:, 2000:], y_test[2000:]  # fresh noise draws of the same templates
    model = TwoLayerSNN(inputs, hidden, classes)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        perm = torch.randperm(x_train.shape[1])
        for i in range(0, len(perm), batch):
            idx = perm[i:i + batch]
            loss = nn.functional.cross_entropy(model(x_train[:, idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = (model(x_test).argmax(1) == y_test).float().mean().item()
        print(f"epoch {epoch + 1}/{epochs}  loss {loss.item():.3f}  test accuracy {acc:.1%}")
    print(f"trained in {time.perf_counter() - t0:.1f} s; final test accuracy {acc:.1%} "
          f"(chance {1 / classes:.0%})")
    return acc


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--noise", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    run(epochs=a.epochs, noise=a.noise, seed=a.seed)


if __name__ == "__main__":
    main()
