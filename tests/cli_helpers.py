"""What the command-line tests share: the one-line error check and a tiny one-epoch training run."""

from __future__ import annotations

__all__ = ["TRAIN_ONE_EPOCH", "error_line"]

# ``neurogate train`` arguments for a lif-mlp trained one epoch on 256 samples (seconds on a CPU).
TRAIN_ONE_EPOCH = ["train", "--model", "lif-mlp", "--model-opt", "hidden=[48]", "--time-steps", "4",
                   "--epochs", "1", "--batch-size", "32", "--lr", "0.01", "--train-samples", "256",
                   "--test-samples", "64", "--threads", "1", "--no-progress", "--no-plots"]


def error_line(capsys) -> str:
    """The one line a failed command wrote to stderr (no traceback, nothing else)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]
