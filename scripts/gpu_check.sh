#!/usr/bin/env bash
# The GPU check (issue 14): on a machine with a CUDA device, one command runs the gpu-marked tests and
# the Jukebox and separation speed benches on CUDA and writes bench/results/gpu.md (about 5 minutes).
#
# Needs a Python whose torch sees CUDA, with this project and its dependencies installed in it
# (e.g. `pip install -e .` into that environment, keeping its CUDA build of torch); PYTHON names it
# (default: python3). The shared reference data must be beside the repo or in TAGBOX_SHARED.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA device visible to torch')"
timeout 300 "$PY" -m tagbox_pipeline.bench.gpu --device cuda
