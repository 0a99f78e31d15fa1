# Sourced by the Makefile: makes libtorch 2.11.0 available to cargo (tch 0.24.0 needs exactly
# that version), installing it once when missing. Choices, first match wins:
#   1. $LIBTORCH, a libtorch the user unpacked themselves;
#   2. the cached venv ${STOCHLAB_HOME:-~/.cache/stochlab}/torch-2.11.0 (shared by all clones);
#   3. a python3 on PATH whose torch is already 2.11.0;
#   4. otherwise: create the cached venv and pip-install torch==2.11.0 (and numpy, for the
#      Python reference benchmarks) into it.
# Messages go to stderr; nothing is printed on the happy path once installed.

_want=2.11.0
_home="${STOCHLAB_HOME:-$HOME/.cache/stochlab}"
_venv="$_home/torch-$_want"
_has_torch() { "$1" -c "import torch,sys; sys.exit(torch.__version__.split('+')[0] != '$_want')" 2>/dev/null; }

_stochlab_torch_env() {
  if [ -n "${LIBTORCH:-}" ]; then
    if [ ! -e "$LIBTORCH/lib/libtorch_cpu.so" ]; then
      echo "error: LIBTORCH=$LIBTORCH has no lib/libtorch_cpu.so; point it at an unpacked libtorch $_want or unset it" >&2
      return 1
    fi
    unset LIBTORCH_USE_PYTORCH
    export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    return 0
  fi
  if [ -x "$_venv/bin/python3" ] && _has_torch "$_venv/bin/python3"; then
    export PATH="$_venv/bin:$PATH"
  elif command -v python3 >/dev/null && _has_torch python3; then
    :
  else
    if ! command -v python3 >/dev/null; then
      echo "error: python3 not found; install Python 3.10+ with pip (e.g. apt-get install python3 python3-venv python3-pip) or set LIBTORCH" >&2
      return 1
    fi
    echo "stochlab: installing torch==$_want into $_venv (one time, ~4.6 GB download)..." >&2
    mkdir -p "$_home" || return 1
    # Installed in place: a broken-off install fails the import check above and is completed
    # by the next run (pip skips what is already there).
    if ! python3 -m venv "$_venv" >&2; then
      echo "error: python3 -m venv failed; install the venv module (e.g. apt-get install python3-venv) or set LIBTORCH" >&2
      return 1
    fi
    if ! "$_venv/bin/python3" -m pip install --quiet --disable-pip-version-check "torch==$_want" numpy >&2; then
      echo "error: pip could not install torch==$_want; check network access to PyPI and free disk space in $_home" >&2
      return 1
    fi
    export PATH="$_venv/bin:$PATH"
  fi
  export LIBTORCH_USE_PYTORCH=1
  unset VIRTUAL_ENV
}

_stochlab_torch_env
