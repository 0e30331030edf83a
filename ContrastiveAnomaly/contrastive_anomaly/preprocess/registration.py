"""Multi-resolution mutual-information registration with SimpleITK.

Convention: the **template is the fixed image** and the scan the moving one, so every transform returned here maps
a template/model-space point (LPS mm) to the corresponding scan point (LPS mm). Resampling the scan onto a template
grid uses the transform as is; carrying template data onto the scan grid uses its inverse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import SimpleITK as sitk

from ..config import PreprocessConfig
from ..errors import RegistrationError

# ITK threads per registration. With two or more threads ITK's Mattes mutual information sums its per-thread
# partial histograms in whatever order the threads finish, so the same scan gave affine parameters differing by
# ~6e-5 run to run, and every resampled voxel moved with them. One thread makes it bit-repeatable; measured on the
# ROBEX scan (2-core EPYC) the brain extraction took 22 s with one thread and 17-21 s with two. The method's own
# SetNumberOfThreads does not reach the metric, so the ITK-wide default is lowered while a registration runs.
REGISTRATION_THREADS = 1


@contextmanager
def _registration_threads() -> Iterator[None]:
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(REGISTRATION_THREADS)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def working_copy(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """A float32 copy at about ``spacing_mm`` by integer block averaging (BinShrink: fast and anti-aliased).

    Axes already coarser than ``spacing_mm`` are kept. Geometry stays in the scan's own orientation (LPS).
    """
    factors = [max(1, int(round(spacing_mm / s))) for s in image.GetSpacing()]
    image = sitk.Cast(image, sitk.sitkFloat32)
    return sitk.BinShrink(image, factors) if max(factors) > 1 else image


def _method(cfg: PreprocessConfig, levels: slice, iterations: int | None = None) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=cfg.mi_bins)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(cfg.sampling_fraction, cfg.seed)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetShrinkFactorsPerLevel(list(cfg.shrink_factors[levels]))
    method.SetSmoothingSigmasPerLevel(list(cfg.smoothing_sigmas_mm[levels]))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=cfg.learning_rate, minStep=cfg.min_step,
        numberOfIterations=iterations or max(cfg.iterations[levels]), relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-6)
    method.SetOptimizerScalesFromPhysicalShift()
    return method


def _execute(method: sitk.ImageRegistrationMethod, fixed: sitk.Image, moving: sitk.Image,
             on_iteration: Callable[[], None] | None = None) -> sitk.Transform:
    if on_iteration is not None:
        method.AddCommand(sitk.sitkIterationEvent, on_iteration)
    try:
        with _registration_threads():
            return method.Execute(fixed, moving)
    except RuntimeError as exc:
        # ITK stops when too few samples overlap: the images do not share anatomy
        reason = str(exc).strip().splitlines()[-1][:120]
        raise RegistrationError(f"registration to the template failed ({reason}); is this a brain MRI?") from None


def as_affine(transform: sitk.Transform) -> sitk.AffineTransform:
    """Any matrix-offset transform (Euler/Similarity/Affine) as an AffineTransform with the same centre."""
    transform = transform.Downcast() if hasattr(transform, "Downcast") else transform
    if isinstance(transform, sitk.CompositeTransform):
        transform = transform.GetNthTransform(transform.GetNumberOfTransforms() - 1).Downcast()
    affine = sitk.AffineTransform(3)
    affine.SetMatrix(transform.GetMatrix())
    affine.SetTranslation(transform.GetTranslation())
    affine.SetCenter(transform.GetCenter())
    return affine


def initial_alignment(fixed: sitk.Image, moving: sitk.Image) -> sitk.AffineTransform:
    """Centres of mass aligned (the moving image thresholded above its 10th percentile to drop background noise)."""
    values = sitk.GetArrayViewFromImage(moving)
    floor = float(np.percentile(values, 10))
    foreground = sitk.Cast(sitk.Mask(moving, moving > floor), sitk.sitkFloat32)
    initial = sitk.CenteredTransformInitializer(fixed, foreground, sitk.AffineTransform(3),
                                                sitk.CenteredTransformInitializerFilter.MOMENTS)
    return as_affine(initial)


def _level_slices(cfg: PreprocessConfig) -> tuple[slice, slice]:
    """The pyramid levels of the similarity stage (all but the finest) and of the affine stage (all but the
    coarsest); a one-level pyramid uses its level for both."""
    n_levels = len(cfg.shrink_factors)
    return slice(0, max(n_levels - 1, 1)), slice(1 if n_levels > 1 else 0, n_levels)


def planned_iterations(cfg: PreprocessConfig, *, coarse_similarity: bool = True, similarity_only: bool = False) -> int:
    """The most optimiser iterations :func:`register_affine` can run (each level stops at its cap or earlier)."""
    coarse, fine = _level_slices(cfg)
    total = len(cfg.shrink_factors[coarse]) * max(cfg.iterations[coarse]) if coarse_similarity else 0
    if not similarity_only:
        total += len(cfg.shrink_factors[fine]) * max(cfg.iterations[fine])
    return total


def register_affine(fixed: sitk.Image, moving: sitk.Image, initial: sitk.AffineTransform, cfg: PreprocessConfig,
                    fixed_mask: sitk.Image | None = None, coarse_similarity: bool = True,
                    similarity_only: bool = False, *,
                    on_iteration: Callable[[], None] | None = None) -> sitk.AffineTransform:
    """Similarity (coarse levels) then affine (fine levels), Mattes MI. Returns template -> scan (LPS mm).

    ``coarse_similarity=False`` skips the similarity stage; ``similarity_only=True`` stops after it.
    ``on_iteration`` is called after every optimiser iteration (at most :func:`planned_iterations` times).
    """
    coarse, fine = _level_slices(cfg)
    transform = sitk.AffineTransform(initial)
    if coarse_similarity:
        similarity = sitk.Similarity3DTransform()
        similarity.SetCenter(initial.GetCenter())
        similarity.SetTranslation(initial.GetTranslation())
        method = _method(cfg, coarse)
        if fixed_mask is not None:
            method.SetMetricFixedMask(fixed_mask)
        method.SetInitialTransform(similarity, inPlace=True)
        method.SetMovingInitialTransform(sitk.AffineTransform(3))
        _execute(method, fixed, moving, on_iteration)
        transform = as_affine(similarity)
        if similarity_only:
            return transform
    method = _method(cfg, fine)
    if fixed_mask is not None:
        method.SetMetricFixedMask(fixed_mask)
    method.SetInitialTransform(transform, inPlace=True)
    _execute(method, fixed, moving, on_iteration)
    return transform


def register_deformable_inverse(scan: sitk.Image, template: sitk.Image, affine: sitk.AffineTransform,
                                cfg: PreprocessConfig) -> sitk.Transform:
    """A coarse B-spline refinement in the opposite direction: **scan -> template** (LPS mm).

    The scan is the fixed image here so the result pulls template data (e.g. its brain mask) straight onto the
    scan grid without inverting a deformation. ``affine`` is the template -> scan affine from
    :func:`register_affine`; its inverse is the starting point. ``cfg.deformable_mesh_size`` control cells per axis.
    """
    inverse_affine = affine.GetInverse()
    bspline = sitk.BSplineTransformInitializer(scan, [cfg.deformable_mesh_size] * 3, order=3)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=cfg.mi_bins)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(cfg.sampling_fraction, cfg.seed)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetShrinkFactorsPerLevel([1])
    method.SetSmoothingSigmasPerLevel([0.0])
    method.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=cfg.deformable_iterations)
    method.SetMovingInitialTransform(inverse_affine)
    method.SetInitialTransform(bspline, inPlace=True)
    _execute(method, scan, template)
    composite = sitk.CompositeTransform(3)
    composite.AddTransform(inverse_affine)
    composite.AddTransform(bspline)
    return composite


def mutual_information(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform, cfg: PreprocessConfig,
                       fixed_mask: sitk.Image | None = None) -> float:
    """Mattes MI (ITK sign: negative, lower = better aligned) of ``moving`` seen through ``transform``."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=cfg.mi_bins)
    method.SetMetricSamplingStrategy(method.NONE)
    method.SetInterpolator(sitk.sitkLinear)
    if fixed_mask is not None:
        method.SetMetricFixedMask(fixed_mask)
    method.SetInitialTransform(sitk.Transform(transform))
    try:
        with _registration_threads():
            return float(method.MetricEvaluate(fixed, moving))
    except RuntimeError:
        return 0.0  # no overlap at all: no information shared
