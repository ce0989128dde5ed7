"""``neurogate export --target crossbar | simulate``: a tiny trained run lowered onto tiles, the
report's sections, an ideal device reproducing the float accuracy exactly, the Monte Carlo over
seeds, one-line errors (exit 2), and hardware-aware training (noise in train mode only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from cli_helpers import TRAIN_ONE_EPOCH, error_line
from torch import nn

from neurogate.cli import main
from neurogate.errors import ConfigError, ValueRangeError
from neurogate.hw.crossbar import RRAM, Descriptor, ideal
from neurogate.train import TrainConfig
from neurogate.train.hwaware import HardwareAware, parse_hw_aware, perturbed_weight

SECTIONS = ("## Device and converters", "## Tile map", "## Quantisation", "## Digital periphery",
            "## Input encoding")


@pytest.fixture(scope="module")
def exports(trained_run, tmp_path_factory) -> dict[str, Path]:
    dirs = {}
    for device in ("ideal", "rram"):
        out = tmp_path_factory.mktemp("xbar-export") / device
        assert main(["export", str(trained_run), "--target", "crossbar", "--device", device, "--tile", "64",
                     "--out", str(out)]) == 0
        dirs[device] = out
    return dirs


def test_export_round_trip_and_report(exports, trained_run):
    d = exports["rram"]
    meta = json.loads((d / "export.json").read_text())
    assert meta["target"] == "crossbar" and meta["crossbar"]["device"] == "rram" and meta["crossbar"]["tile"] == 64
    assert Path(meta["checkpoint"]) == (trained_run / "best.pt").resolve()
    desc = Descriptor.load(d)
    assert desc.device == RRAM and desc.array.rows == 64 and len(desc.tiles) == meta["crossbar"]["tiles"]
    report = (d / "report.md").read_text()
    for s in SECTIONS:
        assert s in report, s
    assert all(0 < e < 0.05 for e in meta["crossbar"]["quantisation_error"].values())
    ideal_meta = json.loads((exports["ideal"] / "export.json").read_text())
    assert all(e < 1e-12 for e in ideal_meta["crossbar"]["quantisation_error"].values())


def test_ideal_device_matches_float_exactly(exports, capsys):
    from neurogate.hw.crossbar_export import simulate_crossbar

    r = simulate_crossbar(exports["ideal"], samples=48, seeds=2)
    assert r["hardware_acc"] == [r["float_acc"]] * 2 and r["hardware_acc_std"] == 0
    assert r["layer_error"]["lif1"] == 0 and all(e < 1e-6 for e in r["layer_error"].values()), r["layer_error"]
    assert main(["simulate", str(exports["rram"]), "--samples", "32", "--seeds", "3", "--t-read", "3600"]) == 0
    out = capsys.readouterr().out
    assert "float model accuracy" in out and "hardware accuracy" in out and "+-" in out and "output error" in out


def test_rram_seeds_differ_and_repeat(exports, capsys):
    from neurogate.hw.crossbar_export import simulate_crossbar

    a = simulate_crossbar(exports["rram"], samples=32, seeds=3, t_read=3600.0)
    b = simulate_crossbar(exports["rram"], samples=32, seeds=3, t_read=3600.0)
    assert a["hardware_acc"] == b["hardware_acc"] and len(a["hardware_acc"]) == 3
    assert any(e > 0 for e in a["layer_error"].values())
    loud = simulate_crossbar(exports["rram"], samples=32, seeds=3, t_read=3600.0, noise_scale=30.0)
    assert loud["noise_scale"] == 30 and all(loud["layer_error"][k] > a["layer_error"][k] for k in a["layer_error"])
    assert main(["simulate", str(exports["rram"]), "--samples", "16", "--seeds", "1", "--noise-scale", "2"]) == 0
    assert "x2 noise" in capsys.readouterr().out


def test_errors_one_line_exit_2(exports, trained_run, tmp_path, capsys):
    assert main(["simulate", str(exports["rram"]), "--seeds", "0"]) == 2
    assert "seeds" in error_line(capsys)
    assert main(["simulate", str(exports["rram"]), "--t-read", "1"]) == 2
    assert "t_read" in error_line(capsys)
    assert main(["export", str(tmp_path / "nope"), "--target", "crossbar", "--out", str(tmp_path / "x")]) == 2
    assert "no such run" in error_line(capsys)
    assert main(["export", str(trained_run), "--target", "crossbar", "--tile", "0", "--out", str(tmp_path / "y")]) == 2
    assert "rows" in error_line(capsys)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "export.json").write_text("{")
    assert main(["simulate", str(broken)]) == 2
    error_line(capsys)


# ------------------------------------------------------------------------------ hw-aware training
def test_hw_aware_perturbs_in_train_mode_only():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4, momentum=0.0), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    x = torch.randn(5, 2, 6, 6)
    net.eval()
    ref = net(x)
    hwa = HardwareAware.attach(net, "crossbar:rram")
    assert len(hwa.handles) == 4  # conv + linear, pre + post; BatchNorm untouched
    with torch.no_grad():
        assert torch.equal(net(x), ref)  # eval: exact
    net.train()
    a, b = net(x), net(x)
    assert not torch.equal(a, b)  # resampled every forward
    assert "weight" not in net[0].__dict__ and isinstance(net[0].weight, nn.Parameter)
    a.sum().backward()
    assert net[0].weight.grad is not None and net[3].weight.grad is not None
    sd = net.state_dict()
    assert set(sd) == set(nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Flatten(),
                                        nn.Linear(64, 3)).state_dict())
    hwa.remove()
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), ref)


def test_perturbed_weight_statistics():
    torch.manual_seed(0)
    w = torch.randn(64, 256)
    assert torch.equal(perturbed_weight(w, ideal(), quantise=False), w)
    dev = RRAM.__class__(**{**RRAM.to_dict(), "prog_coeffs": (0.01, 0.0, 0.0), "read_noise": 0.0,
                            "stuck_lrs": 0.0, "stuck_hrs": 0.0, "levels": None})
    d = (perturbed_weight(w, dev) - w) / w.abs().amax(1, keepdim=True)
    # two devices of sigma 0.01 g_max each: sqrt(2) * 0.01 * 25 / 24 of the column scale
    assert abs(float(d.std()) - 2 ** 0.5 * 0.25 / 24) < 1e-3
    d2 = (perturbed_weight(w, dev.with_noise(2.0)) - w) / w.abs().amax(1, keepdim=True)
    assert abs(float(d2.std()) / (2 * 2 ** 0.5 * 0.25 / 24) - 1) < 0.05  # (a few g_min devices clip at 0)
    assert parse_hw_aware("crossbar:rram", 3.0).read_noise == 3 * RRAM.read_noise
    with pytest.raises(ValueRangeError, match="noise scale"):
        RRAM.with_noise(-1.0)


def test_train_hw_aware_records_option(digits_root, tmp_path, capsys):
    out = tmp_path / "hwa"
    argv = TRAIN_ONE_EPOCH + ["--train-samples", "64", "--test-samples", "32", "--hw-aware", "crossbar:rram",
                    "--root", str(digits_root), "--out", str(out)]
    assert main(argv + ["--hw-aware-noise", "5"]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["hw_aware"] == "crossbar:rram" and saved["hw_aware_noise"] == 5
    with pytest.raises(ConfigError, match="hw_aware_noise"):
        TrainConfig(hw_aware_noise=5.0)
    capsys.readouterr()
    assert main(TRAIN_ONE_EPOCH + ["--hw-aware", "crossbar:nope", "--out", str(tmp_path / "bad")]) == 2
    assert "hw_aware" in error_line(capsys)


def test_export_reference_column_and_ir_drop(trained_run, tmp_path):
    """--reference-column / --wire-resistance reach the descriptor and the report; with ideal
    wires a reference-column ideal device still reproduces the float accuracy."""
    from neurogate.hw.crossbar_export import simulate_crossbar

    out = tmp_path / "refcol"
    assert main(["export", str(trained_run), "--target", "crossbar", "--device", "ideal", "--tile", "64",
                 "--reference-column", "--out", str(out)]) == 0
    desc = Descriptor.load(out)
    assert not desc.array.differential and all(t.g_neg.shape[1] == 1 for t in desc.tiles)
    assert "reference column" in (out / "report.md").read_text()
    r = simulate_crossbar(out, samples=32, seeds=1)
    assert r["hardware_acc"] == [r["float_acc"]]
    wired = tmp_path / "wired"
    assert main(["export", str(trained_run), "--target", "crossbar", "--device", "rram", "--tile", "64",
                 "--wire-resistance", "1.5", "--out", str(wired)]) == 0
    assert Descriptor.load(wired).array.wire_resistance == 1.5
    assert "1.5 ohm per segment" in (wired / "report.md").read_text()
