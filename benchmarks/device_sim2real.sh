#!/usr/bin/env bash
# bench_sim2real (issue 15) on a lent GPU machine: the demo's detector settings trained on synthetic data only,
# 3 tuning seeds per variant, every variant and seed at once (one process per seed; the GPU only speeds the
# trainings, the recipe is the demo's). Returns the bench's JSON per variant, its logs and contact sheets (drawn
# from the real frames: they stay in the work folder here, never in the repository) in one archive under $OUT, and
# every best checkpoint (optimizer stripped), two to an archive, to measure here with bench_sim2real.py
# --detector should the cap stop a variant before its own measurement.
#
#   mkdir -p .carry && cp -r /work/shared/real-dev .carry/      # git-ignored: the device gets the repository only
#   run(command="bash benchmarks/device_sim2real.sh", carry=[".whl", ".carry"], timeout_s=400)
#
# Timing on the H200's 16 cores (seventh session): the studies of 2 anatomies x 3 seeds and the wheel install 89 s;
# 9 trainings at once 175 s each, 18 at once 330 s (the data loaders are CPU-bound). Fifteenth session: studies of
# 96 patients, mixed and realistic x 3 seeds, 65 s (STUDY_WORKERS=3); 6 trainings of 96 patients, 30 epochs, at once
# (LOADER_WORKERS=3) about 280 s. Size CAP_S for the trainings plus about 30 s of measurement. At most 12
# checkpoints come back (6 archives; 8 files in all). Needs .whl/ (git-ignored; the wheel list is in docs/detector.md) and the real
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
STUDY_WORKERS=${STUDY_WORKERS:-1}   # processes per training study
LOADER_WORKERS=${LOADER_WORKERS:-0}  # data-loader processes per training (the demo's 0; more only speeds the run)
BENCH_ARGS=${BENCH_ARGS:-}   # a dry run here: PYTHON=.venv/bin/python BENCH_ARGS="--patients 6 --epochs 1"
. benchmarks/device_env.sh
export OMP_NUM_THREADS=1
$PY -c "import torch, ultralytics, echoavc; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
'ultralytics', ultralytics.__version__)" || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

# 1. the studies (one per anatomy, patient count and seed) and the real frames' ingest, all at once; 2. every variant
# and seed at once in one work folder, sharing the studies (the bench names a study by its patient count, a detector
# by its epochs). A variant is anatomy[-dr][@PATIENTS[xEPOCHS]] (e.g. mixed-dr@96x15); without @, the demo's.
spec() {  # variant -> "anatomy dr patients epochs"
  local v=$1 a n e
  a=${v%%@*}; n=""; e=""
  if [ "$v" != "$a" ]; then n=${v#*@}; e=${n#*x}; [ "$e" = "$n" ] && e=""; n=${n%%x*}; fi
  echo "${a%-dr} $([ "${a%-dr}" != "$a" ] && echo dr || echo -) ${n:--} ${e:--}"
}
pids=()
for key in $(for v in $VARIANTS; do set -- $(spec "$v"); echo "$1:$3"; done | sort -u); do
  IFS=: read -r a n <<< "$key"; np=(); [ "$n" != "-" ] && np=(--patients "$n")
  for s in $SEEDS; do
    timeout "$STUDY_CAP_S" $PY benchmarks/bench_sim2real.py --anatomy "$a" --seeds "$s" --study-only --work "$WORK" \
      --study-workers "$STUDY_WORKERS" "${np[@]}" $BENCH_ARGS > "$WORK/study-$a-$n-$s.log" 2>&1 &
    pids+=($!)
  done
done
$PY -c "import sys; from pathlib import Path; from bench_sim2real import real_frames; real_frames(Path('$REAL'), Path('$WORK'))" \
  > "$WORK/real-ingest.log" 2>&1 &
pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done
stamp "studies made"
pids=()
for v in $VARIANTS; do
  set -- $(spec "$v"); a=$1; extra=()
  [ "$2" = dr ] && extra+=(--domain-randomisation)
  [ "$3" != - ] && extra+=(--patients "$3")
  [ "$4" != - ] && extra+=(--epochs "$4")
  stamp "variant $v: seeds $SEEDS"
  timeout "$CAP_S" $PY benchmarks/bench_sim2real.py --anatomy "$a" "${extra[@]}" --seeds $SEEDS --jobs 3 \
    --loader-workers "$LOADER_WORKERS" --real-dev "$REAL" --work "$WORK" --json "$WORK/$v.json" $BENCH_ARGS \
    > "$WORK/$v.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
stamp "variants done"
for v in $VARIANTS; do echo "== $v"; grep -E "^seed |^ACCEPTANCE" "$WORK/$v.log" || tail -5 "$WORK/$v.log"; done
(cd "$WORK" && tar czf "$OUT/sim2real.tar.gz" ./*.json ./*.log ./contact-*.png ./*-seed*/detector*/bench-done.json \
  ./*-seed*/detector*/train/results.csv 2>/dev/null)
# the best checkpoints too (optimizer stripped, as Ultralytics does at the end of a training; a training the cap
# stopped keeps its best epoch so far), two to an archive (each file back is at most 16 MiB): measured here with
# bench_sim2real.py --detector, should the cap stop a variant before its own measurement
pkill -f bench_sim2real.py; sleep 2   # a capped variant's trainings, which would write checkpoints on
(cd "$WORK" && $PY -c "
import glob
from ultralytics.utils.torch_utils import strip_optimizer
for f in sorted(glob.glob('*-seed*/detector*/train/weights/best.pt')):
    try:
        strip_optimizer(f)
    except Exception as e:
        print(f, 'not stripped:', e)"
 ls -1 ./*-seed*/detector*/train/weights/best.pt 2>/dev/null | split -l 2 - /tmp/s2r-weights-
 for f in /tmp/s2r-weights-*; do tar czf "$OUT/weights-${f##*-}.tar.gz" -T "$f"; done)
stamp "done"; ls -la "$OUT"
