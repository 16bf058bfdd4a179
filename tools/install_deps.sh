#!/usr/bin/env bash
# Install mmkp_ext and its pinned stack into the Python interpreter $PYTHON
# (default: a virtual environment .venv inside the checkout, created if absent).
#
#   PYTHON=/path/to/python tools/install_deps.sh   # use an existing environment
#
# Idempotent: a stamp file records the hash of this script and of requirements/,
# so a second run with nothing changed returns in about a second.
# What it installs and why (see README "Compatibility"):
#   torch 2.13.0 (CPU wheel) unless the environment already has a torch;
#   mmcv-lite 2.1.0 unless a full mmcv < 2.2.0 is already installed;
#   mmengine 0.10.7; mmpose 1.3.2 and mmdet 3.3.0 with --no-deps (their own
#   lists pull chumpy, which fails to build, and torchvision) plus their real
#   runtime needs (requirements/runtime.txt); xtcocotools built from source
#   against numpy 2; setuptools < 80 (mmengine needs pkg_resources).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ -z "${PYTHON:-}" ]; then
  if [ ! -x .venv/bin/python ]; then
    echo "[install] creating virtual environment .venv"
    python3 -m venv .venv
  fi
  PYTHON="$ROOT/.venv/bin/python"
fi

STAMP_DIR=$("$PYTHON" -c 'import sys; print(sys.prefix)')
STAMP="$STAMP_DIR/.mmkp_ext_deps"
HASH=$(cat tools/install_deps.sh tools/mmcv_state.py requirements/*.txt setup.py | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH:$ROOT" ] \
   && "$PYTHON" -c 'import mmkp_ext' >/dev/null 2>&1; then
  exit 0
fi

PIP=("$PYTHON" -m pip install --disable-pip-version-check -q)
start=$(date +%s)

if "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
  echo "[install] keeping installed torch $("$PYTHON" -c 'import torch; print(torch.__version__)')"
else
  echo "[install] torch==2.13.0"
  "${PIP[@]}" torch==2.13.0
fi

# Build helpers first: xtcocotools is compiled against the installed numpy.
"${PIP[@]}" "setuptools<80" wheel cython numpy

mmcv_state=$("$PYTHON" tools/mmcv_state.py) || mmcv_state=none
case "$mmcv_state" in
  *-too-new|*-too-old) echo "[install] ERROR: installed $mmcv_state; mmpose 1.3.2 needs 2.0 <= mmcv < 2.2 (uninstall it or use another environment)" >&2; exit 1;;
  mmcv-ok) echo "[install] keeping the installed full mmcv";;
  mmcv-lite-ok) echo "[install] keeping the installed mmcv-lite";;
  *) echo "[install] mmcv-lite==2.1.0"; "${PIP[@]}" "mmengine==0.10.7" "mmcv-lite==2.1.0";;
esac

echo "[install] mmengine, runtime requirements"
"${PIP[@]}" "mmengine==0.10.7" -r requirements/runtime.txt -r requirements/tests.txt
echo "[install] mmpose==1.3.2 mmdet==3.3.0 (--no-deps)"
"${PIP[@]}" --no-deps "mmpose==1.3.2" "mmdet==3.3.0"
if ! "$PYTHON" -c 'import xtcocotools._mask' >/dev/null 2>&1; then
  echo "[install] xtcocotools (from source, against numpy $("$PYTHON" -c 'import numpy; print(numpy.__version__)'))"
  "${PIP[@]}" --force-reinstall --no-deps --no-build-isolation --no-binary xtcocotools xtcocotools
fi
echo "[install] mmkp_ext (editable)"
"${PIP[@]}" --no-deps --no-build-isolation -e .

"$PYTHON" -c 'import mmkp_ext, mmpose.models, mmpose.visualization, xtcocotools._mask; print("[install] ok: mmkp_ext", mmkp_ext.__version__)'
echo "$HASH:$ROOT" > "$STAMP"
echo "[install] done in $(( $(date +%s) - start )) s"
