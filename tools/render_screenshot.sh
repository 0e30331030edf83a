#!/usr/bin/env bash
# One command to re-render the README / Extension Index screenshot after the default model changes:
# the shipped default model on the ROBEX brain with a planted lesion (`contrastive-anomaly demo`), drawn by Slicer's own
# slice views (tools/render_slicer_views.py, trame-slicer in a venv of its own, mesa EGL, no display).
# Usage: bash tools/render_screenshot.sh            (needs the registry corpus: contrastive-anomaly data fetch)
# Env: CORPUS (default data/registry), RENDER_VENV (default .venv-trame; created when missing), DEVICE (default cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${CORPUS:-data/registry}
RENDER_VENV=${RENDER_VENV:-.venv-trame}
OUT=Resources/Screenshots/ContrastiveAnomaly_slice_views.png
if [ ! -x "$RENDER_VENV/bin/python" ]; then
  python3 -m venv "$RENDER_VENV"
  "$RENDER_VENV/bin/pip" install -q --disable-pip-version-check "trame-slicer[standalone]==2.0.0" scipy SimpleITK matplotlib
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
[ -d "$CORPUS" ] || contrastive-anomaly data fetch --out "$CORPUS" --progress none
contrastive-anomaly demo --corpus "$CORPUS" --out "$WORK/demo" --device "${DEVICE:-cpu}" --progress none
VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow PYTHONPATH= "$RENDER_VENV/bin/python" tools/render_slicer_views.py \
  "$WORK/demo/input_with_synthetic_lesion.nii.gz" "$WORK/demo" --out "$OUT"
echo "wrote $OUT"
