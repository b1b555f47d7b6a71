# Sourced by the device_*.sh scripts on a lent GPU machine: log to $OUT/log.txt, stamp(), the carried wheels
# installed into /tmp/site, a polars stub, and the environment (echoavc from src/, nothing downloads).
# Needs OUT, WORK and PY set.
mkdir -p "$OUT" "$WORK"
exec > >(tee "$OUT/log.txt") 2>&1
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

stamp "install wheels"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
fi
# Ultralytics imports polars only to copy results.csv into its checkpoints, inside a try that this stub fails
# cleanly; the real polars runtime wheel (54 MB) does not fit the 64 MiB the working tree may take.
if ! $PY -c "import polars" 2>/dev/null && [ ! -e /tmp/site/polars ]; then
  mkdir -p /tmp/site/polars
  printf 'def read_csv(*a, **k):\n    raise RuntimeError("polars stub")\n' > /tmp/site/polars/__init__.py
fi
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/benchmarks PYTHONUNBUFFERED=1 ECHOAVC_OFFLINE=1 HF_HUB_OFFLINE=1 \
  ECHOAVC_CACHE=$WORK/cache YOLO_OFFLINE=1
