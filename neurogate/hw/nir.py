r"""NIR interchange: ``to_nir(model) -> nir.NIRGraph`` and ``from_nir(graph | path) -> nn.Module``.

NIR (the Neuromorphic Intermediate Representation) describes a network as continuous-time nodes.
neurogate runs in discrete steps, so both directions convert through :mod:`neurogate.hw.units`
(the only place where :math:`\beta \leftrightarrow \tau, R` happens) and record what NIR cannot say
in ``graph.metadata``: ``dt`` (seconds per step), ``integration``, ``reset``, ``decay_input``,
``threshold`` (the comparison) and ``readout``; each LIF node also carries its own ``reset`` and
``decay_input`` in ``node.metadata``.

The equations
-------------
neurogate LIF (per step, :mod:`neurogate.functional.lif`):

.. math::

    h_t = \beta v_{t-1} + c\,x_t,\quad c = 1-\beta \text{ (decay\_input) or } 1,\quad
    S_t = H(h_t - \vartheta),\ H(0) = 1,\quad v_t = h_t - S_t\vartheta \mid h_t(1-S_t) \mid h_t

NIR LIF: :math:`\tau \dot v = (v_\mathrm{leak} - v) + R I`, spike when :math:`v > v_\mathrm{th}`,
then :math:`v \leftarrow v_\mathrm{reset}`. neurogate writes :math:`v_\mathrm{leak} = v_\mathrm{reset}
= 0`, :math:`v_\mathrm{th} = \vartheta`, :math:`R = c/(1-\beta)` and :math:`\tau = -\Delta t/\ln\beta`
(``integration="exact"``, default) or :math:`\tau = \Delta t/(1-\beta)` (``"euler"``).

Conventions matched (and where they differ)
-------------------------------------------
==================  ===================================  ====================================  ==============================
item                neurogate                            snnTorch 1.0 (export/import_nir)      Norse 1.1 (to_nir/from_nir)
==================  ===================================  ====================================  ==============================
time step           ``dt`` argument, in metadata         fixed ``dt = 1e-4`` in both ways      ``dt`` argument (default 1e-3)
integrator          exact (default) or Euler             Euler: ``beta = 1 - dt/tau``          Euler: ``v += dt/tau (i - v)``
input gain          ``R = c / (1 - beta)``               ``r = tau/dt`` (gain 1); imports      ignores ``r`` (gain ``dt/tau``):
                                                         ``r dt/tau != 1`` by dividing v_th    matches ``decay_input=True``
threshold           ``h >= v_th`` (H(0) = 1)             ``mem > v_th``                         ``v > v_th``
reset               subtract / zero / none (metadata)    always zero on import (exports any     always to ``v_reset`` (0)
                                                         mode as plain LIF)
weights             (out, in), as ``nn.Linear``          (out, in)                             (out, in)
neuron parameters   float64 arrays of the layer's shape  0-d arrays for scalar beta (breaks     arrays
                                                         NIR type inference): use per-neuron
readout             ``mean``: none (metadata);           no LI import                          no LI import
                    ``leaky``: LI node
==================  ===================================  ====================================  ==============================

So a neurogate network reproduces its spikes exactly in snnTorch when exported with
``integration="euler", dt=1e-4`` and ``reset="zero"`` neurons, and in Norse with ``integration=
"euler"``, ``reset="zero"`` and ``decay_input=True`` (r = 1); exact threshold hits (``h == v_th``)
are the one place they can disagree (>= against >). snnTorch's ``reset_delay=True`` default gives
the same spikes as an immediate zero reset (the reset lands before the next decay), but not for
subtract reset. ``reset="subtract"`` round-trips through neurogate (node metadata) but every other
NIR reader treats the node as reset-to-zero.

Known defects of the readers (snnTorch 1.0, Norse 1.1), worked around or refused, not copied:

* snnTorch imports a gain ``r dt / tau != 1`` by dividing ``v_th`` by ``np.unique(gain)[0]``, one
  value for the whole layer: ``decay_input=True`` with per-neuron decays is wrong there.
* snnTorch exports a scalar ``beta``/``threshold`` as 0-d arrays, which NIR 1.0's type inference
  rejects; give ``snn.Leaky`` per-neuron tensors. Its importer applies NIR ``Flatten``'s sample
  dims to batched tensors (``start_dim=0`` flattens the batch).
* Norse's ``to_nir`` writes ``tau = dt / tau_mem_inv`` (``dt`` times too small; Norse's own
  ``from_nir`` then reads ``1 / tau``), and writes the sample batch into the Input shape
  (``(1, N)``; :func:`from_nir` drops that 1). Norse reads neither ``r`` nor ``LI``.

Export rules: layers are walked in forward order (:mod:`neurogate.hw.nir_export` says why);
BatchNorm folds into the preceding Affine/Conv with its running statistics (the graph is
``model.eval()``); Dropout and Identity vanish; ``nn.MaxPool2d`` has no NIR node and is refused;
``Readout("mean")`` adds no node (the graph outputs the per-step currents, and ``from_nir`` puts
the mean back when it reads neurogate's metadata). Extension points: :func:`register_exporter`
(module type -> nodes) and :func:`register_importer` (node type -> modules), e.g. for a synaptic
delay layer exported as ``Delay`` + ``Affine``.

Example:
    >>> import nir, torch, neurogate as ng, neurogate.hw
    >>> net = ng.models.create("lif-mlp", num_classes=10, in_shape=(2, 34, 34))
    >>> graph = ng.hw.to_nir(net, dt=1e-3)
    >>> nir.write("lif-mlp.nir", graph)
    >>> same = ng.hw.from_nir("lif-mlp.nir")
    >>> x = torch.rand(20, 4, 2, 34, 34)
    >>> torch.equal(net.eval()(x), same(x))
    True
"""

from __future__ import annotations

from . import units
from .nir_export import (
    EXPORTERS,
    SEQUENTIAL_CONTAINERS,
    register_exporter,
    supported_layers,
    to_nir,
)
from .nir_import import (
    IMPORTERS,
    Delay,
    LeakyIntegrator,
    NIRNetwork,
    Scale,
    SumPool2d,
    from_nir,
    register_importer,
)

__all__ = [
    "EXPORTERS",
    "IMPORTERS",
    "SEQUENTIAL_CONTAINERS",
    "Delay",
    "LeakyIntegrator",
    "NIRNetwork",
    "Scale",
    "SumPool2d",
    "from_nir",
    "register_exporter",
    "register_importer",
    "supported_layers",
    "to_nir",
    "units",
]
