#!/usr/bin/env bash
# Install mmkp_ext and its pinned stack into the Python interpreter $PYTHON
# (default: a virtual environment .venv inside the checkout, created, or
# re-created when half-made, from $BASE_PYTHON, default python3).
#
#   tools/install_deps.sh                          # .venv in the checkout
#   PYTHON=/path/to/venv/bin/python tools/install_deps.sh   # your own env
#
# Variables:
#   PYTHON           interpreter to install into (a virtual environment or a
#                    writable, not OS-managed Python). Default: .venv.
#   BASE_PYTHON      interpreter that creates .venv (default python3).
#   TORCH_SPEC       pip requirement for torch when none is installed
#                    (default torch==2.13.0). An installed torch is kept.
#   TORCH_INDEX_URL  index to take torch from, e.g.
#                    https://download.pytorch.org/whl/cpu (default: pip's).
#   MMKP_ALLOW_PYTHON=1  try a Python outside the supported 3.10-3.12.
#
# Idempotent: a stamp in .install_stamps/ (inside the checkout, one per
# interpreter) records the hash of this script, the probes and
# requirements/; a second run with nothing changed returns in seconds.
# What it installs and why (README "Compatibility notes"): torch (kept if
# present); mmcv-lite 2.1.0 unless an mmcv 2.0-2.1 is present; mmengine
# 0.10.7, mmpose 1.3.2, mmdet 3.3.0 with --no-deps plus their real runtime
# needs (requirements/runtime.txt), exactly one OpenCV (headless, unless one
# is already installed), xtcocotools built from source against numpy 2,
# setuptools >=77.0.3,<80. Versions: requirements/constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-}
SUPPORTED_PYTHONS="3.10 3.11 3.12"

say() { echo "[install] $*"; }
die() { echo "[install] ERROR: $*" >&2; exit 1; }

# Reads tools/python_env_probe.py's key=value lines into PROBE_<key>.
probe() {
  local out line
  out=$("$1" "$ROOT/tools/python_env_probe.py") \
    || die "could not run $1 (tools/python_env_probe.py failed)"
  while IFS= read -r line; do
    case "$line" in
      *=*) printf -v "PROBE_${line%%=*}" '%s' "${line#*=}";;
    esac
  done <<< "$out"
}

check_version() {  # $1: interpreter (for the message)
  case " $SUPPORTED_PYTHONS " in
    *" $PROBE_version "*) ;;
    *) if [ "${MMKP_ALLOW_PYTHON:-0}" = 1 ]; then
         say "WARNING: Python $PROBE_version is not supported ($SUPPORTED_PYTHONS); continuing because MMKP_ALLOW_PYTHON=1"
       else
         die "$1 is Python $PROBE_version; mmkp_ext supports Python $SUPPORTED_PYTHONS (tested on 3.11). Use BASE_PYTHON=/path/to/python3.11 (or PYTHON=...), or MMKP_ALLOW_PYTHON=1 to try anyway."
       fi;;
  esac
}

OWN_VENV=0
if [ -z "${PYTHON:-}" ]; then
  OWN_VENV=1
  BASE_PYTHON=${BASE_PYTHON:-python3}
  if [ -e .venv ] && ! .venv/bin/python -c 'import pip' >/dev/null 2>&1; then
    say ".venv is incomplete (no working python or pip, e.g. an interrupted creation): re-creating it"
    rm -rf .venv
  fi
  if [ ! -e .venv ]; then
    command -v "$BASE_PYTHON" >/dev/null 2>&1 || die "$BASE_PYTHON not found; set BASE_PYTHON=/path/to/python3"
    probe "$BASE_PYTHON"
    check_version "$BASE_PYTHON"
    say "creating virtual environment .venv (Python $PROBE_version)"
    if ! "$BASE_PYTHON" -m venv .venv; then
      rm -rf .venv
      die "'$BASE_PYTHON -m venv .venv' failed (Debian/Ubuntu: apt install python3-venv)"
    fi
  fi
  PYTHON="$ROOT/.venv/bin/python"
fi

probe "$PYTHON"
check_version "$PYTHON"
if [ "$PROBE_venv" = 0 ] && [ "$PROBE_externally_managed" = 1 ]; then
  die "PYTHON=$PYTHON is a system interpreter managed by the OS (PEP 668, EXTERNALLY-MANAGED); nothing was installed. Leave PYTHON unset to use .venv, or create a virtual environment (python3 -m venv ~/venvs/mmkp) and pass PYTHON=~/venvs/mmkp/bin/python."
fi
if [ "$PROBE_writable" = 0 ]; then
  die "PYTHON=$PYTHON cannot write to its site-packages ($PROBE_purelib); nothing was installed. Use a virtual environment (or leave PYTHON unset for .venv)."
fi

HASH=$(cat tools/install_deps.sh tools/mmcv_state.py tools/python_env_probe.py \
  requirements/*.txt setup.py | sha256sum | cut -d' ' -f1)
KEY=$(printf '%s' "$PYTHON" | sha256sum | cut -c1-16)
STAMP="$ROOT/.install_stamps/$KEY"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH $PYTHON" ] \
   && "$PYTHON" -c 'import mmkp_ext' >/dev/null 2>&1; then
  exit 0
fi

CONSTRAINTS=(-c "$ROOT/requirements/constraints.txt")
PIP=("$PYTHON" -m pip install --disable-pip-version-check -q)
start=$(date +%s)

# torch: keep the user's; otherwise TORCH_SPEC from TORCH_INDEX_URL or PyPI.
if "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
  say "keeping installed torch $("$PYTHON" -c 'import torch; print(torch.__version__)')"
else
  if [ -n "$TORCH_INDEX_URL" ]; then
    say "$TORCH_SPEC from $TORCH_INDEX_URL"
    "${PIP[@]}" --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"
  else
    say "$TORCH_SPEC (from pip's configured index; on Linux PyPI serves the CUDA build, several GB: set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu for the CPU build)"
    "${PIP[@]}" "$TORCH_SPEC"
  fi
fi

# setuptools: torch >= 2.13 needs >= 77.0.3; mmengine 0.10.7 imports
# pkg_resources, which setuptools 80+ no longer ships.
if ! "$PYTHON" - <<'EOF'
import sys
from importlib import metadata
try:
    v = tuple(int(x) for x in metadata.version('setuptools').split('.')[:3])
except Exception:
    sys.exit(1)
sys.exit(0 if (77, 0, 3) <= v < (80, ) else 1)
EOF
then
  if [ "$OWN_VENV" = 0 ]; then
    say "NOTE: changing setuptools $PROBE_setuptools -> >=77.0.3,<80 in the environment of $PYTHON (mmengine 0.10.7 needs pkg_resources, removed in setuptools 80; torch needs >= 77.0.3)"
  fi
  "${PIP[@]}" "${CONSTRAINTS[@]}" "setuptools>=77.0.3,<80"
fi
# Build helpers first: xtcocotools is compiled against the installed numpy.
"${PIP[@]}" "${CONSTRAINTS[@]}" wheel cython numpy

if ! mmcv_state=$("$PYTHON" tools/mmcv_state.py); then
  die "could not tell which mmcv is installed (tools/mmcv_state.py failed, see above); stopping without touching mmcv"
fi
case "$mmcv_state" in
  *-too-new|*-too-old) die "installed $mmcv_state; mmpose 1.3.2 needs 2.0 <= mmcv < 2.2 (uninstall it or use another environment)";;
  mmcv-ok) say "keeping the installed full mmcv";;
  mmcv-lite-ok) say "keeping the installed mmcv-lite";;
  none) say "mmcv-lite==2.1.0"
        "${PIP[@]}" "${CONSTRAINTS[@]}" --no-deps "mmcv-lite==2.1.0";;
  *) die "unexpected answer from tools/mmcv_state.py: '$mmcv_state'";;
esac

# Exactly one OpenCV: the distributions share one cv2/ folder, so two of
# them installed means uninstalling either breaks cv2.
IFS=',' read -r -a OPENCVS <<< "$PROBE_opencv"
if [ "${#OPENCVS[@]}" = 0 ]; then
  say "opencv-python-headless"
  "${PIP[@]}" "${CONSTRAINTS[@]}" opencv-python-headless
elif [ "${#OPENCVS[@]}" -gt 1 ]; then
  if [ "$OWN_VENV" = 1 ]; then
    say "repairing .venv: several OpenCV distributions (${PROBE_opencv}) share cv2/; keeping only opencv-python-headless"
    "$PYTHON" -m pip uninstall -y -q "${OPENCVS[@]}"
    "${PIP[@]}" "${CONSTRAINTS[@]}" --force-reinstall --no-deps opencv-python-headless
  else
    say "WARNING: several OpenCV distributions are installed (${PROBE_opencv}); they share one cv2/ folder, so uninstalling one breaks cv2. Left as they are; to fix: pip uninstall ${OPENCVS[*]} && pip install opencv-python-headless"
  fi
else
  say "keeping the installed ${OPENCVS[0]}"
fi

say "mmengine, runtime requirements"
"${PIP[@]}" "${CONSTRAINTS[@]}" -r requirements/runtime.txt -r requirements/tests.txt
say "mmengine==0.10.7 mmpose==1.3.2 mmdet==3.3.0 (--no-deps)"
"${PIP[@]}" "${CONSTRAINTS[@]}" --no-deps "mmengine==0.10.7" "mmpose==1.3.2" "mmdet==3.3.0"
if ! "$PYTHON" -c 'import xtcocotools._mask' >/dev/null 2>&1; then
  if [ -n "${CC:-}" ]; then compilers=("$CC"); else compilers=(cc gcc); fi
  found_cc=0
  for c in "${compilers[@]}"; do
    if command -v "${c%% *}" >/dev/null 2>&1; then found_cc=1; fi
  done
  if [ "$found_cc" = 0 ]; then
    die "xtcocotools must be compiled here (its wheels are built against numpy 1.x) but no C compiler was found (tried: ${compilers[*]}). Debian/Ubuntu: apt install build-essential python3-dev"
  fi
  if [ "$PROBE_python_h" = 0 ]; then
    die "xtcocotools must be compiled here but the Python headers (Python.h) of $PYTHON are missing. Debian/Ubuntu: apt install python3-dev (or python$PROBE_version-dev)"
  fi
  say "xtcocotools (from source, against numpy $("$PYTHON" -c 'import numpy; print(numpy.__version__)'))"
  "${PIP[@]}" "${CONSTRAINTS[@]}" --force-reinstall --no-deps --no-build-isolation --no-binary xtcocotools xtcocotools
fi
say "mmkp_ext (editable)"
"${PIP[@]}" --no-deps --no-build-isolation -e .
# An editable install does not carry the start-up hook's .pth (a wheel
# does): copy it into site-packages (see mmkp_ext_startup.py).
say "start-up hook: mmkp_ext_startup.pth (mmpose's own APIs import on mmcv-lite)"
"$PYTHON" -c 'import shutil, sysconfig; shutil.copy("mmkp_ext_startup.pth", sysconfig.get_paths()["purelib"])'

"$PYTHON" -c 'from mmpose.apis import init_model, inference_topdown' \
  || die "mmpose.apis does not import without importing mmkp_ext first (start-up hook mmkp_ext_startup.pth not active?)"
"$PYTHON" -c 'import mmkp_ext, mmpose.models, mmpose.visualization, xtcocotools._mask; print("[install] ok: mmkp_ext", mmkp_ext.__version__)'
mkdir -p "$ROOT/.install_stamps"
echo "$HASH $PYTHON" > "$STAMP"
say "done in $(( $(date +%s) - start )) s"
