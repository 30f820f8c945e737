#!/usr/bin/env bash
# Installs the system packages HoloFusion needs, only those that are missing.
# Idempotent: a second run installs nothing.
set -euo pipefail

missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

have_pkg libclang-dev || missing+=(libclang-dev)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)

if ((${#missing[@]})); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  echo "installing: ${missing[*]}"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not installed (install Rust with rustup: https://rustup.rs)" >&2
  exit 1
fi

# The Python clients the tests drive (SQLAlchemy over psycopg2), from PyPI,
# in target/client-venv.
venv="$(dirname "$0")/../target/client-venv"
if ! "$venv/bin/python" -c 'import sqlalchemy, psycopg2' >/dev/null 2>&1; then
  echo "installing the Python test clients into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    'sqlalchemy==2.0.59' 'psycopg2-binary==2.9.10'
fi
