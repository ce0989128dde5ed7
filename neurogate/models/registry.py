"""The model registry (timm-style): one named configuration per model, built by :func:`create`.

A registered name maps to a builder (a :class:`~neurogate.models.base.SpikingModel` subclass or
a function) and that name's default options. Every builder takes ``num_classes`` and
``in_shape`` (one frame's shape: ``(C, H, W)`` for event frames, ``(C,)`` for audio channels)
followed by keyword options, so any model can be built for any dataset.

Example:
    >>> import neurogate as ng
    >>> ng.models.list()
    ['lif-convnet', 'lif-convnet-small', 'lif-mlp']
    >>> net = ng.models.create("lif-convnet", num_classes=10, in_shape=(2, 34, 34), hidden=64)
    >>> net.config["hidden"]
    64
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..errors import ConfigError

__all__ = [
    "ModelSpec",
    "check_options",
    "closest",
    "create",
    "get_spec",
    "list_models",
    "register_model",
]

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its name, builder, default options and one-line description."""

    name: str
    builder: Builder
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def options(self) -> list[str]:
        """Every option :func:`create` accepts for this model."""
        params = inspect.signature(self.builder).parameters
        return [p for p in params if params[p].kind is not inspect.Parameter.VAR_KEYWORD]


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, *, description: str = "", overwrite: bool = False, **defaults: Any):
    """Decorator: register the decorated builder as ``name`` with default options ``defaults``.

    Stacking the decorator registers several named configurations of one class.

    Example:
        >>> @register_model("my-net", hidden=128)
        ... class MyNet(SpikingModel):
        ...     def __init__(self, num_classes=10, in_shape=(2, 34, 34), *, hidden=64): ...
    """

    def add(builder: Builder) -> Builder:
        if name in _REGISTRY and not overwrite:
            raise ConfigError(f"model {name!r} is already registered; pass overwrite=True")
        doc = description or (inspect.getdoc(builder) or "").split("\n")[0]
        spec = ModelSpec(name, builder, dict(defaults), doc)
        check_options(spec, defaults)
        _REGISTRY[name] = spec
        return builder

    return add


def list_models(pattern: str | None = None) -> list[str]:
    """The registered model names, sorted; ``pattern`` keeps those containing it."""
    return sorted(n for n in _REGISTRY if pattern is None or pattern in n)


def get_spec(name: str) -> ModelSpec:
    """The registration of ``name``; an unknown name raises :class:`ConfigError` with hints."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    raise ConfigError(
        f"unknown model {name!r}.{closest(name, list(_REGISTRY))} "
        f"Valid names: {', '.join(list_models())}"
    )


def create(name: str, num_classes: int = 10, in_shape: tuple[int, ...] = (2, 34, 34),
           **overrides: Any) -> nn.Module:
    """Build the registered model ``name`` with its defaults updated by ``overrides``.

    The built model's ``config`` attribute holds ``name``, ``num_classes``, ``in_shape`` and
    every option, enough for :func:`create` to rebuild it (checkpoints store it).
    An unknown option raises :class:`ConfigError` naming the nearest valid one.
    """
    spec = get_spec(name)
    check_options(spec, overrides)
    options = {**spec.defaults, **overrides}
    model = spec.builder(num_classes=int(num_classes), in_shape=tuple(in_shape), **options)
    resolved = _resolved_options(spec.builder, options)
    model.config = {"name": name, "num_classes": int(num_classes),
                    "in_shape": [int(s) for s in in_shape], **resolved}
    return model


def closest(word: str, choices: list[str]) -> str:
    """`` Did you mean 'x'?`` for the closest of ``choices`` (difflib), or ``""``."""
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.4)
    return f" Did you mean {match[0]!r}?" if match else ""


def check_options(spec: ModelSpec, options: dict[str, Any]) -> None:
    valid = [o for o in spec.options() if o not in ("num_classes", "in_shape")]
    for key in options:
        if key not in valid:
            raise ConfigError(
                f"model {spec.name!r} has no option {key!r}.{closest(key, valid)} "
                f"Valid options: {', '.join(valid)}"
            )


def _resolved_options(builder: Builder, options: dict[str, Any]) -> dict[str, Any]:
    """Every keyword option of ``builder`` with its value (given or default), as primitives."""
    out = {}
    for pname, p in inspect.signature(builder).parameters.items():
        if pname in ("num_classes", "in_shape") or p.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        value = options.get(pname, p.default)
        out[pname] = list(value) if isinstance(value, tuple) else value
    return out
