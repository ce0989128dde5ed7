"""Training: outputs of a run, checkpoints, bit-identical resume, config files, data order."""

from __future__ import annotations

import csv
import json
import os
import random
import signal

import numpy as np
import pytest
import torch
import yaml

import neurogate.models as nm
import neurogate.train as nt
from neurogate.errors import CheckpointError, ConfigError
from neurogate.train.distributed import EpochBatchSampler
from neurogate.train.trainer import lr_factor


class ToyFrames(torch.utils.data.Dataset):
    """Three classes of [T, 2, 6, 6] frames: class c lights row 2c of polarity c % 2.

    ``sigterm_at``: send this process SIGTERM when that item is fetched (an interrupt mid-epoch).
    """

    num_classes, frame_shape, name = 3, (2, 6, 6), "toy"

    def __init__(self, n: int, steps: int = 4, seed: int = 0, sigterm_at: int | None = None):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % 3
        self.frames = (torch.rand(n, steps, 2, 6, 6, generator=g) < 0.05).float()
        for i, c in enumerate(self.labels.tolist()):
            self.frames[i, :, c % 2, 2 * c] = (torch.rand(steps, 6, generator=g) < 0.8).float()
        self.sigterm_at, self.fetched = sigterm_at, 0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        self.fetched += 1
        if self.fetched == self.sigterm_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return self.frames[i], int(self.labels[i])


def toy_config(tmp_path, name: str = "run", **kw) -> nt.TrainConfig:
    base = {"model": "lif-mlp", "model_options": {"hidden": [16]}, "epochs": 2, "batch_size": 16,
            "lr": 3e-2, "time_steps": 4, "out": str(tmp_path / name), "progress": False,
            "plots": False, "threads": 1, "checkpoint_every": 0}
    return nt.TrainConfig(**{**base, **kw})


def test_fit_writes_the_run_directory(tmp_path):
    cfg = toy_config(tmp_path, plots=True)
    result = nt.fit(data=(ToyFrames(96), ToyFrames(48, seed=1)), config=cfg)
    run = tmp_path / "run"
    assert result.run_dir == run and not result.interrupted
    for name in ("config.yaml", "metrics.csv", "last.pt", "best.pt", "summary.json"):
        assert (run / name).is_file(), name
    saved = nt.load_config(run / "config.yaml")
    assert saved.model == "lif-mlp" and saved.dataset == "toy" and saved.out == str(run)
    assert saved.model_options == {"hidden": [16]} and saved.batch_size == 16
    rows = list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for col in ("train_loss", "train_acc", "test_acc", "spike_rate_lif1", "synops_per_sample",
                "epoch_time_s", "data_fraction"):
        assert col in rows[0], col
    assert float(rows[-1]["test_acc"]) >= 0.9  # the toy classes are easy
    assert result.best_acc == max(float(r["test_acc"]) for r in rows)
    assert 0 < float(rows[-1]["spike_rate_lif1"]) < 1 and float(rows[-1]["synops_per_sample"]) > 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_test_acc"] == result.best_acc and summary["epochs"] == 2
    assert summary["parameters"] == sum(p.numel() for p in result.model.parameters())
    last = torch.load(run / "last.pt", weights_only=True)
    assert (last["epoch"], last["batch"], last["model_name"]) == (2, 0, "lif-mlp")
    best = nt.load_checkpoint(run / "best.pt")
    assert best["epoch"] == summary["best_epoch"]
    model = nt.load_model(run / "last.pt")
    for k, v in result.model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    if summary["plots"]:  # neurogate.viz present
        assert (run / "curves.png").stat().st_size > 0 and (run / "raster.png").is_file()


def test_existing_out_without_resume_is_refused_and_left_untouched(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already exists; pass --resume"):
        nt.fit(data=(ToyFrames(32), ToyFrames(16)), config=toy_config(tmp_path))
    assert os.listdir(tmp_path / "run") == ["keep.txt"]
    with pytest.raises(ConfigError, match="nothing to resume"):
        nt.fit(data=(ToyFrames(32), ToyFrames(16)), config=toy_config(tmp_path, resume=True))


def test_sigterm_mid_epoch_then_resume_is_bit_identical(tmp_path):
    data = (ToyFrames(96), ToyFrames(48, seed=1))
    ref = nt.fit(data=data, config=toy_config(tmp_path, "ref", epochs=3))
    # 6 batches of 16 per epoch; SIGTERM while fetching batch 3 of epoch 2
    cut = nt.fit(data=(ToyFrames(96, sigterm_at=96 + 2 * 16 + 5), data[1]),
                 config=toy_config(tmp_path, "cut", epochs=3))
    assert cut.interrupted and cut.signal == signal.SIGTERM
    ckpt = nt.load_checkpoint(tmp_path / "cut" / "last.pt")
    assert (ckpt["epoch"], ckpt["batch"]) == (1, 3)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored
    done = nt.fit(data=data, config=toy_config(tmp_path, "cut", epochs=3, resume=True))
    assert not done.interrupted
    for k, v in ref.model.state_dict().items():
        assert torch.equal(done.model.state_dict()[k], v), k
    assert [r["train_loss"] for r in done.history] == [r["train_loss"] for r in ref.history]
    assert [r["test_acc"] for r in done.history] == [r["test_acc"] for r in ref.history]


def test_resume_with_other_settings_is_refused(tmp_path):
    data = (ToyFrames(32), ToyFrames(16))
    nt.fit(data=data, config=toy_config(tmp_path, epochs=1))
    with pytest.raises(ConfigError, match=r"lr: run has 0\.03, now 0\.5"):
        nt.fit(data=data, config=toy_config(tmp_path, epochs=1, lr=0.5, resume=True))


def test_checkpoint_of_another_model_says_which_shapes_differ(tmp_path):
    small = nm.create("lif-mlp", num_classes=3, in_shape=(2, 6, 6), hidden=(16,))
    nt.save_checkpoint({"model": small.state_dict(), "model_name": "lif-mlp",
                        "model_config": small.config}, tmp_path / "a.pt")
    other = nm.create("lif-mlp", num_classes=3, in_shape=(2, 6, 6), hidden=(32,))
    with pytest.raises(CheckpointError, match=r"fc1\.module\.weight: checkpoint \[16, 72\] vs "
                                              r"model \[32, 72\]"):
        nt.restore_model(other, nt.load_checkpoint(tmp_path / "a.pt"))
    conv = nm.create("lif-convnet-small", num_classes=3, in_shape=(2, 6, 6))
    with pytest.raises(CheckpointError, match="holds model 'lif-mlp'.*missing from the checkpoint"):
        nt.restore_model(conv, nt.load_checkpoint(tmp_path / "a.pt"))
    torch.save({"weights": 1}, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="not a neurogate checkpoint"):
        nt.load_checkpoint(tmp_path / "b.pt")


def test_config_file_unknown_key_and_precedence(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"epochs": 7, "batch_size": 8, "lr": 1}))
    cfg = nt.load_config(path, batch_size=32)
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.model) == (7, 32, 1.0, "lif-convnet")
    path.write_text("epochs: 3\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'learning_rate'.*Did you mean 'lr'"):
        nt.load_config(path)
    path.write_text("epochs: three\n")
    with pytest.raises(ConfigError, match="epochs must be int"):
        nt.load_config(path)
    with pytest.raises(ConfigError, match="schedule must be one of"):
        nt.TrainConfig(schedule="cosin")


def test_unknown_names_fail_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'lif-mlp'"):
        nt.fit(config=toy_config(tmp_path, model="lif-mpl"))
    with pytest.raises(ConfigError, match="unknown dataset 'no-such-set'"):
        nt.fit(config=toy_config(tmp_path, dataset="no-such-set"))
    assert not (tmp_path / "run").exists()


def test_lr_schedules():
    assert lr_factor("onecycle", 0, 100) == pytest.approx(0.04)
    assert lr_factor("onecycle", 20, 100) == pytest.approx(1.0)
    assert lr_factor("onecycle", 100, 100) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor("cosine", 50, 100) == pytest.approx(0.5)
    assert lr_factor("constant", 99, 100) == 1.0


def test_data_order_depends_on_seed_and_epoch_and_shards_global_batches():
    def batches(**kw):
        return list(EpochBatchSampler(20, batch_size=4, **kw))

    assert batches(seed=0, epoch=1) == batches(seed=0, epoch=1)
    assert batches(seed=0, epoch=1) != batches(seed=0, epoch=2)
    whole = batches(seed=3, epoch=0)
    assert len(whole) == 5 and sorted(i for b in whole for i in b) == list(range(20))
    r0, r1 = batches(seed=3, epoch=0, rank=0, world=2), batches(seed=3, epoch=0, rank=1, world=2)
    assert [a + b for a, b in zip(r0, r1)] == whole
    assert batches(seed=3, epoch=0, start=2) == whole[2:]
    with pytest.raises(ConfigError, match="multiple of the number of processes"):
        EpochBatchSampler(20, batch_size=5, seed=0, epoch=0, world=2)
    with pytest.raises(ConfigError, match="larger than the training split"):
        EpochBatchSampler(3, batch_size=4, seed=0, epoch=0)


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    from neurogate.train.checkpoint import rng_state, set_rng_state

    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    nt.save_checkpoint({"rng": rng_state()}, tmp_path / "r.pt")
    expect = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(nt.load_checkpoint(tmp_path / "r.pt")["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expect[0], got[0]) and np.array_equal(expect[1], got[1])
    assert expect[2] == got[2]


def test_shipped_config_files_are_valid():
    from pathlib import Path

    files = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    for path in files:
        cfg = nt.load_config(path)
        nm.registry.check_options(nm.get_spec(cfg.model), cfg.model_options)
