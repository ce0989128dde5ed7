r"""Resistive-memory devices and crossbar arrays: the physical model a crossbar descriptor runs on.

Conductances are in microsiemens (uS), voltages in volts, currents in microamperes (uA), times in
seconds. A weight :math:`w` of an output column with scale :math:`s = \max_i |W_{ij}|` is written
as a differential pair

.. math::

    G^+ = g_{min} + \frac{\max(w, 0)}{s} (g_{max} - g_{min}), \qquad
    G^- = g_{min} + \frac{\max(-w, 0)}{s} (g_{max} - g_{min}),

so :math:`w = s\,(G^+ - G^-) / (g_{max} - g_{min})`. With ``levels = N`` the fraction
:math:`|w|/s` is rounded to :math:`k/(N-1)`, :math:`k \in \{0..N-1\}`.

Non-idealities (all off for :func:`ideal`):

* programming noise, once per programming (seed): :math:`G_p = G + \sigma_p(G)\,\xi`, with
  :math:`\sigma_p(G) = g_{max}(c_0 + c_1 G/g_{max} + c_2 (G/g_{max})^2)` (``prog_coeffs``) and
  :math:`G_p \ge 0` (a conductance cannot be negative, as in aihwkit);
* drift: :math:`G(t) = G_p (t / t_0)^{-\nu}`, :math:`\nu \sim \mathcal N(\nu_{mean}, \nu_{std})`
  per device (clipped at 0), :math:`t_0` = ``drift_t0`` (20 s);
* stuck-at faults: a fraction ``stuck_lrs`` of devices reads :math:`g_{max}` (low-resistance
  state), ``stuck_hrs`` reads :math:`g_{min}`, whatever was programmed;
* read noise, at every read: :math:`G_r = G (1 + \sigma_r \xi)` (``read_noise``, relative).

Presets. ``rram``: g 1..25 uS, 64 levels, programming sigma 1 % of g_max, read noise 1 %,
nu 0.05 +- 0.01, stuck 0.1 % each way (typical HfO2 values, illustrative). ``pcm``: g 0.1..25 uS,
unlimited levels, programming sigma polynomial with coefficients (0.26348, 1.9650, -1.1731) uS /
25 uS (typical, after aihwkit's ``PCMLikeNoiseModel``), read noise 2 %, nu 0.06 +- 0.02 (device
spread), no stuck devices.

Example:
    >>> from neurogate.hw.crossbar import RRAM, Array
    >>> RRAM.quantise(np.array([0.0, 0.5, 1.0]))   # fractions of the range -> uS, 64 levels
    array([ 1.        , 13.19047619, 25.        ])
    >>> Array(rows=128, cols=128, adc_bits=8)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from ...errors import ConfigError, ValueRangeError

__all__ = ["PCM", "PRESETS", "RRAM", "Array", "Device", "device_from_dict", "ideal"]


@dataclass(frozen=True)
class Device:
    """One resistive-memory cell type (see the module docstring for the equations and units)."""

    name: str = "custom"
    g_min: float = 1.0
    g_max: float = 25.0
    levels: int | None = None
    prog_coeffs: tuple[float, float, float] = (0.0, 0.0, 0.0)
    read_noise: float = 0.0
    drift_nu: float = 0.0
    drift_nu_std: float = 0.0
    drift_t0: float = 20.0
    stuck_lrs: float = 0.0
    stuck_hrs: float = 0.0
    c2c_spread: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "prog_coeffs", tuple(float(c) for c in self.prog_coeffs))
        if not (np.isfinite(self.g_min) and self.g_min >= 0):
            raise ValueRangeError(f"Device {self.name}: g_min must be >= 0 uS, got {self.g_min}")
        if not (np.isfinite(self.g_max) and self.g_max > self.g_min):
            raise ValueRangeError(f"Device {self.name}: g_max ({self.g_max} uS) must be > g_min ({self.g_min} uS)")
        if self.levels is not None and (int(self.levels) != self.levels or self.levels < 2):
            raise ValueRangeError(f"Device {self.name}: levels must be an integer >= 2 or None "
                                  f"(unlimited), got {self.levels}")
        if len(self.prog_coeffs) != 3:
            raise ConfigError(f"Device {self.name}: prog_coeffs needs 3 coefficients (c0, c1, c2)")
        for f in ("read_noise", "drift_nu", "drift_nu_std", "c2c_spread"):
            if not getattr(self, f) >= 0:
                raise ValueRangeError(f"Device {self.name}: {f} must be >= 0, got {getattr(self, f)}")
        if not self.drift_t0 > 0:
            raise ValueRangeError(f"Device {self.name}: drift_t0 must be > 0 s, got {self.drift_t0}")
        for f in ("stuck_lrs", "stuck_hrs"):
            if not 0 <= getattr(self, f) <= 1:
                raise ValueRangeError(f"Device {self.name}: {f} must be a fraction in [0, 1], got {getattr(self, f)}")
        if self.stuck_lrs + self.stuck_hrs > 1:
            raise ValueRangeError(f"Device {self.name}: stuck_lrs + stuck_hrs must be <= 1")

    @property
    def g_range(self) -> float:
        return self.g_max - self.g_min

    @property
    def noiseless(self) -> bool:
        return (not any(self.prog_coeffs) and self.read_noise == 0 and self.drift_nu == 0
                and self.drift_nu_std == 0 and self.stuck_lrs == 0 and self.stuck_hrs == 0)

    def with_noise(self, scale: float) -> Device:
        """This device with its programming-noise coefficients and read noise multiplied by ``scale``."""
        if not (np.isfinite(scale) and scale >= 0):
            raise ValueRangeError(f"noise scale must be a finite number >= 0, got {scale}")
        if scale == 1:
            return self
        return replace(self, prog_coeffs=tuple(scale * c for c in self.prog_coeffs), read_noise=scale * self.read_noise)

    def quantise(self, frac: np.ndarray) -> np.ndarray:
        """Conductances (uS) for fractions ``|w|/s`` in [0, 1], rounded to the device's levels."""
        frac = np.asarray(frac, np.float64)
        if self.levels is not None:
            frac = np.rint(frac * (self.levels - 1)) / (self.levels - 1)
        return self.g_min + frac * self.g_range

    def prog_sigma(self, g: np.ndarray) -> np.ndarray:
        r""":math:`\sigma_p(G) = g_{max}(c_0 + c_1 G/g_{max} + c_2 (G/g_{max})^2)` in uS (>= 0)."""
        r = np.asarray(g, np.float64) / self.g_max
        c0, c1, c2 = self.prog_coeffs
        return np.maximum(self.g_max * (c0 + c1 * r + c2 * r * r), 0.0)

    def program(self, g: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Programmed conductances: target + programming noise (>= 0), then stuck-at faults."""
        g = np.asarray(g, np.float64)
        if any(self.prog_coeffs):
            g = np.maximum(g + self.prog_sigma(g) * rng.standard_normal(g.shape), 0.0)
        if self.stuck_lrs or self.stuck_hrs:
            u = rng.random(g.shape)
            g = np.where(u < self.stuck_lrs, self.g_max, g)
            g = np.where((u >= self.stuck_lrs) & (u < self.stuck_lrs + self.stuck_hrs), self.g_min, g)
        return g

    def drift_factor(self, shape: tuple[int, ...], t_read: float | None, rng: np.random.Generator) -> np.ndarray:
        r"""Per-device :math:`(t/t_0)^{-\nu}`, :math:`\nu \sim \mathcal N(\nu_{mean}, \nu_{std})^+`
        (ones for ``t_read=None``)."""
        if t_read is None:
            return np.ones(shape)
        if not (np.isfinite(t_read) and t_read >= self.drift_t0):
            raise ValueRangeError(f"t_read must be >= the drift reference time t0 = {self.drift_t0} s "
                                  f"(seconds after programming), got {t_read}")
        nu = np.full(shape, self.drift_nu)
        if self.drift_nu_std:
            nu = np.maximum(nu + self.drift_nu_std * rng.standard_normal(shape), 0.0)
        return (t_read / self.drift_t0) ** (-nu)

    def sample_conductances(self, shape: tuple[int, ...] | int, seed: int = 0, *,
                            p_lrs: float = 0.5, spread: float | None = None) -> np.ndarray:
        r"""Random conductances (uS) from the device's switching statistics, for random weights.

        Each cell is SET to the low-resistance state with probability ``p_lrs`` (else RESET to the
        high-resistance state) and lands lognormally around that state's conductance, with
        cycle-to-cycle spread :math:`\sigma` = ``spread`` (default ``c2c_spread``):
        :math:`G = g_{state}\, e^{\sigma \xi}`, bounded to :math:`[g_{min}, g_{max}]` (the physical
        window; :math:`g_{state}` is :math:`g_{max}/\sqrt{e^{\sigma}}`-centred for LRS and
        :math:`\max(g_{min}, 0.01 g_{max})\sqrt{e^{\sigma}}` for HRS so both tails fit).
        """
        if not 0 <= p_lrs <= 1:
            raise ValueRangeError(f"p_lrs must be a probability in [0, 1], got {p_lrs}")
        sigma = self.c2c_spread if spread is None else float(spread)
        if sigma < 0:
            raise ValueRangeError(f"spread must be >= 0, got {sigma}")
        rng = np.random.default_rng(seed)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        lrs = rng.random(shape) < p_lrs
        g_lrs = self.g_max * np.exp(-sigma)
        g_hrs = max(self.g_min, 0.01 * self.g_max) * np.exp(sigma)
        centre = np.where(lrs, g_lrs, g_hrs)
        return np.clip(centre * np.exp(sigma * rng.standard_normal(shape)), self.g_min, self.g_max)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["prog_coeffs"] = list(self.prog_coeffs)
        return d


def ideal(g_min: float = 0.0, g_max: float = 25.0) -> Device:
    """A perfect device: unlimited levels, no noise, no drift, no faults."""
    return Device("ideal", g_min, g_max)


RRAM = Device("rram", 1.0, 25.0, levels=64, prog_coeffs=(0.01, 0.0, 0.0), read_noise=0.01,
              drift_nu=0.05, drift_nu_std=0.01, stuck_lrs=0.001, stuck_hrs=0.001, c2c_spread=0.2)
PCM = Device("pcm", 0.1, 25.0, levels=None, prog_coeffs=(0.26348 / 25, 1.9650 / 25, -1.1731 / 25),
             read_noise=0.02, drift_nu=0.06, drift_nu_std=0.02, c2c_spread=0.3)
PRESETS: dict[str, Device] = {"rram": RRAM, "pcm": PCM, "ideal": ideal()}


def device_from_dict(d: dict[str, Any] | str) -> Device:
    """A :class:`Device` from a preset name or its :meth:`Device.to_dict`."""
    if isinstance(d, str):
        if d not in PRESETS:
            raise ConfigError(f"unknown device preset {d!r}; choose one of {sorted(PRESETS)} or pass a Device")
        return PRESETS[d]
    try:
        return Device(**{**d, "prog_coeffs": tuple(d.get("prog_coeffs", (0, 0, 0)))})
    except TypeError as err:
        raise ConfigError(f"device description {d} has an unknown or missing field ({err})") from None


@dataclass(frozen=True)
class Array:
    r"""A crossbar tile and its periphery.

    ``rows`` x ``cols`` weights per tile (rows = inputs, cols = outputs). Signed weights are stored
    either as differential pairs (``differential=True``: two devices per weight,
    :math:`w = s (G^+ - G^-)/(g_{max} - g_{min})`) or as one device per weight plus one reference
    column per tile (``differential=False``: :math:`G = g_{ref} + (w/s)\,u`,
    :math:`w = s (G - G_{ref})/u`, the reference devices at the mid level :math:`g_{ref}`,
    :math:`u` = :meth:`unit`; the column currents minus the reference column's current give the
    signed product, and the reference column's own noise is shared by every column of the tile).
    Inputs pass a DAC of ``dac_bits`` (``None`` = ideal) mapping :math:`x \in [-x_{max}, x_{max}]`
    (``input_range``) to :math:`V = v_{read} x / x_{max}` volts, rounded to :math:`2^{b-1}-1` steps
    per sign; the column current :math:`I` (uA) passes an ADC of ``adc_bits`` over
    :math:`\pm I_{max}` (``adc_range`` uA; ``None`` = :math:`v_{read}\,\text{rows}\,u`, the largest
    signed current). Values outside either range saturate and are counted. ``wire_resistance``
    (ohm per cell-to-cell wire segment, ``None`` = ideal wires) adds IR drop
    (:mod:`neurogate.hw.crossbar.irdrop`, first order). Biases and neurons are digital
    (``digital_bias``, ``digital_neurons``).
    """

    rows: int = 256
    cols: int = 256
    differential: bool = True
    dac_bits: int | None = None
    input_range: float = 1.0
    v_read: float = 0.2
    adc_bits: int | None = None
    adc_range: float | None = None
    digital_bias: bool = True
    digital_neurons: bool = True
    wire_resistance: float | None = None

    def __post_init__(self) -> None:
        for f in ("rows", "cols"):
            v = getattr(self, f)
            if int(v) != v or v < 1:
                raise ValueRangeError(f"Array: {f} must be an integer >= 1, got {v}")
        for f in ("dac_bits", "adc_bits"):
            v = getattr(self, f)
            if v is not None and (int(v) != v or v < 2):
                raise ValueRangeError(f"Array: {f} must be an integer >= 2 (sign + magnitude) or None "
                                      f"(ideal converter), got {v}")
        for f in ("input_range", "v_read"):
            if not (np.isfinite(getattr(self, f)) and getattr(self, f) > 0):
                raise ValueRangeError(f"Array: {f} must be > 0, got {getattr(self, f)}")
        if self.adc_range is not None and not self.adc_range > 0:
            raise ValueRangeError(f"Array: adc_range must be > 0 uA or None, got {self.adc_range}")
        if self.wire_resistance is not None and not (np.isfinite(self.wire_resistance) and self.wire_resistance >= 0):
            raise ValueRangeError(f"Array: wire_resistance must be >= 0 ohm per segment or None, "
                                  f"got {self.wire_resistance}")
        if not (self.digital_bias and self.digital_neurons):
            raise ConfigError("Array: analog biases/neurons are not implemented; keep digital_bias and "
                              "digital_neurons True")

    @property
    def cells(self) -> int:
        return self.rows * self.cols

    def unit(self, device: Device) -> float:
        """Conductance (uS) of one full-scale weight ``|w| = s``: ``g_max - g_min`` for differential
        pairs; for a reference column, ``M`` level steps with ``M = (levels - 1) // 2`` either side
        of the reference level (half the range for unlimited levels)."""
        if self.differential:
            return device.g_range
        if device.levels is None:
            return device.g_range / 2
        return (device.levels - 1) // 2 * device.g_range / (device.levels - 1)

    def program(self, w: np.ndarray, device: Device) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r"""``(G+, G-, s)`` of a weight block ``w`` ``[rows, cols]``: target conductances (uS) on the
        device's levels and the per-column scales :math:`s_j = \max_i |w_{ij}|` (1 for an all-zero
        column). With a reference column, ``G+`` is the one device per weight and ``G-`` the
        reference column ``[rows, 1]``."""
        w = np.asarray(w, np.float64)
        scale = np.abs(w).max(axis=0) if w.size else np.ones(w.shape[1])
        scale = np.where(scale > 0, scale, 1.0)
        frac = w / scale
        if self.differential:
            return device.quantise(np.maximum(frac, 0.0)), device.quantise(np.maximum(-frac, 0.0)), scale
        u = self.unit(device)
        g_ref = device.g_min + u if device.levels is not None else device.g_min + device.g_range / 2
        if device.levels is not None:
            steps = (device.levels - 1) // 2
            frac = np.rint(frac * steps) / steps
        return g_ref + frac * u, np.full((w.shape[0], 1), g_ref), scale

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
