#!/usr/bin/env bash
# Rebuilds the shipped default model (the package data folder ContrastiveAnomaly/contrastive_anomaly/resources/models/t1-compact) from registry data, on a CPU, with the project's own CLI.
# Usage: bash tools/build_default_model.sh [STAGE1_STEPS] [STAGE2_STEPS]   (the shipped model: 300 and 1500)
set -euo pipefail
S1=${1:-300}; S2=${2:-1500}; RUN=${RUN:-runs/default}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
contrastive-anomaly data fetch --out data/registry --progress none
[ -d data/bank/train ] || python tools/make_augmented_bank.py --corpus data/registry --out data/bank --per-subject 40 --val-copies 4
common=(--data data/bank/train --val-data data/bank/val --preset compact --batch-size 16 --progress bar)
contrastive-anomaly train-encoder "${common[@]}" --steps "$S1" --validate-every 100 --out "$RUN/encoder" \
  $([ -f "$RUN/encoder/last/trainer_state.json" ] && echo --resume)
contrastive-anomaly train "${common[@]}" --steps "$S2" --validate-every 100 --encoder "$RUN/encoder/best" \
  --out "$RUN/ddpm" $([ -f "$RUN/ddpm/last/trainer_state.json" ] && echo --resume)
# Rule B threshold: 1 % voxel FPR on the healthy validation subject (ITK k-means T1) and its augmented copies.
contrastive-anomaly calibrate --model "$RUN/ddpm/best" --healthy data/bank/val --target-fpr 0.01 --half \
  --out ContrastiveAnomaly/contrastive_anomaly/resources/models/t1-compact
# the card travels with the weights (the panel's model tooltip and 'models show' read it from the model folder)
cp models/MODEL_CARD.md ContrastiveAnomaly/contrastive_anomaly/resources/models/t1-compact/MODEL_CARD.md
python tools/register_model.py ContrastiveAnomaly/contrastive_anomaly/resources/models/t1-compact --name t1-compact --default
