"""Test-session settings (a headless matplotlib, a fixed hypothesis profile) and shared fixtures:
the event-digits dataset and a tiny trained run."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
pytest.register_assert_rewrite("cli_helpers")

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
