#!/usr/bin/env bash
# Table 1 experiments 1, 4 and 6 (original; rotation; all four) with the paper preset (yolov5su, 640, batch 32,
# 75 epochs or fewer under the time cap) on a lent GPU machine (H100/H200), on one patient split of a synthetic
# cohort generated there. Returns metrics only (no weights) under $OUT. See docs/detector.md.
#
#   run(command="bash benchmarks/device_table1.sh", carry=[".whl"], timeout_s=560)
#
# Needs .whl/ (git-ignored) with the wheels the machine lacks: docs/detector.md has the pip download lines.
# Budget: 15 device-minutes in all, machine start included, so the whole script is capped at about 8.5 minutes:
# CAP_MIN (default 5) for the three trainings together, plus install, cohort and evaluation.
set -u
OUT=${OUT:-/tmp/echoavc-device-out}
CAP_MIN=${CAP_MIN:-5}
PATIENTS=${PATIENTS:-60}
PRESET=${PRESET:-paper}        # a dry run here: PYTHON=.venv/bin/python PRESET=smoke PATIENTS=12 CAP_MIN=2 WORKERS=2
PY=${PYTHON:-python3}
WORKERS=${WORKERS:-16}
WORK=${WORK:-/tmp/echoavc-t1}
. benchmarks/device_env.sh
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; $PY -c "
import torch, ultralytics, echoavc; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
'ultralytics', ultralytics.__version__)"; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

stamp "synthetic cohort: $PATIENTS patients, split 80/10/10 by patient"
$PY benchmarks/synthetic_study.py --out "$WORK/study" --patients "$PATIENTS" --seed 2024 --workers "$WORKERS" \
  || { echo "cohort failed"; exit 1; }

stamp "Table 1 experiments 1, 4, 6 ($PRESET preset, time cap $CAP_MIN min)"
timeout $(( CAP_MIN * 60 + 120 )) $PY -m echoavc.cli experiments table1 --data "$WORK/study/table" \
  --split "$WORK/study/table/split.json" --folds 1 --preset "$PRESET" --experiments 1,4,6 --time-cap "$CAP_MIN" \
  --workers $(( WORKERS / 2 )) --n-boot 1000 --out "$WORK/table1"
rc=$?
stamp "table1 exit code $rc"

cp "$WORK/table1/table1.md" "$WORK/table1/table1.csv" "$WORK/table1/table1_details.json" "$OUT/" 2>/dev/null
# per-run metrics and training records (JSON only: no weights), one small archive
(cd "$WORK/table1" && find runs -name 'evaluation.json' -o -name 'evaluation.md' -o -name 'detector.json' \
  | tar czf "$OUT/runs_metrics.tar.gz" -T -) 2>/dev/null
stamp "done"; ls -la "$OUT"
exit $rc
