r"""Discrete-time neurogate parameters <-> continuous-time NIR parameters: the one place they convert.

neurogate's LIF (:mod:`neurogate.functional.lif`) is a per-step map,

.. math::

    h_t = \beta\, v_{t-1} + c\, x_t, \qquad c = 1 - \beta \text{ if decay\_input else } 1 ,

while a NIR ``LIF``/``LI`` node is the ODE :math:`\tau \dot v = (v_\mathrm{leak} - v) + R\, I(t)`
with no time step in it. A consumer discretises the ODE with its own step ``dt`` and its own
integrator, holding :math:`I` constant over a step:

* ``"exact"`` (exact exponential integration; neurogate's default, SpiNNaker, Rockpool-style):
  :math:`v_t = \beta v_{t-1} + (1-\beta) R I_t`, :math:`\beta = e^{-\Delta t/\tau}`, so
  :math:`\tau = -\Delta t / \ln\beta`.
* ``"euler"`` (forward Euler; what snnTorch 1.0 and Norse 1.1 use when they import NIR):
  :math:`v_t = v_{t-1} + \frac{\Delta t}{\tau}(R I_t - v_{t-1})`, so :math:`\beta = 1 - \Delta t/\tau`,
  :math:`\tau = \Delta t / (1-\beta)`, and the input gain is :math:`R \Delta t / \tau = R(1-\beta)`.

In both conventions the per-step input gain is :math:`c = R (1 - \beta)`, hence

.. math::

    R = \frac{c}{1-\beta} = \begin{cases} 1 & \text{decay\_input} \\
                                        1/(1-\beta) & \text{otherwise} \end{cases}

and only :math:`\tau(\beta)` depends on the integrator. A neuron without leak (:math:`\beta = 1`)
is a NIR ``IF`` node, :math:`\dot v = R I`, whose per-step gain is :math:`c = R\,\Delta t`.
``v_leak = 0`` and ``v_reset = 0`` always (neurogate's resting and reset potential).

Every conversion runs in float64: a float32 :math:`\beta` goes to :math:`\tau` and back bit-exactly
(:math:`\tau` rounded to float32 would change about one :math:`\beta` in six by one ulp), so
neurogate writes neuron parameters as float64 arrays.

Example:
    >>> decay_to_tau(0.9, dt=1e-3)                  # exact: -1e-3 / ln 0.9
    array(0.00949122)
    >>> decay_to_tau(0.9, dt=1e-3, integration="euler")
    array(0.01)
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, ValueRangeError

__all__ = [
    "INTEGRATIONS",
    "check_integration",
    "decay_to_tau",
    "gain_to_r",
    "if_gain_to_r",
    "if_r_to_gain",
    "r_to_gain",
    "tau_to_decay",
]

INTEGRATIONS = ("exact", "euler")


def check_integration(integration: str) -> str:
    """``integration`` if it is one of :data:`INTEGRATIONS`, else :class:`ConfigError`."""
    if integration not in INTEGRATIONS:
        raise ConfigError(
            f"integration must be one of {INTEGRATIONS}, got {integration!r} "
            "('exact': beta = exp(-dt/tau); 'euler': beta = 1 - dt/tau, as snnTorch and Norse)"
        )
    return integration


def _check_dt(dt: float) -> float:
    dt = float(dt)
    if not (np.isfinite(dt) and dt > 0):
        raise ValueRangeError(f"dt must be a finite time step > 0 (seconds); got {dt}")
    return dt


def decay_to_tau(decay, dt: float, integration: str = "exact") -> np.ndarray:
    r""":math:`\tau` (seconds, float64) of a per-step decay :math:`\beta \in [0, 1)`."""
    beta = np.asarray(decay, dtype=np.float64)
    dt = _check_dt(dt)
    if np.any((beta < 0) | (beta >= 1)) or not np.all(np.isfinite(beta)):
        raise ValueRangeError(f"decay must be in [0, 1) for a leaky neuron; got {beta.min()}..{beta.max()}")
    if check_integration(integration) == "euler":
        return dt / (1.0 - beta)
    with np.errstate(divide="ignore"):
        return -dt / np.log(beta)  # beta = 0 -> tau = 0


def tau_to_decay(tau, dt: float, integration: str = "exact") -> np.ndarray:
    r"""The per-step decay :math:`\beta` (float64) of a time constant :math:`\tau` at step ``dt``."""
    tau = np.asarray(tau, dtype=np.float64)
    dt = _check_dt(dt)
    if np.any(tau < 0) or np.any(np.isnan(tau)):
        raise ValueRangeError(f"tau must be >= 0; got {tau.min()}")
    with np.errstate(divide="ignore"):
        if check_integration(integration) == "euler":
            beta = 1.0 - dt / tau
            if np.any(beta < 0):
                raise ValueRangeError(
                    f"forward Euler needs tau >= dt (beta = 1 - dt/tau >= 0); got tau min "
                    f"{tau.min()} with dt {dt}; use a smaller dt or integration='exact'"
                )
            return beta
        return np.exp(-dt / tau)


def gain_to_r(decay, gain) -> np.ndarray:
    r"""NIR :math:`R = c / (1 - \beta)` for the per-step input gain :math:`c` (both integrators)."""
    beta = np.asarray(decay, dtype=np.float64)
    return np.asarray(gain, dtype=np.float64) / (1.0 - beta)


def r_to_gain(r, decay) -> np.ndarray:
    r"""The per-step input gain :math:`c = R (1 - \beta)` of a NIR ``LIF``/``LI`` node."""
    return np.asarray(r, dtype=np.float64) * (1.0 - np.asarray(decay, dtype=np.float64))


def if_gain_to_r(gain, dt: float) -> np.ndarray:
    r"""NIR ``IF`` :math:`R = c / \Delta t` (no leak: :math:`v_t = v_{t-1} + R \Delta t\, I_t`)."""
    return np.asarray(gain, dtype=np.float64) / _check_dt(dt)


def if_r_to_gain(r, dt: float) -> np.ndarray:
    r"""The per-step input gain :math:`c = R \Delta t` of a NIR ``IF`` node."""
    return np.asarray(r, dtype=np.float64) * _check_dt(dt)
