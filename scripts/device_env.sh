# Sourced by the device scripts (gpu_bench.sh, gpu_attention.sh) from the
# repository root: the wheels carried in .whl/ (lark, z3-solver, fla-core, accelerated-scan;
# the download line is in the device README) installed into a scratch site dir, madc importable
# from the checkout, Python's output unbuffered so a capped run's log holds everything it
# printed.
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1
