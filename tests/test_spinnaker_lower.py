"""The SpiNNaker-like target from graph to machine: presets, synaptic words, fixed point,
quantisation, lowering, partitioning across chips, routing, and graphs read from ``.nir`` files."""

from __future__ import annotations

import dataclasses

import nir
import numpy as np
import pytest
from spinnaker_helpers import deliver, mlp

from neurogate.errors import ConfigError, HardwareConstraintError
from neurogate.hw.spinnaker import (
    SPINNAKER1,
    SPINNAKER2,
    decode_words,
    encode_words,
    lower,
    simulate,
)
from neurogate.hw.spinnaker.quantise import (
    choose_shift,
    mul_s1615,
    quantise_magnitudes,
    to_s1615,
)


# ------------------------------------------------------------------ machine, words, quantisation
def test_machine_presets():
    assert SPINNAKER1.app_cores_per_chip == 17 and SPINNAKER1.n_chips == 48
    assert (SPINNAKER1.max_neurons_per_core, SPINNAKER1.max_row_length, SPINNAKER1.router_entries) == (256, 256, 1023)
    assert SPINNAKER1.dtcm_bytes == 65536 and SPINNAKER1.timestep_ms == 1.0 and SPINNAKER1.max_stages == 8
    assert SPINNAKER2.cores_per_chip == 152 and SPINNAKER2.weight_max == 127 and SPINNAKER2.router_entries == 16384
    assert dataclasses.replace(SPINNAKER1, boards=3).n_chips == 144


def test_word_layout_by_hand():
    word = encode_words(np.array([0x1234]), np.array([3]), np.array([1]), np.array([7]))
    # weight << 16 | (delay - 1) << 10 | type << 8 | index
    assert word.dtype == np.uint32 and int(word[0]) == 0x1234_0000 | (2 << 10) | (1 << 8) | 7
    rng = np.random.default_rng(1)
    w, d, t, i = rng.integers(0, 65536, 500), rng.integers(1, 17, 500), rng.integers(0, 2, 500), rng.integers(0, 256, 500)
    dec = decode_words(encode_words(w, d, t, i))
    assert all(np.array_equal(a, b) for a, b in zip((dec["weight"], dec["delay"], dec["type"], dec["index"]), (w, d, t, i)))
    assert not dec["spare"].any()
    with pytest.raises(ValueError, match="delay"):
        encode_words(np.array([1]), np.array([17]), np.array([0]), np.array([0]))


def test_fixed_point_by_hand():
    assert to_s1615(1.0) == 32768 and to_s1615(-0.5) == -16384 and to_s1615(2**-16) == 1  # half rounds away
    assert mul_s1615(np.array([3 * 32768]), np.array([16384])) == 3 * 16384  # 3 * 0.5 = 1.5
    assert mul_s1615(np.array([-1]), np.array([16384])) == -1  # arithmetic shift rounds towards -inf


def test_shift_choice_by_hand():
    # weights 3.0 and 1.5 nA into one neuron: shift 0 -> w_q = 98304 > 65535; shift 1 -> 49152 + 24576
    # = 73728 overflows the 16-bit ring buffer; shift 2 -> 24576 + 12288 = 36864 fits.
    mag, post = np.array([3.0, 1.5]), np.array([0, 0])
    assert choose_shift(mag, post, 1, 65535) == 2
    assert choose_shift(mag, np.array([0, 1]), 2, 65535) == 1  # different neurons: only w_q <= 65535
    assert choose_shift(mag, post, 1, 127) == 10  # int8 magnitudes: 3 * 2^(15-10) = 96 <= 127
    assert quantise_magnitudes(np.array([1e-5]), 2)[0] == 0  # 1e-5 * 2^13 = 0.08 underflows


# ------------------------------------------------------------------ lowering
def test_lower_feedforward(spinnaker_net):
    w1, w2, _ = spinnaker_net
    w1 = w1.copy()
    w1[0, :3] = [1e-9, -1e-9, 0.0]  # two underflows, one true zero
    with pytest.warns(UserWarning, match="input->lif1: 2 non-zero weights underflow"):
        d = lower(mlp(w1, w2))
    assert "2 underflowed to 0" in d.summary()
    pr = d.projections[0]
    assert (pr.pre, pr.post) == ("input", "lif1")
    assert pr.report["underflow_to_zero"] == 2
    assert pr.report["excitatory"] + pr.report["inhibitory"] == np.count_nonzero(w1) - 2
    s = d.synapses(pr)
    assert np.array_equal(s["type"] == 1, w1[s["post"], s["pre"]] < 0)  # sign from the receptor
    assert np.all(s["delay"] == 1)
    p = d.populations["lif1"]
    gain = p.v_scale * (1 / (1 - 0.9)) / p.params["tau_m"][0]  # s r / R nA per model unit
    lsb = 2.0 ** (max(p.shifts) - 15)
    assert np.abs(d.dequantised_weights(pr) - gain * w1).max() <= lsb / 2 + 1e-12
    assert p.params["v_thresh"][0] == pytest.approx(-50.0) and p.params["tau_m"][0] == pytest.approx(-1 / np.log(0.9))
    res = d.mapping["resources"]
    assert res["cores"] == 3 and res["chips"] == 1 and res["dtcm_bytes_max"] < SPINNAKER1.dtcm_bytes
    keys = d.mapping["keys"]
    assert len({k["id"] for k in keys.values()}) == 3
    table = d.mapping["routing"]["0,0"]
    assert all(e[1] == 0xFFFFFF00 for e in table) and len(table) == 2  # input and lif1 slices


@pytest.mark.filterwarnings("ignore:.*underflow")
def test_partition_and_routing_across_chips():
    rng = np.random.default_rng(2)
    w1, w2 = rng.normal(0, 0.2, (600, 40)), rng.normal(0, 0.2, (10, 600))
    d = lower(mlp(w1, w2), neurons_per_core=16)
    assert d.populations["lif1"].slice_sizes == [16] * 37 + [8]
    assert d.mapping["resources"]["chips"] == 3  # 1 input + 38 + 1 cores at 17 per chip
    cores = {(c["population"], c["slice"]): (tuple(c["chip"]), c["core"]) for c in d.mapping["placement"]}
    tables = d.mapping["routing"]
    for pop, targets in (("input", ["lif1"]), ("lif1", ["lif2"])):
        sid = d.mapping["keys"][pop]["id"]
        for s, _ in enumerate(d.populations[pop].slice_sizes):
            got = deliver(tables, cores[(pop, s)][0], (sid << 16) | (s << 8) | 5)
            want = {cores[(t, k)] for t in targets for k, _ in enumerate(d.populations[t].slice_sizes)}
            assert got == want
    assert d.mapping["resources"]["router_entries_max"] < 1023
    lens = np.diff(d.projections[0].row_offsets)
    assert lens.max() <= 16  # a row never spans more than one post slice
    small = dataclasses.replace(SPINNAKER1, router_entries=5)
    with pytest.raises(HardwareConstraintError, match="router entries"):
        lower(mlp(w1, w2), small, neurons_per_core=16)
    tiny = dataclasses.replace(SPINNAKER1, chip_grid=(1, 1))
    with pytest.raises(HardwareConstraintError, match="application cores"):
        lower(mlp(w1, w2), tiny, neurons_per_core=16)
    with pytest.raises(HardwareConstraintError, match="neurons per core"):
        lower(mlp(w1, w2), neurons_per_core=300)
    small_dtcm = dataclasses.replace(SPINNAKER1, dtcm_bytes=20 * 1024)
    with pytest.raises(HardwareConstraintError, match="lif1: DTCM") as err:
        lower(mlp(w1, w2), small_dtcm)
    assert "neurons_per_core" in err.value.fix
    assert lower(mlp(w1, w2), small_dtcm, neurons_per_core=64).mapping["resources"]["dtcm_bytes_max"] <= 20 * 1024


def test_unsupported_node_and_bad_delay(spinnaker_net):
    w1, w2, _ = spinnaker_net
    g = mlp(w1, w2)
    g.nodes["lif1"] = nir.CubaLIF(tau_syn=np.ones(30), tau_mem=np.ones(30), r=np.ones(30),
                                  v_leak=np.zeros(30), v_threshold=np.ones(30))
    with pytest.raises(HardwareConstraintError, match="lif1.*CubaLIF.*Affine, Linear") as err:
        lower(g)
    assert err.value.layer == "lif1"
    with pytest.raises(HardwareConstraintError, match="delay") as err:
        lower(mlp(w1, w2, delay=np.full(20, 150)))
    assert err.value.value == 151 and "Delay" in err.value.fix
    with pytest.raises(ConfigError, match="dt"):
        lower(nir.NIRGraph(nodes=g.nodes, edges=g.edges, metadata={}))


def test_shift_override(spinnaker_net):
    w1, w2, _ = spinnaker_net
    auto = lower(mlp(w1, w2)).populations["lif1"].shifts
    with pytest.raises(HardwareConstraintError, match="weight_shift >="):
        lower(mlp(w1, w2), weight_shift={"lif1": auto[0] - 1})
    coarse = lower(mlp(w1, w2), weight_shift={"lif1": (auto[0] + 3, auto[1] + 3)})
    assert coarse.populations["lif1"].shifts == [auto[0] + 3, auto[1] + 3]
    assert coarse.projections[0].report["max_abs_error_nA"] > lower(mlp(w1, w2)).projections[0].report["max_abs_error_nA"]


# ------------------------------------------------------------------ graphs from files
def test_graph_read_from_nir_file(spinnaker_net, tmp_path):
    w1, w2, x = spinnaker_net
    g = mlp(w1, w2, b1=np.full(30, 0.02), delay=np.arange(20))
    nir.write(tmp_path / "net.nir", g)
    a, b = lower(g), lower(nir.read(tmp_path / "net.nir"))
    assert all(np.array_equal(p.words, q.words) for p, q in zip(a.projections, b.projections))
    assert np.array_equal(simulate(a, x).spikes["lif2"], simulate(b, x).spikes["lif2"])
