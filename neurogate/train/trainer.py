"""``fit``: train a spiking classifier with checkpoints that resume bit-identically.

Cross-entropy on the readout's logits, Adam, a per-batch learning-rate schedule. ``last.pt`` is
written at every epoch end, every ``checkpoint_every`` batches and when SIGTERM or SIGINT
(Ctrl-C) arrives (the current batch finishes first; a second Ctrl-C aborts at once). A checkpoint
holds the weights, the optimiser and schedule, every RNG and the data position, and the data
order depends on ``(seed, epoch)`` only (:mod:`neurogate.train.distributed`), so a run killed at
any point and resumed from ``last.pt`` ends with the same weights, bit for bit, as a run never
interrupted (same machine, same number of threads).

Example:
    >>> import neurogate as ng
    >>> result = ng.train.fit("lif-convnet", "event-digits", ng.train.TrainConfig(epochs=4))
    >>> result.best_acc, result.run_dir
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from .. import data as nd
from .. import models as nm
from ..errors import ConfigError
from . import checkpoint as ck
from . import distributed as nt
from .config import SCHEDULES, TrainConfig, config_from_dict, save_config
from .interrupt import StopFlag
from .metrics import evaluate, sample_spikes
from .outputs import (
    check_resume_config,
    make_plots,
    run_directory,
    write_json,
    write_metrics,
)

__all__ = ["TrainResult", "fit", "lr_factor"]

DataArg = str | tuple[Dataset, Dataset] | None


@dataclass
class TrainResult:
    """What :func:`fit` returns: the run directory, the trained model and its metrics."""

    run_dir: Path
    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    best_acc: float = float("nan")
    final_acc: float = float("nan")
    interrupted: bool = False
    signal: int | None = None
    rank: int = 0


def fit(model: nn.Module | str | None = None, data: DataArg = None,
        config: TrainConfig | None = None, **overrides: Any) -> TrainResult:
    """Train ``model`` on ``data`` as ``config`` (plus ``overrides``) says; see the module doc.

    ``model``: a registered name, a built module, or ``None`` for ``config.model``. ``data``: a
    registered dataset name, a ``(train, test)`` pair of datasets of ``(frames [T, ...], label)``
    items, or ``None`` for ``config.dataset``. Writes the run directory
    (:mod:`neurogate.train.outputs`) on rank 0.

    Optional model hooks, called when the model defines them: ``param_groups(lr)`` returns the
    optimiser's parameter groups (a group may carry its own ``lr``, ``weight_decay`` and
    ``schedule``); ``on_epoch_start(epoch, epochs)`` runs before every epoch (0-based, also when
    a run resumes mid-epoch); ``after_optimizer_step()`` runs after every optimiser step.
    """
    cfg = config_from_dict(overrides, config or TrainConfig())
    if isinstance(model, str):
        cfg = replace(cfg, model=model)
    elif isinstance(model, nn.Module):
        cfg = replace(cfg, model=getattr(model, "config", {}).get("name", type(model).__name__))
    if isinstance(data, str):
        cfg = replace(cfg, dataset=data)
    elif data is not None:
        cfg = replace(cfg, dataset=getattr(data[0], "name", "custom"))
    if model is None or isinstance(model, str):
        nm.registry.check_options(nm.get_spec(cfg.model), cfg.model_options)  # fail early
    if data is None or isinstance(data, str):
        nd.registry.get_spec(cfg.dataset)
    ctx = nt.setup(cfg.device)
    threads = nt.set_threads(cfg.threads)
    clean = False
    try:
        result = _Run(cfg, ctx, model if isinstance(model, nn.Module) else None, data).train()
        clean = True
        return result
    finally:
        nt.set_threads(threads)
        nt.teardown(ctx, clean=clean)


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Learning-rate multiplier at batch ``step`` of ``total`` (see ``TrainConfig.schedule``)."""
    p = min(step / max(total, 1), 1.0)
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    warm = 0.2  # onecycle: linear warm-up from lr/25, then cosine to 0
    if p < warm:
        return 0.04 + 0.96 * p / warm
    return 0.5 * (1.0 + math.cos(math.pi * (p - warm) / (1.0 - warm)))


class _Run:
    """One training run: set up by the constructor, executed by :meth:`train`."""

    def __init__(self, cfg: TrainConfig, ctx: nt.DistContext, model: nn.Module | None,
                 data: DataArg) -> None:
        self.cfg, self.ctx, self.main = cfg, ctx, ctx.is_main
        self.run_dir = Path(str(nt.broadcast_object(str(run_directory(cfg)), ctx)))
        if ctx.enabled:
            torch.distributed.barrier()  # every rank checked the directory before rank 0 makes it
        if cfg.resume:
            saved = yaml.safe_load((self.run_dir / "config.yaml").read_text()) or {}
            check_resume_config(cfg, saved)
        t0 = time.perf_counter()
        self.train_set, self.test_set, num_classes, frame_shape = self._datasets(data)
        self.data_prepare_s = time.perf_counter() - t0
        if model is None:
            if not num_classes:
                raise ConfigError("the training set has no num_classes attribute; give it one, "
                                  "or pass a built model")
            torch.manual_seed(cfg.seed)
            model = nm.create(cfg.model, num_classes=num_classes, in_shape=frame_shape,
                              **cfg.model_options)
        self.model = model.to(ctx.device)
        if cfg.hw_aware:
            from .hwaware import HardwareAware, parse_hw_aware

            self.hw_aware = HardwareAware.attach(self.model, parse_hw_aware(cfg.hw_aware, cfg.hw_aware_noise))
        self.net: nn.Module = self.model
        if ctx.enabled:
            if ctx.device.type == "cuda":
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        self.num_batches = len(self.train_set) // cfg.batch_size
        self.total_steps = cfg.epochs * self.num_batches
        # Model hook: param_groups(lr) -> Adam groups (a group may set its own "lr",
        # "weight_decay" and "schedule"; the rest come from the config).
        groups = getattr(self.model, "param_groups", None)
        params = groups(cfg.lr) if callable(groups) else self.model.parameters()
        self.opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        for g in self.opt.param_groups:
            if g.get("schedule", cfg.schedule) not in SCHEDULES:
                raise ConfigError(f"{type(self.model).__name__}.param_groups: schedule must be one of "
                                  f"{SCHEDULES}, got {g['schedule']!r}")
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, [self._lr_lambda(g.get("schedule", cfg.schedule)) for g in self.opt.param_groups])
        self.epoch, self.batch, self.step = 0, 0, 0
        self.sums = {"loss": 0.0, "correct": 0.0, "seen": 0.0}
        self.times = {"epoch": 0.0, "data": 0.0, "run": 0.0}
        self.history: list[dict[str, Any]] = []
        self.best_acc, self.best_epoch = -1.0, 0
        if cfg.resume:
            # RNG states must stay CPU tensors; load_state_dict moves the rest to the device
            self._restore(ck.load_checkpoint(self.run_dir / "last.pt", "cpu"))
        elif self.main:
            self.run_dir.mkdir(parents=True)
            save_config(replace(cfg, out=str(self.run_dir)), self.run_dir / "config.yaml")

    # ------------------------------------------------------------------------------- setup
    def _datasets(self, data: DataArg) -> tuple[Dataset, Dataset, int, tuple[int, ...]]:
        cfg, ctx = self.cfg, self.ctx
        if data is None or isinstance(data, str):
            if ctx.enabled and not self.main:
                torch.distributed.barrier()  # rank 0 generates / checks the files first
            opts = {**cfg.data_options, "root": cfg.root, "time_steps": cfg.time_steps}
            train, test = nd.load(cfg.dataset, "train", **opts), nd.load(cfg.dataset, "test", **opts)
            if ctx.enabled and self.main:
                torch.distributed.barrier()
        else:
            train, test = data
        num_classes = int(getattr(train, "num_classes", 0) or 0)
        frame_shape = getattr(train, "frame_shape", None) or tuple(train[0][0].shape[1:])
        if cfg.train_samples:
            train = Subset(train, range(min(cfg.train_samples, len(train))))
        if cfg.test_samples:
            test = Subset(test, range(min(cfg.test_samples, len(test))))
        return train, test, num_classes, tuple(frame_shape)

    def _restore(self, ckpt: dict[str, Any]) -> None:
        ck.restore_model(self.model, ckpt)
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        ck.set_rng_state(ckpt["rng"])
        self.epoch, self.batch, self.step = ckpt["epoch"], ckpt["batch"], ckpt["global_step"]
        prog = ckpt["progress"]
        self.sums = dict(prog["sums"]) if self.main else dict.fromkeys(self.sums, 0.0)
        self.times = dict(prog["times"])
        self.history = list(ckpt["history"])
        self.best_acc, self.best_epoch = prog["best_acc"], prog["best_epoch"]
        if self.main:
            print(f"resuming {self.run_dir} at epoch {self.epoch + 1}, batch {self.batch}",
                  flush=True)

    # ------------------------------------------------------------------------------ training
    def train(self) -> TrainResult:
        cfg, stop = self.cfg, StopFlag()
        if self.main:
            print(f"run {self.run_dir}: {cfg.model} on {cfg.dataset}, {len(self.train_set)} "
                  f"train / {len(self.test_set)} test samples, {self.ctx.world} process(es) on "
                  f"{self.ctx.device}", flush=True)
        with stop:
            while self.epoch < cfg.epochs:
                self._hook("on_epoch_start", self.epoch, cfg.epochs)
                if self._train_epoch(stop):
                    self._save(["last.pt"])
                    if self.main:
                        print(f"\ninterrupted: saved {self.run_dir / 'last.pt'} at epoch "
                              f"{self.epoch + 1}, batch {self.batch}; continue with --resume "
                              f"--out {self.run_dir}", flush=True)
                    return self._result(interrupted=True, signum=stop.signum)
                self._end_epoch()
        self._finish()
        return self._result()

    def _train_epoch(self, stop: StopFlag) -> bool:
        """Run the rest of the current epoch; True when a stop signal cut it short."""
        cfg, ctx = self.cfg, self.ctx
        sampler = nt.EpochBatchSampler(len(self.train_set), cfg.batch_size, cfg.seed, self.epoch,
                                       ctx.rank, ctx.world, start=self.batch)
        loader = DataLoader(self.train_set, batch_sampler=sampler, num_workers=cfg.num_workers,
                            collate_fn=nd.collate_time_major, generator=torch.Generator(),
                            pin_memory=ctx.device.type == "cuda")
        bar = tqdm(total=self.num_batches, initial=self.batch, unit="batch", leave=False,
                   desc=f"epoch {self.epoch + 1}/{cfg.epochs}", dynamic_ncols=True,
                   disable=not (cfg.progress and self.main))
        self.net.train()
        t_epoch = time.perf_counter()
        t_wait = time.perf_counter()
        for x, y in loader:
            t_got = time.perf_counter()
            x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
            logits = self.net(x)
            loss = F.cross_entropy(logits, y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self._hook("after_optimizer_step")
            self.sched.step()
            self.sums["loss"] += float(loss.detach()) * len(y)
            self.sums["correct"] += float((logits.argmax(1) == y).sum())
            self.sums["seen"] += len(y)
            self.batch, self.step = self.batch + 1, self.step + 1
            now = time.perf_counter()
            self.times["data"] += t_got - t_wait
            self.times["epoch"] += now - t_epoch
            self.times["run"] += now - t_epoch
            t_epoch = now
            self._progress(bar)
            if stop.check(ctx):
                bar.close()
                return True
            if cfg.checkpoint_every and self.batch % cfg.checkpoint_every == 0 \
                    and self.batch < self.num_batches:
                self._save(["last.pt"])
                t_epoch = time.perf_counter()
            t_wait = time.perf_counter()
        bar.close()
        return False

    def _lr_lambda(self, schedule: str):
        return lambda step: lr_factor(schedule, step, self.total_steps)

    def _hook(self, name: str, *args: Any) -> None:
        """Call the model's optional hook ``name`` (see :func:`fit`), if it defines one."""
        hook = getattr(self.model, name, None)
        if callable(hook):
            hook(*args)

    def _progress(self, bar: tqdm) -> None:
        if bar.disable:
            return
        rate = self.batch * self.cfg.batch_size / max(self.times["epoch"], 1e-9)
        left = self.total_steps - self.step
        seen = max(self.sums["seen"], 1)
        bar.set_postfix({"loss": f"{self.sums['loss'] / seen:.3f}",  # a dict keeps this order
                         "acc": f"{self.sums['correct'] / seen:.3f}",
                         "samples/s": f"{rate:.0f}",
                         "run eta": _clock(left * self.cfg.batch_size / max(rate, 1e-9))},
                        refresh=False)
        bar.update(1)

    def _end_epoch(self) -> None:
        cfg, ctx = self.cfg, self.ctx
        loss_sum, correct, seen = nt.all_reduce_sum(
            [self.sums["loss"], self.sums["correct"], self.sums["seen"]], ctx)
        t0 = time.perf_counter()
        ev = evaluate(self.model, self.test_set, cfg.eval_batch_size, ctx)
        self.times["run"] += time.perf_counter() - t0
        row: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
            "test_loss": ev["loss"], "test_acc": ev["acc"],
            **{f"spike_rate_{k}": v for k, v in ev["rates"].items()},
            "synops_per_sample": ev["synops_per_sample"],
            "lr": self.opt.param_groups[0]["lr"],
            "epoch_time_s": self.times["epoch"], "data_time_s": self.times["data"],
            "data_fraction": self.times["data"] / max(self.times["epoch"], 1e-9),
            "samples_per_s": seen / max(self.times["epoch"], 1e-9),
        }
        self.history.append(row)
        best = ev["acc"] > self.best_acc
        if best:
            self.best_acc, self.best_epoch = ev["acc"], self.epoch + 1
        if self.main:
            print(f"epoch {self.epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f} "
                  f"acc {row['train_acc']:.4f} | test loss {ev['loss']:.4f} acc {ev['acc']:.4f}"
                  f" | {row['epoch_time_s']:.1f} s ({100 * row['data_fraction']:.1f} % data)",
                  flush=True)
        self.epoch, self.batch = self.epoch + 1, 0
        self.sums = dict.fromkeys(self.sums, 0.0)
        self.times.update(epoch=0.0, data=0.0)
        self._save(["best.pt", "last.pt"] if best else ["last.pt"])
        if self.main:
            write_metrics(self.history, self.run_dir / "metrics.csv")

    def _save(self, names: list[str]) -> None:
        """Write the checkpoint(s); collective under DDP (every rank calls it at the same step)."""
        sums = nt.all_reduce_sum(list(self.sums.values()), self.ctx)
        if not self.main:
            return
        state = {
            "model_name": self.cfg.model, "model_config": dict(getattr(self.model, "config", {})),
            "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "epoch": self.epoch, "batch": self.batch, "global_step": self.step,
            "rng": ck.rng_state(),
            "data": {"seed": self.cfg.seed, "epoch": self.epoch, "position": self.batch,
                     "batch_size": self.cfg.batch_size, "world_size": self.ctx.world},
            "train_config": self.cfg.to_dict(),
            "progress": {"sums": dict(zip(self.sums, sums)), "times": dict(self.times),
                         "best_acc": self.best_acc, "best_epoch": self.best_epoch},
            "history": self.history,
        }
        for name in names:
            ck.save_checkpoint(state, self.run_dir / name)

    def _finish(self) -> None:
        if not self.main:
            return
        plots: list[str] = []
        if self.cfg.plots and len(self.test_set):
            spikes = sample_spikes(self.model, self.test_set[0][0], self.ctx.device)
            plots = make_plots(self.run_dir, None if spikes is None else spikes[1])
        epochs = [r["epoch_time_s"] for r in self.history]
        later = [r["data_fraction"] for r in self.history[1:]] or [np.nan]
        last = self.history[-1] if self.history else {}
        write_json({
            "best_test_acc": self.best_acc, "best_epoch": self.best_epoch,
            "final_test_acc": last.get("test_acc"), "final_train_acc": last.get("train_acc"),
            "epochs": len(self.history), "data_prepare_s": self.data_prepare_s,
            "first_epoch_s": epochs[0] if epochs else None,
            "mean_epoch_s": float(np.mean(epochs[1:] or epochs)) if epochs else None,
            "train_time_s": self.times["run"],
            "data_fraction_warm": float(np.mean(later)),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "synops_per_sample": last.get("synops_per_sample"),
            "spike_rates": {k[len("spike_rate_"):]: v for k, v in last.items()
                            if k.startswith("spike_rate_")},
            "world_size": self.ctx.world, "device": str(self.ctx.device),
            "threads": torch.get_num_threads(), "plots": plots,
            "model_config": dict(getattr(self.model, "config", {})),
            "config": replace(self.cfg, out=str(self.run_dir)).to_dict(),
        }, self.run_dir / "summary.json")

    def _result(self, interrupted: bool = False, signum: int | None = None) -> TrainResult:
        final = self.history[-1]["test_acc"] if self.history else float("nan")
        return TrainResult(self.run_dir, self.model, self.history, self.best_acc, final,
                           interrupted, signum, self.ctx.rank)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"
