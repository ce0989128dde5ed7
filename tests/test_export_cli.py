"""``neurogate export | simulate``: a tiny trained run exported to NIR and SpiNNaker, the report's
sections, the hardware run against the float model, and one-line errors (exit 2) for a broken
descriptor, a missing run and a layer the targets cannot map; the input-copy encoding and the
sparse unrolling of convolutions and pooling against their dense reference."""

from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from cli_helpers import error_line

import neurogate as ng
import neurogate.hw
from neurogate.cli import main
from neurogate.hw.report import input_spikes, with_input_copies
from neurogate.hw.spinnaker import Descriptor, lower, simulate

SECTIONS = ("## Resources", "## Populations", "## Quantisation", "## Delays",
            "## Neuron parameters (PyNN IF_curr_exp units)", "## Host readouts", "## Input encoding")


@pytest.fixture(scope="module")
def spinn_dir(trained_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export-spinn") / "spinn"
    assert main(["export", str(trained_run), "--target", "spinnaker", "--out", str(out)]) == 0
    return out


def test_export_spinnaker_writes_descriptor_report_and_record(trained_run, spinn_dir, capsys):
    desc = Descriptor.load(spinn_dir)  # loads and validates
    report = (spinn_dir / "report.md").read_text()
    for section in SECTIONS:
        assert section in report, section
    for word in ("chips", "cores", "router entries", "DTCM", "underflowed to 0", "fraction", "tau_m (ms)",
                 "v_thresh (mV)", "cm (nF)", "i_offset (nA)", "latency"):
        assert word in report, word
    for pr in desc.projections:  # one quantisation row per projection, with its numbers
        r = pr.report
        assert f"| {pr.name} | {r['shifts'][0]}/{r['shifts'][1]} | {r['excitatory']} | {r['inhibitory']} |" in report
    meta = json.loads((spinn_dir / "export.json").read_text())
    assert Path(meta["checkpoint"]) == (trained_run / "best.pt").resolve()
    assert meta["model_config"]["name"] == "lif-mlp" and meta["input_copies"] >= 1
    assert meta["data"]["dataset"] == "event-digits" and meta["data"]["time_steps"] == 4


def test_simulate_matches_float_model(spinn_dir, capsys):
    capsys.readouterr()
    assert main(["simulate", str(spinn_dir), "--samples", "48"]) == 0
    out = capsys.readouterr().out
    acc = {k: float(line.split()[-1]) for line in out.splitlines() for k in ("hardware", "float model", "same")
           if line.strip().startswith(k)}
    assert set(acc) == {"hardware", "float model", "same"}, out
    assert abs(acc["hardware"] - acc["float model"]) <= 0.05 and acc["same"] >= 0.9, out
    agreement = [float(line.split()[-1]) for line in out.splitlines() if "spike agreement" in line]
    assert agreement and min(agreement) >= 0.95, out


def test_export_spinnaker2_and_explicit_copies(trained_run, tmp_path, capsys):
    out = tmp_path / "s2"
    assert main(["export", str(trained_run), "--target", "spinnaker", "--machine", "SpiNNaker2",
                 "--input-copies", "2", "--out", str(out)]) == 0
    desc = Descriptor.load(out)
    assert desc.machine.name == "spinnaker2" and desc.populations["input"].size == 2 * 2 * 34 * 34
    assert "# SpiNNaker export: spinnaker2" in (out / "report.md").read_text()
    assert "exported to" in capsys.readouterr().out
    assert main(["export", str(trained_run), "--out", str(out), "--input-copies", "0"]) == 2
    assert "--input-copies expects a positive integer" in error_line(capsys)


def test_export_nir_round_trip(trained_run, tmp_path, capsys):
    out = tmp_path / "nir"
    assert main(["export", str(trained_run / "best.pt"), "--target", "nir", "--out", str(out)]) == 0
    assert "Nodes" in (out / "report.md").read_text() and "lif1" in capsys.readouterr().out
    model = ng.train.load_model(trained_run / "best.pt")
    same = ng.hw.from_nir(out / "model.nir")
    x = (torch.rand(4, 3, 2, 34, 34) < 0.1).float()
    with torch.no_grad():
        assert torch.allclose(model(x), same(x), atol=1e-5)


def test_input_copies_are_exact_for_counts():
    """Copy m spikes when count >= m and the first layer's weights repeat: W min(count, M)."""
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(0, 0.5, (6, 8)), rng.normal(0, 0.5, (3, 6))
    lif = {"tau": np.full(6, 1e-3 / np.log(2)), "r": np.full(6, 2.0), "v_leak": np.zeros(6),
           "v_threshold": np.ones(6)}
    nodes = {"input": nir.Input(np.array([8])), "fc1": nir.Linear(w1), "lif1": nir.LIF(**lif),
             "fc2": nir.Linear(w2), "output": nir.Output(np.array([3]))}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "output")]
    g = nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-3, "reset": "subtract"})
    counts = rng.integers(0, 4, (10, 2, 8)).astype(float)
    spikes, clipped = input_spikes(counts, 3)
    assert clipped == 0 and spikes.shape == (10, 2, 24) and spikes.sum() == counts.sum()
    assert input_spikes(counts, 2)[1] == int(np.clip(counts - 2, 0, None).sum())
    d = lower(with_input_copies(g, 3))
    dense = d.dequantised_weights(d.projections[0]) / (d.populations["lif1"].v_scale * 2.0 / d.populations["lif1"].params["tau_m"][0])
    assert np.allclose(dense, np.tile(w1, (1, 3)), atol=1e-3)
    res = simulate(d, spikes, mode="float", align=True)
    # the reference: h = 0.5 v + W count (r / tau_m gain folds into the same units)
    v, s_ref = np.zeros((2, 6)), []
    for t in range(10):
        h = 0.5 * v + counts[t] @ w1.T
        s = h >= 1
        v = h - s
        s_ref.append(s)
    assert (res.spikes["lif1"] == np.array(s_ref)).mean() >= 0.98


def test_broken_descriptor_fails_simulate_with_one_line(spinn_dir, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(spinn_dir, broken)
    meta = json.loads((broken / "descriptor.json").read_text())
    pop = next(p for p in meta["populations"] if p["kind"] == "lif")
    pop["slice_sizes"] = [300] + pop["slice_sizes"][1:]
    (broken / "descriptor.json").write_text(json.dumps(meta))
    assert main(["simulate", str(broken), "--samples", "4"]) == 2
    line = error_line(capsys)
    assert "neurogate simulate: error:" in line and pop["name"] in line and "slice_sizes" in line
    (broken / "arrays.npz").write_bytes(b"not a zip")
    assert main(["simulate", str(broken)]) == 2
    assert "arrays.npz" in error_line(capsys)


def test_missing_run_and_unsupported_layer(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope"), "--target", "spinnaker", "--out", str(tmp_path / "o")]) == 2
    assert "no such run directory or checkpoint" in error_line(capsys)
    assert main(["simulate", str(tmp_path / "nope")]) == 2
    assert "no such export directory" in error_line(capsys)
    # a max-pooling convnet: save a checkpoint the way the trainer does, then export it
    net = ng.models.create("lif-convnet-small", num_classes=10, in_shape=(2, 34, 34), pool_mode="max")
    run = tmp_path / "maxpool"
    run.mkdir()
    ng.train.save_checkpoint({"model_name": "lif-convnet-small", "model_config": net.config,
                              "model": net.state_dict(), "train_config": {}}, run / "best.pt")
    assert main(["export", str(run), "--target", "spinnaker", "--out", str(tmp_path / "o")]) == 2
    line = error_line(capsys)
    assert "pool1" in line and "MaxPool2d" in line and "AvgPool2d" in line


@pytest.mark.parametrize("stride, pad, dil, groups", [(1, 1, 1, 1), (2, 0, 1, 2), (2, 2, 2, 1), (1, 0, 2, 2)])
def test_sparse_unroll_equals_dense_convolution(stride, pad, dil, groups):
    """graph.py unrolls convolutions and pooling through ``unfold`` of an index image; the dense
    reference applies the layer to the identity basis (what it did before; 340 MB for lif1)."""
    import torch.nn.functional as F

    from neurogate.hw.spinnaker.graph import _linear_map

    rng = np.random.default_rng(stride + 3 * pad + 7 * dil + 11 * groups)
    w = rng.normal(size=(6, 4 // groups, 3, 3))
    w[0, 0, 1, 1] = 0.0  # a zero weight is no synapse
    eye = torch.eye(4 * 7 * 9, dtype=torch.float64).reshape(-1, 4, 7, 9)
    a, _, shape = _linear_map("c", nir.Conv2d((7, 9), w, stride, pad, dil, groups, np.zeros(6)), (4, 7, 9))
    dense = F.conv2d(eye, torch.as_tensor(w), stride=stride, padding=pad, dilation=dil, groups=groups)
    assert shape == tuple(dense.shape[1:]) and np.array_equal(a.toarray(), dense.reshape(len(eye), -1).T.numpy())
    w1 = rng.normal(size=(6, 4 // groups, 3))
    a, _, _ = _linear_map("c", nir.Conv1d(11, w1, stride, pad, dil, groups, np.zeros(6)), (4, 11))
    dense = F.conv1d(torch.eye(44, dtype=torch.float64).reshape(-1, 4, 11), torch.as_tensor(w1), stride=stride,
                     padding=pad, dilation=dil, groups=groups)
    assert np.array_equal(a.toarray(), dense.reshape(44, -1).T.numpy())
    k = (2 + pad % 2, 3)
    for cls, scale in ((nir.AvgPool2d, 1.0), (nir.SumPool2d, k[0] * k[1])):
        a, _, _ = _linear_map("p", cls(np.array(k), np.array([stride, 2]), np.array([pad % 2, 1])), (4, 7, 9))
        dense = F.avg_pool2d(eye, k, (stride, 2), (pad % 2, 1), count_include_pad=True) * scale
        assert np.array_equal(a.toarray(), dense.reshape(len(eye), -1).T.numpy())
