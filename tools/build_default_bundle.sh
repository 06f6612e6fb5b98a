#!/usr/bin/env bash
# Rebuild models/facemend-faces64-v1 from nothing, reproducibly (CPU, ~1.5 h on 2 cores).
# Every step resumes: run it again after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${BUNDLE:-models/facemend-faces64-v1}
RUNS=${RUNS:-runs}
FM=.venv/bin/facemend
if [ ! -f "$BUNDLE/manifest.json" ]; then
  wheel_dir=$(mktemp -d)
  .venv/bin/pip download -q --no-deps -d "$wheel_dir" gan-face-generate==1.1.1
  $FM models import-gan-face-generate --source "$wheel_dir"/gan_face_generate-1.1.1-py3-none-any.whl --out "$BUNDLE"
fi
$FM models train-encoder --bundle "$BUNDLE" --run "$RUNS/encoder" --steps "${ENCODER_STEPS:-3000}"
$FM models train-critic --bundle "$BUNDLE" --run "$RUNS/critic" --steps "${CRITIC_STEPS:-2000}"
# Drift threshold: needs the encoder and scikit-image (test extra).
.venv/bin/python tools/calibrate_ood.py "$BUNDLE"
$FM models verify "$BUNDLE"
