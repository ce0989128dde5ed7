"""The SpiNNaker-like target's descriptor on disk (round trip, limits checked on load, corrupt
arrays) and the PyNN script written from it."""

from __future__ import annotations

import ast
import dataclasses
import json

import numpy as np
import pytest
from spinnaker_helpers import mlp

from neurogate.errors import ConfigError, HardwareConstraintError
from neurogate.hw.spinnaker import (
    SPINNAKER1,
    Descriptor,
    decode_words,
    lower,
    simulate,
    to_pynn,
)


# ------------------------------------------------------------------ descriptor on disk
def _edit(tmp_path, d, json_edit=None, array_edit=None):
    d.save(tmp_path)
    if json_edit:
        meta = json.loads((tmp_path / "descriptor.json").read_text())
        json_edit(meta)
        (tmp_path / "descriptor.json").write_text(json.dumps(meta))
    if array_edit:
        with np.load(tmp_path / "arrays.npz") as z:
            arrays = {k: z[k].copy() for k in z.files}
        array_edit(arrays)
        np.savez(tmp_path / "arrays.npz", **arrays)
    return tmp_path


def test_save_load_round_trip(spinnaker_net, tmp_path):
    w1, w2, x = spinnaker_net
    d = lower(mlp(w1, w2, delay=np.arange(20)))
    d2 = Descriptor.load(d.save(tmp_path))
    assert d2.machine == d.machine and d2.mapping == json.loads(json.dumps(d.mapping))
    for a, b in zip(d.projections, d2.projections):
        assert np.array_equal(a.words, b.words) and a.report == b.report
    assert np.array_equal(simulate(d, x).spikes["lif2"], simulate(d2, x).spikes["lif2"])
    meta = json.loads((tmp_path / "descriptor.json").read_text())
    assert meta["schema_version"] == 1 and meta["target"] == "spinnaker"


def test_load_refuses_broken_limits(spinnaker_net, tmp_path):
    w1, w2, _ = spinnaker_net
    d = lower(mlp(w1, w2))

    def big_core(meta):
        pop = meta["populations"][1]
        pop["size"], pop["slice_sizes"] = 300, [300]

    with pytest.raises(HardwareConstraintError, match="slice_sizes.*300"):
        Descriptor.load(_edit(tmp_path / "a", d, json_edit=big_core))

    def stage(arrays):
        arrays["proj0.row_stage"][0] = 9  # 9 * 16 + delay > 144

    with pytest.raises(HardwareConstraintError, match="row_stage"):
        Descriptor.load(_edit(tmp_path / "b", d, array_edit=stage))

    def overflow(arrays):
        arrays["proj0.words"][:20] |= np.uint32(0xFFFF << 16)  # 20 max weights into the same neurons

    with pytest.raises(HardwareConstraintError, match="weight overflow"):
        Descriptor.load(_edit(tmp_path / "c", d, array_edit=overflow))

    def spare(arrays):
        arrays["proj1.words"][3] |= np.uint32(1 << 14)

    with pytest.raises(HardwareConstraintError, match="spare"):
        Descriptor.load(_edit(tmp_path / "d", d, array_edit=spare))

    def index(arrays):
        arrays["proj1.words"][0] |= np.uint32(0xFF)  # lif2 has 5 neurons

    with pytest.raises(HardwareConstraintError, match="neuron index"):
        Descriptor.load(_edit(tmp_path / "e", d, array_edit=index))

    with pytest.raises(ConfigError, match="schema version"):
        Descriptor.load(_edit(tmp_path / "f", d, json_edit=lambda m: m.update(schema_version=99)))


def test_load_refuses_on_core_delay_beyond_machine(spinnaker_net, tmp_path):
    w1, w2, _ = spinnaker_net
    short = dataclasses.replace(SPINNAKER1, name="custom", max_core_delay=8, max_delay=64)
    d = lower(mlp(w1, w2, delay=np.arange(20)), short)
    assert decode_words(d.projections[0].words)["delay"].max() <= 8

    def delay(arrays):
        arrays["proj0.words"][0] |= np.uint32(0xB << 10)  # on-core delay 12 > 8

    with pytest.raises(HardwareConstraintError, match="words.delay"):
        Descriptor.load(_edit(tmp_path, d, array_edit=delay))


def test_load_corrupt_npz(spinnaker_net, tmp_path):
    w1, w2, _ = spinnaker_net
    lower(mlp(w1, w2)).save(tmp_path)
    raw = (tmp_path / "arrays.npz").read_bytes()
    (tmp_path / "arrays.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ConfigError, match="corrupt"):
        Descriptor.load(tmp_path)


# ------------------------------------------------------------------ PyNN script
def test_to_pynn_script(spinnaker_net):
    from neurogate.hw.spinnaker.pynn import pynn_weight_factor

    w1, w2, x = spinnaker_net
    d = lower(mlp(w1, w2, reset="zero", delay=np.arange(20)))
    script = to_pynn(d, x)
    compile(script, "export.py", "exec")
    lists = {}
    for node in ast.parse(script).body:
        if isinstance(node, ast.Assign) and node.targets[0].id.startswith("conn_"):
            lists[node.targets[0].id] = ast.literal_eval(node.value)
    assert set(lists) == {"conn_0_exc", "conn_0_inh", "conn_1_exc", "conn_1_inh"}
    factor = pynn_weight_factor(d)
    assert factor == pytest.approx(32.0)
    for i, pr in enumerate(d.projections):
        s = d.synapses(pr)
        w = d.dequantised_weights(pr)
        for typ, tag in ((0, "exc"), (1, "inh")):
            conn = np.array(lists[f"conn_{i}_{tag}"])
            sel = s["type"] == typ
            assert len(conn) == sel.sum()
            pre, post = conn[:, 0].astype(int), conn[:, 1].astype(int)
            assert np.allclose(conn[:, 2], np.abs(w[post, pre]) * factor)
            assert np.array_equal(conn[:, 3], s["delay"][sel] * 1.0)
    times = next(ast.literal_eval(n.value) for n in ast.parse(script).body
                 if isinstance(n, ast.Assign) and n.targets[0].id == "spike_times_p_input")
    assert times == [[float(t) for t in np.flatnonzero(x[:, 0, j])] for j in range(20)]
    assert "receptor_type='inhibitory'" in script and "IF_curr_exp(v_rest=-65.0" in script
    with pytest.warns(UserWarning, match="subtractive"):
        to_pynn(lower(mlp(w1, w2, reset="subtract")))
