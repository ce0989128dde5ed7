"""Hardware interchange and targets: NIR (:mod:`neurogate.hw.nir`), SpiNNaker, resistive crossbars.

``to_nir`` / ``from_nir`` load on first use, so ``import neurogate.hw`` (and its hardware
subpackages) works without the ``nir`` package installed.

Example:
    >>> import neurogate as ng, neurogate.hw
    >>> graph = ng.hw.to_nir(ng.models.create("lif-mlp"), dt=1e-3)
    >>> net = ng.hw.from_nir(graph)
"""

import importlib

_NIR_NAMES = ("to_nir", "from_nir", "register_exporter", "register_importer", "supported_layers",
              "SumPool2d", "NIRNetwork")
_MODULES = ("nir", "units", "spinnaker", "crossbar", "report")
__all__ = ["NIRNetwork", "SumPool2d", "crossbar", "from_nir", "nir", "register_exporter",
           "register_importer", "report", "spinnaker", "supported_layers", "to_nir", "units"]


def __getattr__(name: str):
    if name in _NIR_NAMES:
        value = getattr(importlib.import_module(".nir", __name__), name)
        globals()[name] = value
        return value
    if name in _MODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'neurogate.hw' has no attribute {name!r}")
