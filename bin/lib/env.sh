# shellcheck shell=bash
# Shared by bin/test, bin/demo and bin/render-templates: the project's own virtualenvs, made on first use.
VENV="${ANNEX_VENV:-$PWD/.venv}"
CHECKOV_VENV="${ANNEX_CHECKOV_VENV:-$PWD/.venv-checkov}"
ANALYZERS_VENV="${ANNEX_ANALYZERS_VENV:-$PWD/.venv-analyzers}"
PYTHON="${PYTHON:-python3}"

ensure_venv() {
  if [ ! -x "$VENV/bin/condor_annex" ] || [ setup.cfg -nt "$VENV/.installed" ]; then
    echo "bin: installing condor_annex and its test extras into $VENV" >&2
    "$PYTHON" -m venv "$VENV"
    if ! { "$VENV/bin/python" -m pip install --upgrade pip && "$VENV/bin/python" -m pip install -e '.[test]'; } >"$VENV.install.log" 2>&1; then
      tail -n 30 "$VENV.install.log" >&2
      echo "bin: installing into $VENV failed; the whole log is $VENV.install.log" >&2
      return 1
    fi
    touch "$VENV/.installed"
  fi
}

ensure_checkov() {
  if [ ! -x "$CHECKOV_VENV/bin/checkov" ]; then
    echo "bin: installing checkov into $CHECKOV_VENV" >&2
    "$PYTHON" -m venv "$CHECKOV_VENV"
    if ! "$CHECKOV_VENV/bin/python" -m pip install checkov >"$CHECKOV_VENV.install.log" 2>&1; then
      tail -n 30 "$CHECKOV_VENV.install.log" >&2
      echo "bin: installing checkov failed; the whole log is $CHECKOV_VENV.install.log" >&2
      return 1
    fi
  fi
  export ANNEX_CHECKOV="$CHECKOV_VENV/bin/checkov"
}

# cfripper and parliament (tests/test_analyzers.py) live together in their own environment: their pins
# (boto3, pydantic, PyYAML) must not move the project's. parliament imports pkg_resources, hence setuptools.
ensure_analyzers() {
  if [ ! -x "$ANALYZERS_VENV/bin/cfripper" ] || [ ! -x "$ANALYZERS_VENV/bin/parliament" ]; then
    echo "bin: installing cfripper and parliament into $ANALYZERS_VENV" >&2
    "$PYTHON" -m venv "$ANALYZERS_VENV"
    if ! "$ANALYZERS_VENV/bin/python" -m pip install 'cfripper>=1.22' 'parliament>=1.6' 'setuptools<81' >"$ANALYZERS_VENV.install.log" 2>&1; then
      tail -n 30 "$ANALYZERS_VENV.install.log" >&2
      echo "bin: installing cfripper and parliament failed; the whole log is $ANALYZERS_VENV.install.log" >&2
      return 1
    fi
  fi
  export ANNEX_CFRIPPER="$ANALYZERS_VENV/bin/cfripper"
  export ANNEX_PARLIAMENT="$ANALYZERS_VENV/bin/parliament"
}

# libfaketime moves a process's clock (the lease tests run the deployed lease code "after" its expiry).
ensure_faketime() {
  if ! command -v faketime >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bin: installing faketime (Debian package)" >&2
    { apt-get update -q && apt-get install -y -q faketime; } >/dev/null 2>&1 || echo "bin: could not install faketime" >&2
  fi
}

ensure_test_tools() {
  ensure_checkov
  ensure_analyzers
  ensure_faketime
}
