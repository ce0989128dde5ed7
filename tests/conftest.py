"""Test-session settings (a headless matplotlib, a fixed hypothesis profile) and shared fixtures:
the event-digits dataset, a tiny trained run, the weights and input of a small SpiNNaker network."""

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
pytest.register_assert_rewrite("cli_helpers", "spinnaker_helpers")

from cli_helpers import TRAIN_ONE_EPOCH  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", deadline=None, print_blob=True)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory) -> Path:
    """event-digits generated once per session (the offline default dataset)."""
    from neurogate.data.event_digits import generate_event_digits

    root = tmp_path_factory.mktemp("event-digits-root")
    generate_event_digits(root)
    return root


@pytest.fixture(scope="session")
def trained_run(digits_root, tmp_path_factory) -> Path:
    """A lif-mlp trained for one epoch on 256 samples through ``neurogate train`` (its run directory)."""
    from neurogate.cli import main

    out = tmp_path_factory.mktemp("trained-run") / "mlp"
    assert main([*TRAIN_ONE_EPOCH, "--root", str(digits_root), "--out", str(out)]) == 0
    return out


@pytest.fixture
def spinnaker_net() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(w1 [30, 20], w2 [5, 30], x [T=60, B=4, 20])`` of the SpiNNaker tests' two-layer network."""
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(0, 0.4, (30, 20)), rng.normal(0, 0.4, (5, 30))
    x = (rng.random((60, 4, 20)) < 0.3).astype(np.uint8)
    return w1, w2, x
