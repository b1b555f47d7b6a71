#!/usr/bin/env bash
# bench_sim2real (issue 15) on a lent GPU machine: the demo's detector settings trained on synthetic data only,
# 3 tuning seeds per variant, every variant and seed at once (one process per seed; the GPU only speeds the
# trainings, the recipe is the demo's). Returns the bench's JSON per variant, its logs and contact sheets (drawn
# from the real frames: they stay in the work folder here, never in the repository) in one archive under $OUT, and
# every best checkpoint (optimizer stripped), three to an archive, to measure here with bench_sim2real.py
# --detector should the cap stop a variant before its own measurement.
#
#   mkdir -p .carry && cp -r /work/shared/real-dev .carry/      # git-ignored: the device gets the repository only
#   run(command="bash benchmarks/device_sim2real.sh", carry=[".whl", ".carry"], timeout_s=400)
#
# Timing on the H200's 16 cores (seventh session): the studies of 2 anatomies x 3 seeds and the wheel install 89 s;
# 9 trainings at once 175 s each, 18 at once 330 s (the data loaders are CPU-bound). Size CAP_S for the trainings
# plus about 30 s of measurement. Needs .whl/ (git-ignored; the wheel list is in docs/detector.md) and the real
# frames in .carry/real-dev. VARIANTS: anatomy[-dr], space-separated.
set -u
OUT=${OUT:-/tmp/echoavc-device-out}
PY=${PYTHON:-python3}
VARIANTS=${VARIANTS:-"mixed-dr realistic-dr classic"}
SEEDS=${SEEDS:-"2026 2027 2028"}
REAL=${REAL:-.carry/real-dev}
WORK=${WORK:-/tmp/echoavc-s2r}
CAP_S=${CAP_S:-240}
STUDY_CAP_S=${STUDY_CAP_S:-150}
BENCH_ARGS=${BENCH_ARGS:-}   # a dry run here: PYTHON=.venv/bin/python BENCH_ARGS="--patients 6 --epochs 1"
. benchmarks/device_env.sh
export OMP_NUM_THREADS=1
$PY -c "import torch, ultralytics, echoavc; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
'ultralytics', ultralytics.__version__)" || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

# 1. the studies (one per anatomy and seed) and the real frames' ingest, all at once; 2. every variant and seed
# at once in the same work folder, sharing them
pids=()
anatomies=$(for v in $VARIANTS; do echo "${v%-dr}"; done | sort -u)
for a in $anatomies; do
  for s in $SEEDS; do
    timeout "$STUDY_CAP_S" $PY benchmarks/bench_sim2real.py --anatomy "$a" --seeds "$s" --study-only --work "$WORK" $BENCH_ARGS \
      > "$WORK/study-$a-$s.log" 2>&1 &
    pids+=($!)
  done
done
$PY -c "import sys; from pathlib import Path; from bench_sim2real import real_frames; real_frames(Path('$REAL'), Path('$WORK'))" \
  > "$WORK/real-ingest.log" 2>&1 &
pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done
stamp "studies made: $anatomies"
pids=()
for v in $VARIANTS; do
  a=${v%-dr}; dr=(); [ "$v" != "$a" ] && dr=(--domain-randomisation)
  stamp "variant $v: seeds $SEEDS"
  timeout "$CAP_S" $PY benchmarks/bench_sim2real.py --anatomy "$a" "${dr[@]}" --seeds $SEEDS --jobs 3 \
    --real-dev "$REAL" --work "$WORK" --json "$WORK/$v.json" $BENCH_ARGS > "$WORK/$v.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
stamp "variants done"
for v in $VARIANTS; do echo "== $v"; grep -E "^seed |^ACCEPTANCE" "$WORK/$v.log" || tail -5 "$WORK/$v.log"; done
(cd "$WORK" && tar czf "$OUT/sim2real.tar.gz" ./*.json ./*.log ./contact-*.png ./*-seed*/detector*/bench-done.json \
  ./*-seed*/detector*/train/results.csv 2>/dev/null)
# the best checkpoints too (optimizer stripped, as Ultralytics does at the end of a training; a training the cap
# stopped keeps its best epoch so far), three to an archive (each file back is at most 16 MiB): measured here with
# bench_sim2real.py --detector, should the cap stop a variant before its own measurement
(cd "$WORK" && $PY -c "
import glob
from ultralytics.utils.torch_utils import strip_optimizer
for f in sorted(glob.glob('*-seed*/detector*/train/weights/best.pt')):
    strip_optimizer(f)" >/dev/null 2>&1
 ls -1 ./*-seed*/detector*/train/weights/best.pt 2>/dev/null | split -l 3 - /tmp/s2r-weights-
 for f in /tmp/s2r-weights-*; do tar czf "$OUT/weights-${f##*-}.tar.gz" -T "$f"; done)
stamp "done"; ls -la "$OUT"
