#!/usr/bin/env bash
# Installs Autobahn|Testsuite (`wstest`), the standard WebSocket conformance suite, into .tools/wstest.
#
# wstest runs on Python 2.7 only. We look for an interpreter in this order: a pyenv 2.7 build, the
# system's python2.7, and finally Debian bullseye's python2.7 package (pinned low so nothing else is
# taken from bullseye). The suite goes into that Python 2.7's own site-packages (pyenv's, or the
# python2.7 installed here for it alone); python3 only downloads pip wheels, from a venv.
# Idempotent: prints the path of a working wstest and exits 0 when it is already installed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
wstest="$root/.tools/bin/wstest"

if [ -x "$wstest" ] && "$wstest" --autobahnversion >/dev/null 2>&1; then
  echo "$wstest"
  exit 0
fi

find_python2() {
  local candidate
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python2.7 /usr/bin/python2.7 /usr/local/bin/python2.7; do
    if [ -x "$candidate" ] && "$candidate" --version >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if ! python2=$(find_python2); then
  echo "install-wstest: installing python2.7 from Debian bullseye" >&2
  export DEBIAN_FRONTEND=noninteractive
  cat >/etc/apt/sources.list.d/bullseye-python2.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  cat >/etc/apt/preferences.d/bullseye-python2 <<'PIN'
Package: *
Pin: release n=bullseye
Pin-Priority: 100
PIN
  apt-get update -qq >&2
  apt-get install -y -qq -t bullseye python2.7 python2.7-dev >&2
  python2=$(find_python2)
fi

if ! "$python2" -m pip --version >/dev/null 2>&1; then
  # pip releases that still support Python 2.7, fetched as wheels by python3 (PyPI is reachable),
  # with the pip of a virtual environment under the build directory: Debian's python3 has no pip
  # of its own, and nothing is installed into the system Python.
  venv="${CARGO_TARGET_DIR:-$root/target}/venv"
  [ -x "$venv/bin/python3" ] || python3 -m venv "$venv" >&2
  wheels=$(mktemp -d)
  "$venv/bin/python3" -m pip download -q --disable-pip-version-check --no-deps -d "$wheels" \
    "pip==20.3.4" "setuptools==44.1.1" "wheel==0.37.1" >&2
  "$python2" "$wheels"/pip-20.3.4-py2.py3-none-any.whl/pip install -q --no-index "$wheels"/*.whl >&2
  rm -rf "$wheels"
fi
"$python2" -m pip install -q --disable-pip-version-check "autobahntestsuite==25.10.1" >&2

# A wrapper that runs the suite with exactly this interpreter, wherever pip put its scripts.
mkdir -p "$(dirname "$wstest")"
cat >"$wstest" <<WRAP
#!/bin/sh
exec "$python2" -c 'import sys; from autobahntestsuite.wstest import run; sys.argv[0] = "wstest"; run()' "\$@"
WRAP
chmod +x "$wstest"
"$wstest" --autobahnversion >/dev/null
echo "$wstest"
