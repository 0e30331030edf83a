"""Forward-process noise for the diffusion model: fractal 2D OpenSimplex noise (docs/METHOD.md §4.5, D3) or Gaussian.

The method noises a slice with an *unnormalised* sum of OpenSimplex octaves,

    field[y, x] = sum_{o=0}^{octaves-1} persistence^o * S(x / f_o, y / f_o),    f_o = feature_size / 2^o,

where ``S`` is the 2D noise of PyPI ``opensimplex`` 0.4.5.1 after ``opensimplex.seed(seed)``, ``y`` is the row
index and ``x`` the column index of the (rows, cols) slice, both in pixels of the model grid. With the defaults
(6 octaves, persistence 0.8, feature size 64 px) a 96 × 96 field has mean ≈ 0.03, std ≈ 0.6 and range ≈ ±2.2.

Why this module re-implements OpenSimplex instead of calling the ``opensimplex`` package: without numba (which
is deliberately not a dependency) ``opensimplex.noise2array`` evaluates every point in a Python loop and costs
≈ 350 ms per 96 × 96 field, far too slow for a training loop that needs a fresh field every step. The functions
below evaluate the same algorithm (same seed → permutation table, same 8 gradients, same four lattice
contributions per point, same floating-point operation order) with numpy array operations over thousands of points
at a time, which reproduces ``opensimplex`` to the last bit. The seed-independent part (which lattice vertices touch
which pixel, and their weights) is cached per grid size, so a fresh 96 × 96 field costs ≈ 1.5 ms
(benchmarks/bench_noise.py).
The test suite checks the equality against the installed ``opensimplex``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from ..config import NoiseConfig

# OpenSimplex 2D constants (opensimplex 0.4.5.1, constants.py), written out so the numbers are visible here.
_STRETCH_2D = -0.211324865405187  # (1 / sqrt(3) - 1) / 2: maps input space onto the rhombus lattice
_SQUISH_2D = 0.366025403784439  # (sqrt(3) - 1) / 2: maps lattice points back onto input space
_NORM_2D = 47  # divisor that brings the sum of contributions to roughly [-1, 1]
# The 8 gradient vectors (gx, gy) approximating the directions to the vertices of an octagon.
_GRADIENTS_2D = np.array([[5, 2], [2, 5], [-5, 2], [-2, 5], [5, -2], [2, -5], [-5, -2], [-2, -5]], dtype=np.int64)

# The 64-bit linear congruential generator opensimplex uses to turn a seed into a permutation.
_LCG_MULTIPLIER = 6364136223846793005
_LCG_INCREMENT = 1442695040888963407
_TABLE_SIZE = 256


def _vertex_cases() -> np.ndarray:
    """The four lattice vertices that contribute to a point, for each of opensimplex's 8 branch cases.

    Returns int64 (8 cases, 4 vertices, 2) offsets (i, j) from the point's rhombus origin, in lattice units and in
    the order opensimplex adds the contributions: (1, 0), (0, 1), the corner of the point's own triangle, and the
    extra vertex. Case = 4 * lower + 2 * origin_is_close + x_beyond_y, where ``lower`` means the point is in the
    triangle at (0, 0) (else the one at (1, 1)), ``origin_is_close`` is opensimplex's test of the third barycentric
    coordinate against the other two, and ``x_beyond_y`` is xins > yins.
    """
    cases = np.zeros((8, 4, 2), dtype=np.int64)
    cases[:, 0] = (1, 0)
    cases[:, 1] = (0, 1)
    cases[0:4, 2] = (1, 1)  # upper triangle: corner (1, 1); extra (0, 0), or (0, 2) / (2, 0) when origin is close
    cases[0:2, 3] = (0, 0)
    cases[2, 3] = (0, 2)
    cases[3, 3] = (2, 0)
    cases[4:8, 2] = (0, 0)  # lower triangle: corner (0, 0); extra (1, 1), or (-1, 1) / (1, -1) when origin is close
    cases[4:6, 3] = (1, 1)
    cases[6, 3] = (-1, 1)
    cases[7, 3] = (1, -1)
    return cases


# Lookup tables (4 vertices, 8 cases) derived from _vertex_cases, so the per-point work is array gathers.
_VERTEX_I = np.ascontiguousarray(_vertex_cases()[:, :, 0].T).astype(np.intp)
_VERTEX_J = np.ascontiguousarray(_vertex_cases()[:, :, 1].T).astype(np.intp)
_VERTEX_I_FLOAT = _VERTEX_I.astype(np.float64)
_VERTEX_J_FLOAT = _VERTEX_J.astype(np.float64)
_VERTEX_SQUISH = (_VERTEX_I_FLOAT + _VERTEX_J_FLOAT) * _SQUISH_2D
# Points per vectorised chunk. The (4, chunk) float64 temporaries are then 64 KiB: they stay in the CPU cache and
# below glibc's 128 KiB mmap threshold, so they are recycled instead of freshly page-faulted. Measured on a 96 x 96
# x 6-octave field: ≈ 3x faster than one 55 k-point pass (chunks of 4096 already cross the threshold).
_CHUNK_POINTS = 2048
# Grid sizes whose seed-independent geometry simplex_field keeps (≈ 9 MB each for 96 x 96 x 6 octaves).
_CACHED_FIELD_GEOMETRIES = 4


def _wrap_int64(value: int) -> int:
    """Wrap a Python integer to a signed 64-bit integer (two's complement), like C integer overflow."""
    return (value + 2**63) % 2**64 - 2**63


def permutation_table(seed: int) -> np.ndarray:
    """The 256-entry lattice hash permutation that ``opensimplex.seed(seed)`` builds (int64 array of shape (256,)).

    This is a sequential 256-step recurrence (each step depends on the previous state), so it stays a Python loop;
    it costs ≈ 0.1 ms.
    """
    state = _wrap_int64(int(seed))
    for _ in range(3):
        state = _wrap_int64(state * _LCG_MULTIPLIER + _LCG_INCREMENT)
    source = list(range(_TABLE_SIZE))
    perm = np.zeros(_TABLE_SIZE, dtype=np.int64)
    for i in range(_TABLE_SIZE - 1, -1, -1):
        state = _wrap_int64(state * _LCG_MULTIPLIER + _LCG_INCREMENT)
        r = (state + 31) % (i + 1)  # Python's % is non-negative for a positive divisor
        perm[i] = source[r]
        source[r] = source[i]
    return perm


@dataclass(frozen=True)
class SimplexGeometry:
    """The seed-independent part of 2D OpenSimplex noise at a fixed set of points (coordinates in noise units).

    Every point gets four lattice vertices, in the order opensimplex adds their contributions. All arrays have shape
    (4 vertices, N points); ``shape`` is the shape of the point array they were flattened from. Computing this once
    per grid lets :func:`simplex_field` draw new fields for the same grid at the cost of the seed-dependent part only.
    """

    lattice_x: np.ndarray  # intp: the vertex's lattice x coordinate & 0xFF (opensimplex's hash input)
    lattice_y: np.ndarray  # intp: the vertex's lattice y coordinate & 0xFF
    dx: np.ndarray  # float64: point minus vertex, x, in input space
    dy: np.ndarray  # float64: point minus vertex, y, in input space
    falloff: np.ndarray  # float64: max(2 - dx² - dy², 0)⁴, the vertex's weight (0 outside its radius of influence)
    shape: tuple[int, ...]


def simplex_geometry(x: np.ndarray | float, y: np.ndarray | float) -> SimplexGeometry:
    """The four contributing lattice vertices of every point (x, y), element-wise over the broadcast of x and y."""
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    x_flat, y_flat = x.ravel(), y.ravel()
    parts = [_geometry_chunk(x_flat[s : s + _CHUNK_POINTS], y_flat[s : s + _CHUNK_POINTS])
             for s in range(0, x_flat.size, _CHUNK_POINTS)]
    if not parts:
        parts = [_geometry_chunk(x_flat, y_flat)]
    arrays = [np.concatenate([part[index] for part in parts], axis=1) for index in range(len(parts[0]))]
    for array in arrays:
        array.flags.writeable = False  # geometries are cached and shared
    return SimplexGeometry(*arrays, shape=x.shape)


def _geometry_chunk(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """:func:`simplex_geometry` for 1D float64 arrays of equal length: the seed-independent steps of opensimplex's
    ``_noise2``, with its if/else branches evaluated by masks. Returns the five (4, N) arrays of SimplexGeometry."""
    # Skew the point onto the rhombus lattice and find the rhombus (two triangles) that contains it.
    stretch_offset = (x + y) * _STRETCH_2D
    xs = x + stretch_offset
    ys = y + stretch_offset
    xsb = np.floor(xs)
    ysb = np.floor(ys)
    squish_offset = (xsb + ysb) * _SQUISH_2D
    dx0 = x - (xsb + squish_offset)  # position relative to the rhombus origin, in input space
    dy0 = y - (ysb + squish_offset)
    xins = xs - xsb  # position inside the rhombus, in lattice space
    yins = ys - ysb
    in_sum = xins + yins

    # opensimplex's branches, as a case number 0..7 that selects the point's vertex set (see _vertex_cases).
    lower = in_sum <= 1  # inside the triangle at (0, 0); otherwise inside the triangle at (1, 1)
    origin_is_close = np.where(
        lower,
        ((1 - in_sum) > xins) | ((1 - in_sum) > yins),
        ((2 - in_sum) < xins) | ((2 - in_sum) < yins),
    )
    case = 4 * lower + 2 * origin_is_close + (xins > yins)

    # Displacement from each vertex in input space. opensimplex writes it as dx0 - i - (i + j) * SQUISH with
    # literal constants; with i, j and i + j small integers this general form gives the same float64 results.
    squish = np.take(_VERTEX_SQUISH, case, axis=1)
    dx = (dx0 - np.take(_VERTEX_I_FLOAT, case, axis=1)) - squish
    dy = (dy0 - np.take(_VERTEX_J_FLOAT, case, axis=1)) - squish
    # 2 - |d|^2 is > 0 inside the vertex's radius of influence; clamping it to 0 outside gives the zero
    # contribution opensimplex gets by skipping the vertex. opensimplex squares twice: keep that order.
    falloff = np.maximum(2 - dx * dx - dy * dy, 0.0)
    falloff *= falloff
    falloff *= falloff
    lattice_x = (xsb.astype(np.intp) + np.take(_VERTEX_I, case, axis=1)) & 0xFF
    lattice_y = (ysb.astype(np.intp) + np.take(_VERTEX_J, case, axis=1)) & 0xFF
    return lattice_x, lattice_y, dx, dy, falloff


class OpenSimplex2D:
    """Vectorised 2D OpenSimplex noise, identical to ``opensimplex`` 0.4.5.1 seeded with the same ``seed``.

    Coordinates are plain noise-space numbers (no units); the noise varies on a scale of about one unit.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.perm = permutation_table(self.seed)
        # The gradient of a lattice vertex depends only on the inner hash h = (perm[i & 0xFF] + j) & 0xFF, through
        # perm[h] & 0x0E, so per seed both gradient components are tabulated against h (as float64: the products
        # with the float64 displacements are then the same as opensimplex's int64 × float64).
        gradient_rows = (self.perm & 0x0E) >> 1
        self._gradient_x = _GRADIENTS_2D[gradient_rows, 0].astype(np.float64)
        self._gradient_y = _GRADIENTS_2D[gradient_rows, 1].astype(np.float64)

    def noise2(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """Noise at the points (x, y), element-wise over the broadcast of ``x`` and ``y`` (float64, in about [-1, 1]).

        Equals ``opensimplex.noise2(x[i], y[i])`` for every element.
        """
        return self.evaluate(simplex_geometry(x, y))

    def noise2array(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Noise on the grid spanned by 1D coordinate arrays: shape (y.size, x.size), element [j, i] = S(x[i], y[j]).

        Same contract as ``opensimplex.noise2array``.
        """
        x = np.asarray(x, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        return self.noise2(x[np.newaxis, :], y[:, np.newaxis])

    def evaluate(self, geometry: SimplexGeometry) -> np.ndarray:
        """Noise at the points a geometry describes, float64 of ``geometry.shape``: the seed-dependent steps."""
        value = np.empty(geometry.dx.shape[1], dtype=np.float64)
        for start in range(0, value.size, _CHUNK_POINTS):
            chunk = slice(start, start + _CHUNK_POINTS)
            # The lattice hash: gradient row = perm[(perm[x & 0xFF] + y) & 0xFF] & 0x0E, tabulated per seed.
            inner_hash = np.take(self.perm, geometry.lattice_x[:, chunk])
            inner_hash += geometry.lattice_y[:, chunk]
            inner_hash &= 0xFF
            contribution = np.take(self._gradient_x, inner_hash)
            contribution *= geometry.dx[:, chunk]
            contribution += np.take(self._gradient_y, inner_hash) * geometry.dy[:, chunk]
            contribution *= geometry.falloff[:, chunk]
            # Sum in opensimplex's order (float addition is not associative; this keeps the result bit-exact).
            part = value[chunk]
            np.add(contribution[0], contribution[1], out=part)
            part += contribution[2]
            part += contribution[3]
        value /= _NORM_2D
        return value.reshape(geometry.shape)


@functools.lru_cache(maxsize=_CACHED_FIELD_GEOMETRIES)
def _field_geometry(height: int, width: int, octaves: int, feature_size: float) -> SimplexGeometry:
    """Geometry of all octaves of a (height, width) pixel grid; its noise has shape (octaves, height, width)."""
    cols = np.arange(width, dtype=np.float64)
    rows = np.arange(height, dtype=np.float64)
    frequencies = [feature_size / 2**octave for octave in range(octaves)]
    x = np.stack([np.broadcast_to(cols[np.newaxis, :] / f, (height, width)) for f in frequencies])
    y = np.stack([np.broadcast_to(rows[:, np.newaxis] / f, (height, width)) for f in frequencies])
    return simplex_geometry(x, y)


def simplex_field(
    height: int, width: int, seed: int, octaves: int = 6, persistence: float = 0.8, feature_size: float = 64.0
) -> np.ndarray:
    """Fractal OpenSimplex noise on a (rows, cols) = (height, width) pixel grid, float32, unnormalised.

    ``field[y, x] = sum_o persistence^o * S(x / f_o, y / f_o)`` with ``f_o = feature_size / 2^o`` (pixels), ``y`` the
    row and ``x`` the column index, and ``S`` opensimplex's 2D noise seeded with ``seed``. For the same seed this is
    bit-identical (before the float32 cast) to summing ``opensimplex.noise2array(arange(width) / f_o,
    arange(height) / f_o)`` over the octaves, halving ``f`` and multiplying the amplitude by ``persistence`` each time.
    The seed-independent geometry of the grid is cached, so repeated fields of one size are cheaper than the first.
    """
    if height < 1 or width < 1:
        raise ValueError(f"simplex noise needs a positive field size, got {height} x {width}")
    if octaves < 1 or feature_size <= 0:
        raise ValueError(f"simplex noise needs octaves >= 1 and feature_size > 0, got {octaves} and {feature_size}")
    octave_noise = OpenSimplex2D(seed).evaluate(_field_geometry(height, width, octaves, float(feature_size)))
    field = np.zeros((height, width), dtype=np.float64)
    amplitude = 1.0
    for octave in range(octaves):
        field += amplitude * octave_noise[octave]
        amplitude *= persistence
    return field.astype(np.float32)


class NoiseSampler:
    """Draws the forward-process noise ``n`` in ``x_t = sqrt(ᾱ) x0 + sqrt(1 - ᾱ) n`` (docs/METHOD.md §4.4–4.5).

    ``generator`` (a numpy ``Generator`` or an int seed for one) supplies every random number, so a sampler built
    from the same seed returns the same sequence of noise on every device. Use one sampler per training run, or
    one per test volume seeded from the volume, to make the maps reproducible (docs/METHOD.md D3).
    """

    def __init__(self, cfg: NoiseConfig, generator: np.random.Generator | int) -> None:
        if cfg.kind not in ("simplex", "gaussian"):
            raise ValueError(f"unknown noise kind {cfg.kind!r}; choose 'simplex' or 'gaussian'")
        self.cfg = cfg
        self.generator = generator if isinstance(generator, np.random.Generator) else np.random.default_rng(generator)

    def next_seed(self) -> int:
        """A fresh opensimplex seed drawn from the generator (non-negative int below 2^62)."""
        return int(self.generator.integers(0, 2**62))

    def field(self, height: int, width: int) -> np.ndarray:
        """One simplex field of shape (height, width) = (rows, cols), float32, with a fresh seed."""
        return simplex_field(
            height, width, self.next_seed(), self.cfg.octaves, self.cfg.persistence, self.cfg.feature_size
        )

    def sample(
        self,
        batch: int,
        height: int,
        width: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Noise of shape [batch, 1, height, width] (slices on the model grid, rows × cols).

        ``simplex``: one fresh field shared by the whole batch when ``cfg.shared_across_batch`` (returned as an
        ``expand``-ed view with batch stride 0: read it, do not write into it), otherwise one fresh field per
        sample. ``gaussian``: independent standard-normal values.
        """
        if batch < 1 or height < 1 or width < 1:
            raise ValueError(f"noise needs a positive batch and size, got {batch} x {height} x {width}")
        if self.cfg.kind == "gaussian":
            values = self.generator.standard_normal((batch, 1, height, width), dtype=np.float32)
            return torch.from_numpy(values).to(device=device, dtype=dtype)
        if self.cfg.shared_across_batch:
            field = torch.from_numpy(self.field(height, width)).to(device=device, dtype=dtype)
            return field.expand(batch, 1, height, width)
        fields = np.stack([self.field(height, width) for _ in range(batch)])[:, np.newaxis]
        return torch.from_numpy(fields).to(device=device, dtype=dtype)
