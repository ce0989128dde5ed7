"""One exception hierarchy for neurogate: every error says what is wrong and how to fix it.

All neurogate errors derive from :class:`NeurogateError`. Each concrete class also derives from
the matching builtin (``ValueError``, ``TypeError``, ...) so code that already catches builtins
keeps working.

Example:
    >>> import neurogate as ng
    >>> try:
    ...     ng.functional.lif_scan(torch.zeros(3), decay=0.9)
    ... except ng.errors.ShapeError as err:
    ...     print(err)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "NeurogateError",
    "ShapeError",
    "DTypeError",
    "ValueRangeError",
    "ConfigError",
    "DatasetError",
    "CheckpointError",
    "HardwareConstraintError",
]


class NeurogateError(Exception):
    """Root of every error raised by neurogate."""


class ShapeError(NeurogateError, ValueError):
    """A tensor has the wrong rank or a shape that does not broadcast."""


class DTypeError(NeurogateError, TypeError):
    """A tensor has a dtype the operation cannot use (integer, complex, ...)."""


class ValueRangeError(NeurogateError, ValueError):
    """A value is outside its valid range (NaN/inf input, decay outside [0, 1], ...)."""


class ConfigError(NeurogateError, ValueError):
    """An option, name or configuration entry is unknown or inconsistent."""


class DatasetError(NeurogateError, ValueError):
    """A dataset file or sample is missing or malformed; the message names the file."""


class CheckpointError(NeurogateError, ValueError):
    """A checkpoint does not match the model it is loaded into."""


class HardwareConstraintError(NeurogateError, ValueError):
    """A network cannot be mapped onto a hardware target.

    Carries the ``layer``, the ``limit`` that was exceeded, the offending ``value`` and the
    ``fix`` (the option that would make it fit), and puts all four in its message.
    """

    def __init__(self, layer: str, limit: str, value: Any, fix: str) -> None:
        self.layer, self.limit, self.value, self.fix = layer, limit, value, fix
        super().__init__(f"{layer}: {limit} exceeded (got {value}); {fix}")
