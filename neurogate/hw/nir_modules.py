"""Time-major modules for the NIR nodes that have no neurogate layer of their own.

:func:`~neurogate.hw.nir_import.from_nir` builds them from ``SumPool2d``, ``Scale``, ``LI`` and
``Delay`` nodes, and :func:`~neurogate.hw.nir_export.to_nir` writes them back as those nodes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Delay", "LeakyIntegrator", "Scale", "SumPool2d"]


class SumPool2d(nn.Module):
    """Sum pooling (NIR ``SumPool2d``): average pooling without the division, exact in float."""

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, divisor_override=1)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Scale(nn.Module):
    """Elementwise gain (NIR ``Scale``): ``y = x * scale``, ``scale`` over one sample's shape."""

    def __init__(self, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class LeakyIntegrator(nn.Module):
    r"""Non-spiking leaky integrator (NIR ``LI``): :math:`u_t = \beta u_{t-1} + c\, x_t`,
    :math:`u_{-1} = 0`; ``[T, B, ...]`` -> the membrane trajectory ``[T, B, ...]``."""

    def __init__(self, decay: torch.Tensor, gain: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("decay", torch.as_tensor(decay, dtype=torch.float32))
        self.register_buffer("gain", torch.as_tensor(gain, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, out = torch.zeros_like(x[0]), []
        for x_t in x.unbind(0):
            u = self.decay * u + self.gain * x_t
            out.append(u)
        return torch.stack(out) if out else x.clone()


class Delay(nn.Module):
    """Per-element integer delay (NIR ``Delay``): ``y[t, b, i] = x[t - d_i, b, i]``, zero before."""

    def __init__(self, steps: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("steps", torch.as_tensor(steps, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[0]
        t = torch.arange(T, device=x.device).view(T, *([1] * (x.dim() - 1)))
        src = t - self.steps.to(x.device)
        idx = src.clamp(min=0).expand(T, *x.shape[1:])
        return torch.gather(x, 0, idx) * (src >= 0)
