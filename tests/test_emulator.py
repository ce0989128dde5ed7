"""DVS emulator: hand-computed crossing counts and times, refractory, thresholds, seeds, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neurogate.data.emulator import (
    emulate_dvs,
    nmnist_saccades,
    shift_images,
    still_image_to_video,
)
from neurogate.data.events import VISION_DTYPE
from neurogate.errors import ConfigError, DTypeError, ShapeError, ValueRangeError

T = np.array([0, 1000])


def pixel(*intensities: float) -> np.ndarray:
    """A one-pixel video [N, 1, 1]."""
    return np.array(intensities, dtype=np.float64).reshape(-1, 1, 1)


def test_brightening_pixel_gives_floor_log_ratio_on_events_at_crossing_times():
    i0, i1, c = 0.1, 0.9, 0.2
    ev = emulate_dvs(pixel(i0, i1), T, contrast_threshold=c, log_eps=0.0)
    n = math.floor(math.log(i1 / i0) / c)
    assert n == 10 and len(ev) == n
    assert ev.dtype == VISION_DTYPE
    assert ev["p"].all() and (ev["x"] == 0).all() and (ev["y"] == 0).all()
    # log intensity is interpolated linearly between frames: level j*C is reached at j*C / ln(I1/I0)
    expected = [round(1000 * j * c / math.log(i1 / i0)) for j in range(1, n + 1)]
    assert ev["t"].tolist() == expected


def test_linear_intensity_ramp_sampled_densely_matches_continuous_crossings():
    i0, i1, c, duration = 0.2, 0.8, 0.15, 100_000
    t = np.arange(0, duration + 1, 100)
    video = (i0 + (i1 - i0) * t / duration).reshape(-1, 1, 1)
    ev = emulate_dvs(video, t, contrast_threshold=c, log_eps=0.0)
    n = math.floor(math.log(i1 / i0) / c)
    # I(t) = I0 + (I1 - I0) t / D crosses ln I0 + j C at t_j = D (I0 e^{jC} - I0) / (I1 - I0)
    j = np.arange(1, n + 1)
    expected = duration * i0 * (np.exp(j * c) - 1) / (i1 - i0)
    assert len(ev) == n
    assert np.abs(ev["t"] - expected).max() <= 2  # log-linear within each 100 us step


def test_darkening_pixel_gives_off_events():
    ev = emulate_dvs(pixel(0.8, 0.1), T, contrast_threshold=0.25, log_eps=0.0)
    assert len(ev) == math.floor(math.log(8) / 0.25) == 8
    assert not ev["p"].any()
    expected = [round(1000 * j * 0.25 / math.log(8)) for j in range(1, 9)]
    assert ev["t"].tolist() == expected


def test_no_change_gives_no_events():
    video = np.full((5, 4, 3), 0.37)
    assert len(emulate_dvs(video, np.arange(5) * 10)) == 0
    # a change below one threshold: still nothing
    assert len(emulate_dvs(pixel(0.5, 0.5 * math.exp(0.19)), T, contrast_threshold=0.2)) == 0


def test_sub_threshold_changes_accumulate_against_the_reference():
    # each step is 0.15 in log units, below C = 0.2; the reference stays, so the 2nd step fires
    video = pixel(*(0.1 * math.exp(0.15 * k) for k in range(4)))
    ev = emulate_dvs(video, np.arange(4) * 1000, contrast_threshold=0.2, log_eps=0.0)
    assert len(ev) == math.floor(0.45 / 0.2) == 2
    # level 0.2 is reached a third of the way into the second step, 0.4 two thirds into the third
    assert ev["t"].tolist() == [round(1000 + 1000 / 3), round(2000 + 2000 / 3)]


def test_thresholds_per_polarity():
    video = pixel(0.1, 0.9, 0.1)  # up ln 9 = 2.197, then down ln 9
    ev = emulate_dvs(video, np.array([0, 1000, 2000]), contrast_threshold=(0.2, 0.45), log_eps=0.0)
    on, off = ev["p"], ~ev["p"]
    assert on.sum() == 10  # floor(2.197 / 0.2); the reference ends 2.0 above ln 0.1
    assert off.sum() == 4  # going back to ln 0.1 drops 2.0 below the reference: floor(2.0 / 0.45)
    assert (ev["t"][on] <= 1000).all() and (ev["t"][off] > 1000).all()
    ln9 = math.log(9)  # OFF level k is reached (ln9 - 2.0 + 0.45 k) / ln9 into the second interval
    expected = [round(1000 + 1000 * (ln9 - 2 + 0.45 * k) / ln9) for k in range(1, 5)]
    assert ev["t"][off].tolist() == expected


def test_multiple_events_for_large_changes_in_several_pixels_equal_per_pixel_emulation():
    rng = np.random.default_rng(3)
    video = rng.uniform(0.0, 1.0, size=(6, 3, 4))
    t = np.array([0, 70, 200, 350, 351, 900])
    kw = {"contrast_threshold": (0.15, 0.22), "log_eps": 0.01, "refractory_period": 40}
    ev = emulate_dvs(video, t, **kw)
    assert (np.diff(ev["t"]) >= 0).all()
    for yy in range(3):
        for xx in range(4):
            mine = ev[(ev["x"] == xx) & (ev["y"] == yy)]
            alone = emulate_dvs(video[:, yy:yy + 1, xx:xx + 1], t, **kw)
            assert mine["t"].tolist() == alone["t"].tolist()
            assert mine["p"].tolist() == alone["p"].tolist()


def greedy_dead_time(times: np.ndarray, period: int) -> list[int]:
    kept, last = [], -(10**9)
    for t in times:
        if t - last >= period:
            kept.append(int(t))
            last = t
    return kept


def test_refractory_period_drops_events_but_reference_still_moves():
    c, r = 0.2, 200
    ev_all = emulate_dvs(pixel(0.1, 0.9), T, contrast_threshold=c, log_eps=0.0)
    ev = emulate_dvs(pixel(0.1, 0.9), T, contrast_threshold=c, log_eps=0.0, refractory_period=r)
    assert ev_all["t"].tolist()[:4] == [91, 182, 273, 364]
    assert ev["t"].tolist() == greedy_dead_time(ev_all["t"], r) == [91, 364, 637, 910]
    # the 6 suppressed crossings still moved the reference: holding the level for 4 ms gives no
    # late ON events (a postponing emulator would emit them at t = 1000 + r)
    video = pixel(0.1, 0.9, 0.9, 0.09)
    t = np.array([0, 1000, 5000, 6000])
    free = emulate_dvs(video, t, contrast_threshold=c, log_eps=0.0)
    dead = emulate_dvs(video, t, contrast_threshold=c, log_eps=0.0, refractory_period=r)
    assert free["p"].sum() == 10 and (~free["p"]).sum() == 10  # floor((2.0 + ln(10/9)) / 0.2)
    assert dead["t"][dead["p"]].tolist() == [91, 364, 637, 910]
    assert dead["t"][~dead["p"]].tolist() == greedy_dead_time(free["t"][~free["p"]], r)
    assert len(dead) == 8


def test_refractory_period_spans_frame_intervals():
    # one event per interval, 100 us apart; a 250 us dead time keeps every third
    video = pixel(*(0.1 * math.exp(0.21 * k) for k in range(10)))
    t = np.arange(10) * 100
    ev = emulate_dvs(video, t, contrast_threshold=0.2, log_eps=0.0)
    ev_r = emulate_dvs(video, t, contrast_threshold=0.2, log_eps=0.0, refractory_period=250)
    assert len(ev) == 9
    assert ev_r["t"].tolist() == ev["t"][::3].tolist()


def test_uint8_video_reads_as_value_over_255():
    video = np.array([20, 200], dtype=np.uint8).reshape(2, 1, 1)
    ev8 = emulate_dvs(video, T, contrast_threshold=0.2, log_eps=0.05)
    evf = emulate_dvs(video / 255.0, T, contrast_threshold=0.2, log_eps=0.05)
    assert ev8.tolist() == evf.tolist() and len(ev8) == math.floor(
        math.log((200 / 255 + 0.05) / (20 / 255 + 0.05)) / 0.2)


def test_noise_off_is_deterministic_and_seeds_reproduce_noise_and_mismatch():
    rng = np.random.default_rng(0)
    video = rng.uniform(0.1, 1.0, size=(8, 6, 5))
    t = np.arange(8) * 10_000
    assert emulate_dvs(video, t).tolist() == emulate_dvs(video, t).tolist()
    kw = {"noise_rate": 50.0, "threshold_sigma": 0.05}
    a, b = emulate_dvs(video, t, seed=7, **kw), emulate_dvs(video, t, seed=7, **kw)
    c = emulate_dvs(video, t, seed=8, **kw)
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()
    assert (np.diff(a["t"]) >= 0).all() and len(a) > len(emulate_dvs(video, t))


def test_shot_noise_rate_and_range():
    video = np.full((2, 20, 20), 0.5)
    ev = emulate_dvs(video, np.array([0, 1_000_000]), noise_rate=5.0, seed=1)
    assert 0.8 * 2000 < len(ev) < 1.2 * 2000  # 400 pixels x 5 Hz x 1 s
    assert ev["t"].min() >= 0 and ev["t"].max() <= 1_000_000
    assert 0.4 < ev["p"].mean() < 0.6


@pytest.mark.parametrize(
    ("frames", "t", "kw", "error", "words"),
    [
        (np.zeros((4, 4)), np.arange(4), {}, ShapeError, "[N, H, W]"),
        (pixel(0.5), np.array([0]), {}, ShapeError, "at least 2 frames"),
        (pixel(0.5, 0.6), np.array([0, 1, 2]), {}, ShapeError, "one per frame"),
        (pixel(0.5, -0.1), T, {}, ValueRangeError, ">= 0"),
        (pixel(0.5, np.nan), T, {}, ValueRangeError, "finite"),
        (pixel(0.5, 0.6, 0.7), np.array([0, 10, 10]), {}, ValueRangeError, "strictly increasing"),
        (pixel(0.5, 0.6), np.array([5, 1]), {}, ValueRangeError, "strictly increasing"),
        (pixel(0.5, 0.6), T, {"contrast_threshold": 0.0}, ConfigError, "contrast_threshold"),
        (pixel(0.5, 0.6), T, {"contrast_threshold": (0.2, -1)}, ConfigError, "contrast_threshold"),
        (pixel(0.5, 0.6), T, {"contrast_threshold": (0.1, 0.2, 0.3)}, ConfigError, "C_on"),
        (pixel(0.5, 0.6), T, {"refractory_period": -1}, ConfigError, "refractory_period"),
        (pixel(0.5, 0.6), T, {"noise_rate": -2.0}, ConfigError, "noise_rate"),
        (pixel(0.5, 0.6), T, {"log_eps": -1e-3}, ConfigError, "log_eps"),
        (pixel(0.0, 0.6), T, {"log_eps": 0.0}, ValueRangeError, "log(0)"),
        (np.zeros((2, 1, 1), dtype=np.int32), T, {}, DTypeError, "uint8"),
    ],
)
def test_bad_input_raises_clear_neurogate_errors(frames, t, kw, error, words):
    with pytest.raises(error, match=None) as info:
        emulate_dvs(frames, t, **kw)
    assert words in str(info.value)


def test_nmnist_saccades_is_a_closed_triangle_of_three_100ms_saccades():
    path = nmnist_saccades(amplitude=3.0, steps_per_saccade=10)
    assert path.shape == (31, 3)
    assert path[0, 2] == 0 and path[-1, 2] == 300_000
    assert np.allclose(path[0, :2], path[-1, :2])
    corners = path[[0, 10, 20, 30], :2]
    assert np.allclose(corners, [[0, -1.5], [3, 1.5], [-3, 1.5], [0, -1.5]])
    assert path[:, 0].min() == -3 and path[:, 0].max() == 3
    assert np.allclose(np.diff(path[:, 2]), 10_000)


def test_still_image_to_video_shifts_bilinearly():
    image = np.arange(16, dtype=np.float64).reshape(4, 4)
    path = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 10.0], [0.5, 0.0, 20.0], [0.0, -1.0, 30.0]])
    frames, t = still_image_to_video(image, path)
    assert frames.shape == (4, 4, 4) and t.tolist() == [0, 10, 20, 30]
    assert np.array_equal(frames[0], image)
    assert np.array_equal(frames[1][:, 1:], image[:, :-1]) and (frames[1][:, 0] == 0).all()
    assert np.allclose(frames[2][:, 1:], (image[:, :-1] + image[:, 1:]) / 2)
    assert np.array_equal(frames[3][:-1], image[1:]) and (frames[3][-1] == 0).all()
    # centred on a larger canvas, with a fill value
    framed, _ = still_image_to_video(image, path[:1], canvas=(6, 8), fill=-1.0)
    assert np.array_equal(framed[0][1:5, 2:6], image) and (framed[0][0] == -1).all()


def test_shift_images_batches_like_single_images():
    rng = np.random.default_rng(1)
    images = rng.uniform(size=(3, 5, 6))
    path = nmnist_saccades(amplitude=1.3, steps_per_saccade=4)
    batched = shift_images(images, path, canvas=(9, 8))
    for b in range(3):
        single, _ = still_image_to_video(images[b], path, canvas=(9, 8))
        assert np.array_equal(batched[:, b], single)


def test_moving_image_gives_both_polarities_sorted():
    image = np.zeros((10, 10))
    image[3:7, 3:7] = 1.0
    frames, t = still_image_to_video(image, nmnist_saccades(amplitude=1.0, steps_per_saccade=8),
                                     canvas=(12, 12))
    ev = emulate_dvs(frames, t, contrast_threshold=0.3, log_eps=0.1)
    assert ev["p"].any() and (~ev["p"]).any()
    assert (np.diff(ev["t"]) >= 0).all()
    assert ev["x"].max() < 12 and ev["y"].max() < 12
