"""``neurogate`` command line: errors as one line + exit 2, option precedence, kill and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from cli_helpers import error_line

import neurogate.train as nt
from neurogate.cli import build_parser, main, train_config_from_args

TINY = ["--model", "lif-mlp", "--model-opt", "hidden=[32]", "--time-steps", "4",
        "--batch-size", "16", "--train-samples", "256", "--test-samples", "64", "--threads", "1",
        "--no-progress", "--no-plots"]


@pytest.mark.parametrize("argv, message", [
    (["--model", "lif-convent"], "unknown model 'lif-convent'. Did you mean 'lif-convnet'?"),
    (["--dataset", "nmnst"], "unknown dataset 'nmnst'. Did you mean 'nmnist'?"),
    (["--model-opt", "hiden=3"], "no option 'hiden'. Did you mean 'hidden'?"),
    (["--model-opt", "nonsense"], "--model-opt expects KEY=VALUE"),
    (["--resume"], "resume needs the run directory"),
])
def test_bad_names_print_one_line_and_exit_2(argv, message, capsys, tmp_path):
    assert main(["train", "--root", str(tmp_path), *argv]) == 2
    assert message in error_line(capsys)
    assert list(tmp_path.iterdir()) == []  # nothing generated or written


def test_config_file_with_unknown_key_names_key_and_nearest(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 2\nbatchsize: 16\n")
    assert main(["train", "--config", str(path)]) == 2
    line = error_line(capsys)
    assert "unknown key 'batchsize'" in line and "Did you mean 'batch_size'?" in line


def test_existing_out_without_resume_is_refused(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["train", "--out", str(tmp_path / "run")]) == 2
    assert "already exists; pass --resume" in error_line(capsys)


def test_flags_override_the_config_file_which_overrides_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"epochs": 9, "lr": 0.5, "model_options": {"hidden": [8]}}))
    args = build_parser().parse_args(["train", "--config", str(path), "--lr", "0.1",
                                      "--model-opt", "dropout=0.2", "--batch-size", "32"])
    cfg = train_config_from_args(args)
    assert (cfg.epochs, cfg.lr, cfg.batch_size, cfg.time_steps) == (9, 0.1, 32, 8)
    assert cfg.model_options == {"hidden": [8], "dropout": 0.2}
    assert cfg.progress is True and cfg.resume is False
    parsed = train_config_from_args(build_parser().parse_args(["train", "--no-progress"]))
    assert parsed == nt.TrainConfig(progress=False)


def test_datasets_and_models_subcommands_list_what_is_there(digits_root, capsys):
    assert main(["datasets", "--root", str(digits_root)]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert rows["event-digits"][:2] == ["generated", "train,test"]
    assert rows["nmnist"][0] == "absent"
    assert main(["models"]) == 0
    assert {"lif-mlp", "lif-convnet"} <= {ln.split()[0] for ln in capsys.readouterr().out.splitlines()}


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().out


def _wait_for_checkpoint(path: Path, proc: subprocess.Popen, after_step: int) -> dict:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if path.is_file():
            ckpt = torch.load(path, weights_only=True)
            if ckpt["global_step"] > after_step:
                return ckpt
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


def test_killed_runs_resume_to_bit_identical_weights(digits_root, tmp_path):
    """SIGTERM mid-epoch (saves at once, exit 143), resume, SIGKILL (last periodic checkpoint
    survives), resume again: the weights equal those of a run never interrupted."""
    args = [*TINY, "--root", str(digits_root), "--epochs", "3", "--checkpoint-every", "2"]
    ref = nt.fit(config=train_config_from_args(
        build_parser().parse_args(["train", *args, "--out", str(tmp_path / "ref")])))
    run, last = tmp_path / "cut", tmp_path / "cut" / "last.pt"
    cmd = [sys.executable, "-m", "neurogate.cli", "train", *args, "--out", str(run)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _wait_for_checkpoint(last, proc, 0)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "interrupted: saved" in out
    first = torch.load(last, weights_only=True)
    assert first["global_step"] < 3 * 16

    proc = subprocess.Popen([*cmd, "--resume"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    second = _wait_for_checkpoint(last, proc, first["global_step"])
    proc.kill()
    proc.communicate(timeout=60)
    assert first["global_step"] < second["global_step"] < 3 * 16

    done = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    final = torch.load(last, weights_only=True)
    assert final["epoch"] == 3 and final["global_step"] == 3 * 16
    for k, v in ref.model.state_dict().items():
        assert torch.equal(final["model"][k], v), k
    assert [r["train_loss"] for r in final["history"]] == [r["train_loss"] for r in ref.history]
