r"""DVS emulator: turn a video into ON/OFF events from log-intensity changes, as ESIM and v2e do.

Model (one pixel; all pixels at once, vectorised). With :math:`L(t) = \ln(I(t) + \epsilon)` and
a per-pixel reference level :math:`L_{ref}` (initially :math:`L(t_0)`):

.. math::

    L(t) = L_k + \frac{t - t_k}{t_{k+1} - t_k}\,(L_{k+1} - L_k),
    \qquad t_k \le t \le t_{k+1}

(the log intensity is linearly interpolated between frames). Each time :math:`L(t)` reaches
:math:`L_{ref} + C_{on}` the pixel emits an ON event (``p = 1``) and :math:`L_{ref} \mathrel{+}=
C_{on}`; each time it reaches :math:`L_{ref} - C_{off}` it emits an OFF event (``p = 0``) and
:math:`L_{ref} \mathrel{-}= C_{off}`. A change of :math:`\Delta L` therefore gives
:math:`\lfloor \Delta L / C \rfloor` events, the j-th at the interpolated crossing time

.. math::

    t_j = t_k + \frac{L_{ref} \pm j C - L_k}{L_{k+1} - L_k}\,(t_{k+1} - t_k),

rounded to the nearest microsecond. Refractory period :math:`R`: an event that comes less than
:math:`R` µs after the previous *emitted* event of the same pixel is dropped, but the reference
still moves by one threshold for it (in a real DVS pixel the reset is held during the refractory
period, so a change that happens during it is lost, not postponed). Optional per-pixel threshold
mismatch draws :math:`C \sim \mathcal{N}(C, \sigma^2)` per pixel (truncated at :math:`C/10`), and
optional shot noise adds, per pixel, Poisson-distributed events (``noise_rate`` per second) at
uniform times with random polarity; noise events neither move the reference nor count for the
refractory period.

Example:
    >>> t = np.array([0, 1000])
    >>> video = np.array([0.1, 0.9]).reshape(2, 1, 1)          # one pixel brightening
    >>> ev = emulate_dvs(video, t, contrast_threshold=0.2, log_eps=0.0)
    >>> len(ev), bool(ev["p"].all())                           # floor(ln 9 / 0.2) ON events
    (10, True)
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError, DTypeError, ShapeError, ValueRangeError
from .events import VISION_DTYPE

__all__ = [
    "emulate_dvs",
    "emulate_dvs_arrays",
    "nmnist_saccades",
    "shift_images",
    "still_image_to_video",
]

Threshold = float | tuple[float, float]

# np.log may differ in the last ulp between its SIMD and scalar paths (i.e. between machines);
# snapping the 256-entry table of a uint8 video to a 2**-24 grid makes uint8 videos emulate
# bit-identically everywhere. The snap is far below any contrast threshold.
_LOG_GRID = 2.0**24


def emulate_dvs(
    frames: np.ndarray,
    timestamps: np.ndarray,
    *,
    contrast_threshold: Threshold = 0.2,
    threshold_sigma: float = 0.0,
    refractory_period: int = 0,
    log_eps: float = 1e-3,
    noise_rate: float = 0.0,
    seed: int | None = None,
) -> np.ndarray:
    """Convert a video into DVS events (see the module docstring for the equations).

    Args:
        frames: ``[N, H, W]`` intensities, float in ``[0, 1]`` (any finite value >= 0 works) or
            uint8 (read as ``value / 255``).
        timestamps: ``[N]`` frame times in microseconds, strictly increasing.
        contrast_threshold: ``C`` in log-intensity units, or ``(C_on, C_off)``; each > 0.
        threshold_sigma: standard deviation of the per-pixel threshold mismatch (0: none).
        refractory_period: per-pixel dead time in microseconds after an emitted event.
        log_eps: ``epsilon`` in ``ln(I + epsilon)``; 0 is allowed when no intensity is 0.
        noise_rate: shot-noise events per pixel per second (0: none).
        seed: seeds the mismatch and noise draws; the emulation itself is deterministic.

    Returns:
        Structured array of :data:`~neurogate.data.events.VISION_DTYPE` (tonic's field names and
        types: ``t`` int64 µs, ``x, y`` int16, ``p`` bool), sorted by ``t``.

    Example:
        >>> video, t = still_image_to_video(np.eye(8), nmnist_saccades(amplitude=1.0))
        >>> events = emulate_dvs(video, t, contrast_threshold=(0.2, 0.25), refractory_period=500)
    """
    x, y, t, p = emulate_dvs_arrays(
        frames, timestamps, contrast_threshold=contrast_threshold,
        threshold_sigma=threshold_sigma, refractory_period=refractory_period,
        log_eps=log_eps, noise_rate=noise_rate, seed=seed,
    )
    height, width = np.shape(frames)[1:]
    if height > 32767 or width > 32767:
        raise ShapeError(
            f"emulate_dvs: frames of {height}x{width} do not fit int16 x/y; use emulate_dvs_arrays"
        )
    events = np.empty(len(t), dtype=VISION_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x, y, t, p
    return events


def emulate_dvs_arrays(
    frames: np.ndarray,
    timestamps: np.ndarray,
    *,
    contrast_threshold: Threshold = 0.2,
    threshold_sigma: float = 0.0,
    refractory_period: int = 0,
    log_eps: float = 1e-3,
    noise_rate: float = 0.0,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`emulate_dvs` returning plain ``(x, y, t, p)`` int64 arrays (no 32767-pixel limit)."""
    frames = np.asarray(frames)
    stamps = _check_inputs(frames, timestamps, log_eps)
    c_on, c_off = _check_thresholds(contrast_threshold)
    options = {"threshold_sigma": threshold_sigma, "refractory_period": refractory_period,
               "noise_rate": noise_rate}
    for name, value in options.items():
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"emulate_dvs: {name} must be a finite number >= 0, got {value}")
    _, height, width = frames.shape
    n_pix = height * width
    rng = np.random.default_rng(seed)
    step_on = _pixel_thresholds(c_on, threshold_sigma, n_pix, rng)
    step_off = _pixel_thresholds(c_off, threshold_sigma, n_pix, rng)
    log_frame = _log_reader(frames, log_eps)

    level_prev = log_frame(0)
    reference = level_prev.copy()
    last_emitted = np.full(n_pix, np.iinfo(np.int64).min // 2, dtype=np.int64)
    chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for k in range(1, len(frames)):
        level = log_frame(k)
        chunk = _crossings(level_prev, level, reference, step_on, step_off,
                           float(stamps[k - 1]), float(stamps[k]))
        if refractory_period > 0 and len(chunk[0]):
            chunk = _refractory(chunk, last_emitted, int(refractory_period))
        chunks.append(chunk)
        level_prev = level
    if noise_rate > 0:
        chunks.append(_shot_noise(n_pix, noise_rate, int(stamps[0]), int(stamps[-1]), rng))

    pix = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros(0, np.int64)
    t = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros(0, np.int64)
    p = np.concatenate([c[2] for c in chunks]) if chunks else np.zeros(0, np.int64)
    order = np.argsort(t, kind="stable")
    pix, t, p = pix[order], t[order], p[order]
    return pix % width, pix // width, t, p


def still_image_to_video(
    image: np.ndarray,
    path: np.ndarray,
    *,
    canvas: tuple[int, int] | None = None,
    fill: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Move a still image along a path of sub-pixel shifts (bilinear interpolation).

    Frame ``k`` is the image, centred on a ``canvas = (H_out, W_out)`` grid (default: the image's
    own size) and translated by ``(dx_k, dy_k)`` pixels (``+dx`` moves the content right, ``+dy``
    down): ``frame_k[Y, X] = image(Y - oy - dy_k, X - ox - dx_k)`` with ``(oy, ox)`` the centring
    offset, sampled bilinearly; outside the image the value is ``fill``.

    Args:
        image: ``[H, W]`` intensities (float or uint8).
        path: ``[N, 3]`` rows ``(dx, dy, t)``, ``t`` in microseconds (e.g. :func:`nmnist_saccades`).

    Returns:
        ``(frames [N, H_out, W_out] float64, timestamps [N] int64)``, ready for :func:`emulate_dvs`.

    Example:
        >>> frames, t = still_image_to_video(np.ones((28, 28)), nmnist_saccades(), canvas=(34, 34))
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ShapeError(f"still_image_to_video: image must be [H, W], got shape {image.shape}")
    frames = shift_images(image[None], path, canvas=canvas, fill=fill)[:, 0]
    return frames, np.rint(np.asarray(path, dtype=np.float64)[:, 2]).astype(np.int64)


def shift_images(
    images: np.ndarray,
    path: np.ndarray,
    *,
    canvas: tuple[int, int] | None = None,
    fill: float = 0.0,
) -> np.ndarray:
    """Batched :func:`still_image_to_video` frames: ``[B, H, W]`` -> ``[N, B, H_out, W_out]``.

    Uses only elementwise arithmetic (no BLAS), so the result is bit-identical on every machine.
    """
    images = np.asarray(images, dtype=np.float64)
    path = np.asarray(path, dtype=np.float64)
    if images.ndim != 3:
        raise ShapeError(f"shift_images: images must be [B, H, W], got shape {images.shape}")
    if path.ndim != 2 or path.shape[1] != 3 or len(path) < 1:
        raise ShapeError(f"path must be [N, 3] rows (dx, dy, t), got shape {path.shape}")
    if not np.isfinite(path).all():
        raise ValueRangeError("path holds NaN or inf; every (dx, dy, t) must be finite")
    _, height, width = images.shape
    out_h, out_w = canvas if canvas is not None else (height, width)
    # source coordinate of output pixel (Y, X) is (Y + sy, X + sx)
    sy = -((out_h - height) / 2.0 + path[:, 1])
    sx = -((out_w - width) / 2.0 + path[:, 0])
    iy, ix = np.floor(sy).astype(np.int64), np.floor(sx).astype(np.int64)
    fy, fx = sy - iy, sx - ix
    pad_y = int(max(0, -iy.min(), iy.max() + 1 + out_h - height))
    pad_x = int(max(0, -ix.min(), ix.max() + 1 + out_w - width))
    padded = np.pad(images, ((0, 0), (pad_y, pad_y), (pad_x, pad_x)), constant_values=fill)
    out = np.empty((len(path), len(images), out_h, out_w), dtype=np.float64)
    for k in range(len(path)):
        r, c = int(iy[k]) + pad_y, int(ix[k]) + pad_x
        rows0, rows1 = padded[:, r:r + out_h], padded[:, r + 1:r + 1 + out_h]
        left, right = slice(c, c + out_w), slice(c + 1, c + 1 + out_w)
        top = rows0[:, :, left] * (1.0 - fx[k]) + rows0[:, :, right] * fx[k]
        bot = rows1[:, :, left] * (1.0 - fx[k]) + rows1[:, :, right] * fx[k]
        out[k] = top * (1.0 - fy[k]) + bot * fy[k]
    return out


def nmnist_saccades(
    amplitude: float = 3.0, saccade_duration: int = 100_000, steps_per_saccade: int = 25
) -> np.ndarray:
    """N-MNIST's three-saccade motion as a path of ``(dx, dy, t)`` points.

    Orchard et al. (2015) recorded N-MNIST by moving an ATIS sensor on a pan-tilt unit in three
    saccades of about 100 ms each along a triangle, back to the start (about 300 ms per sample);
    28x28 digits moving this way fill the 34x34 recordings. Here the image moves at constant speed
    along the triangle ``(0, 0) -> (a, a) -> (-a, a) -> (0, 0)`` (down-right, left, up-right),
    shifted so that ``dx`` spans ``[-a, a]`` and ``dy`` spans ``[-a/2, a/2]``. The exact amplitudes
    and speed profile of the pan-tilt unit are approximated, not reproduced.

    Returns:
        ``[3 * steps_per_saccade + 1, 3]`` float64 rows ``(dx, dy, t)``, ``t`` in µs from 0.

    Example:
        >>> path = nmnist_saccades()
        >>> path.shape, float(path[-1, 2])
        ((76, 3), 300000.0)
    """
    if steps_per_saccade < 1 or saccade_duration <= 0 or not math.isfinite(amplitude):
        raise ConfigError(
            f"nmnist_saccades: need steps_per_saccade >= 1 and saccade_duration > 0, got "
            f"{steps_per_saccade} and {saccade_duration} (amplitude {amplitude})"
        )
    a = float(amplitude)
    corners = np.array([[0.0, 0.0], [a, a], [-a, a], [0.0, 0.0]]) - np.array([0.0, a / 2.0])
    frac = np.arange(steps_per_saccade) / steps_per_saccade
    pts = [corners[s] + frac[:, None] * (corners[s + 1] - corners[s]) for s in range(3)]
    xy = np.concatenate(pts + [corners[3:]])
    t = np.arange(len(xy)) * (saccade_duration / steps_per_saccade)
    return np.column_stack([xy, t])


# ----------------------------------------------------------------------------------- helpers


def _check_inputs(frames: np.ndarray, timestamps: np.ndarray, log_eps: float) -> np.ndarray:
    if frames.ndim != 3:
        raise ShapeError(f"emulate_dvs: frames must be a video [N, H, W], got shape {frames.shape}")
    if len(frames) < 2:
        raise ShapeError(f"emulate_dvs: need at least 2 frames to see a change, got {len(frames)}")
    if frames.dtype != np.uint8 and not np.issubdtype(frames.dtype, np.floating):
        raise DTypeError(
            f"emulate_dvs: frames must be float intensities or uint8, got {frames.dtype}"
        )
    stamps = np.asarray(timestamps)
    if stamps.shape != (len(frames),):
        raise ShapeError(
            f"emulate_dvs: timestamps must be [N] = [{len(frames)}] (one per frame), "
            f"got {stamps.shape}"
        )
    if not np.issubdtype(stamps.dtype, np.number) or not np.isfinite(stamps).all():
        raise ValueRangeError("emulate_dvs: timestamps must be finite numbers (microseconds)")
    if (np.diff(stamps) <= 0).any():
        k = int(np.flatnonzero(np.diff(stamps) <= 0)[0])
        raise ValueRangeError(
            f"emulate_dvs: timestamps must be strictly increasing, but t[{k}] = {stamps[k]} and "
            f"t[{k + 1}] = {stamps[k + 1]}; sort the frames or drop duplicates"
        )
    if not math.isfinite(log_eps) or log_eps < 0:
        raise ConfigError(f"emulate_dvs: log_eps must be a finite number >= 0, got {log_eps}")
    if frames.dtype != np.uint8:
        if not np.isfinite(frames).all():
            raise ValueRangeError("emulate_dvs: frames hold NaN or inf; intensities must be finite")
        if frames.min() < 0:
            raise ValueRangeError(
                f"emulate_dvs: intensities must be >= 0, got min {frames.min()}; rescale the video "
                "to [0, 1]"
            )
    if log_eps == 0 and (frames == 0).any():
        raise ValueRangeError(
            "emulate_dvs: log_eps=0 with zero intensities gives log(0); use log_eps > 0"
        )
    return stamps.astype(np.float64)


def _check_thresholds(contrast_threshold: Threshold) -> tuple[float, float]:
    pair = contrast_threshold
    if not isinstance(pair, (tuple, list)):
        pair = (pair, pair)
    if len(pair) != 2:
        raise ConfigError(
            f"contrast_threshold must be C or (C_on, C_off), got {contrast_threshold!r}"
        )
    c_on, c_off = (float(c) for c in pair)
    if not (math.isfinite(c_on) and math.isfinite(c_off) and c_on > 0 and c_off > 0):
        raise ConfigError(
            "contrast_threshold must be > 0 in log-intensity units (e.g. 0.2), "
            f"got ON {c_on}, OFF {c_off}"
        )
    return c_on, c_off


def _pixel_thresholds(c: float, sigma: float, n_pix: int, rng: np.random.Generator) -> np.ndarray:
    if sigma == 0:
        return np.full(n_pix, c)
    return np.maximum(rng.normal(c, sigma, n_pix), c / 10.0)


def _log_reader(frames: np.ndarray, log_eps: float):
    """Return ``k -> ln(I_k + eps)`` flattened, computed one frame at a time (memory: one frame)."""
    if frames.dtype == np.uint8:
        with np.errstate(divide="ignore"):
            table = np.log(np.arange(256) / 255.0 + log_eps)
        table = np.where(np.isfinite(table), np.round(table * _LOG_GRID) / _LOG_GRID, table)
        return lambda k: table[frames[k].ravel()]
    return lambda k: np.log(frames[k].astype(np.float64).ravel() + log_eps)


def _crossings(
    level_prev: np.ndarray, level: np.ndarray, reference: np.ndarray,
    step_on: np.ndarray, step_off: np.ndarray, t0: float, t1: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events of one frame interval (pixel, t, p), and move ``reference`` in place."""
    n_on = np.floor((level - reference) / step_on)
    n_off = np.floor((reference - level) / step_off)
    count = np.maximum(n_on, 0) + np.maximum(n_off, 0)  # L is monotone in an interval: one polarity
    idx = np.flatnonzero(count > 0)
    if len(idx) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    n = count[idx].astype(np.int64)
    on = n_on[idx] > 0
    step = np.where(on, step_on[idx], -step_off[idx])
    rep = np.repeat(np.arange(len(idx)), n)
    j = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + 1).astype(np.float64)
    slope = level[idx] - level_prev[idx]
    slope = np.where(slope == 0, 1.0, slope)  # only reachable through rounding; event at t0
    crossing = reference[idx][rep] + j * step[rep]
    frac = np.clip((crossing - level_prev[idx][rep]) / slope[rep], 0.0, 1.0)
    t = np.rint(t0 + frac * (t1 - t0)).astype(np.int64)
    reference[idx] = reference[idx] + n * step
    return idx[rep], t, on[rep].astype(np.int64)


def _refractory(
    chunk: tuple[np.ndarray, np.ndarray, np.ndarray], last_emitted: np.ndarray, period: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop events within ``period`` µs of their pixel's last emitted event.

    Updates ``last_emitted`` in place.
    """
    pix, t, p = chunk
    # events come grouped by pixel, in time order; rank = position within the pixel's group
    start = np.flatnonzero(np.r_[True, pix[1:] != pix[:-1]])
    rank = np.arange(len(pix)) - np.repeat(start, np.diff(np.r_[start, len(pix)]))
    keep = np.zeros(len(pix), dtype=bool)
    for r in range(int(rank.max()) + 1):
        sel = np.flatnonzero(rank == r)
        ok = t[sel] - last_emitted[pix[sel]] >= period
        keep[sel[ok]] = True
        last_emitted[pix[sel[ok]]] = t[sel[ok]]
    return pix[keep], t[keep], p[keep]


def _shot_noise(
    n_pix: int, rate: float, t_start: int, t_end: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    counts = rng.poisson(rate * (t_end - t_start) * 1e-6, n_pix)
    pix = np.repeat(np.arange(n_pix), counts)
    t = np.rint(t_start + rng.random(len(pix)) * (t_end - t_start)).astype(np.int64)
    p = (rng.random(len(pix)) < 0.5).astype(np.int64)
    return pix, t, p
