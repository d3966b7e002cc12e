#!/usr/bin/env bash
# The main job, end to end: train (the tiny offline model by default), export to int8, answer a file of questions.
#   bash scripts/quickstart.sh                                   # offline: tiny model, bundled Korean questions
#   MODEL=distilbert/distilbert-base-multilingual-cased DATA=KorQuAD/squad_kor_v1 \
#     QUESTIONS=path/to/KorQuAD_v1.0_dev.json bash scripts/quickstart.sh   # the real thing (needs the hub)
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${EXTRAS:-train,export} bash scripts/install.sh
QA=.venv/bin/qa-engine
QUESTIONS=${QUESTIONS:-qa_engine/data/sample_questions.jsonl}
if [ -z "${MODEL:-}" ]; then
  export HF_HUB_OFFLINE=1
  CKPT=runs/tiny
  $QA train-tiny --output "$CKPT"
else
  CKPT=runs/$(basename "$MODEL")
  [ -f "$CKPT/metrics.json" ] || $QA train --model "$MODEL" --dataset "${DATA:-KorQuAD/squad_kor_v1}" --output "$CKPT"
fi
ART=artifacts/$(basename "$CKPT")
# export again when the checkpoint is newer than the artifact (a retrained model, e.g. after a recipe change)
[ "$ART/qa_engine.json" -nt "$CKPT/metrics.json" ] || $QA export --model "$CKPT" --output "$ART" --precision int8 --force
$QA batch --model "$ART" --input "$QUESTIONS" --output runs/answers.jsonl --predictions-json runs/predictions.json --print 20
