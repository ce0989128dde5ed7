"""``torchrun --nproc_per_node=2 neurogate train`` follows the one-process run with the same
global batch (DDP over gloo on CPU, deterministic sharding of each global batch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import neurogate.train as nt
from neurogate.cli import build_parser, train_config_from_args

# lif-mlp has no BatchNorm: with BatchNorm each CPU process would normalise its own shard.
ARGS = ["--model", "lif-mlp", "--model-opt", "hidden=[32]", "--time-steps", "4",
        "--batch-size", "16", "--train-samples", "160", "--test-samples", "64", "--epochs", "2",
        "--threads", "1", "--no-progress", "--no-plots", "--checkpoint-every", "4"]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")
def test_two_processes_match_one_with_the_same_global_batch(digits_root, tmp_path):
    args = [*ARGS, "--root", str(digits_root)]
    one = nt.fit(config=train_config_from_args(
        build_parser().parse_args(["train", *args, "--out", str(tmp_path / "one")])))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "neurogate.cli", "train", *args, "--out", str(tmp_path / "two")]
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=150, check=False)
    log = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, log
    assert log.count("epoch 2/2:") == 1 and log.count("best test accuracy") == 1  # rank 0 only
    two = torch.load(tmp_path / "two" / "last.pt", weights_only=True)
    assert two["data"]["world_size"] == 2 and two["global_step"] == 2 * (160 // 16)
    for k, v in one.model.state_dict().items():
        torch.testing.assert_close(two["model"][k], v, rtol=1e-4, atol=1e-4, msg=k)
    # every rank evaluated a shard; the sums make the same test metrics as one process
    assert two["history"][-1]["test_acc"] == pytest.approx(one.history[-1]["test_acc"], abs=1 / 64)
    assert two["history"][-1]["train_acc"] == pytest.approx(one.history[-1]["train_acc"], abs=0.02)
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["world_size"] == 2
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "best.pt", "config.yaml", "last.pt", "metrics.csv", "summary.json"]
