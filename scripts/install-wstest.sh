#!/usr/bin/env bash
# Installs Autobahn|Testsuite (`wstest`), the standard WebSocket conformance suite, into .tools/wstest.
#
# wstest runs on Python 2.7 only. We look for an interpreter in this order: a pyenv 2.7 build, the
# system's python2.7, and finally Debian bullseye's python2.7 package (pinned low so nothing else is
# taken from bullseye). The suite goes into a virtual environment of that Python 2.7 under
# .tools/ (see below), never into the interpreter's own site-packages.
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

# The suite goes into a virtual environment of its own, .tools/wstest-env, made for this Python
# 2.7 by `virtualenv` (the last release that still creates 2.7 environments, with the pip wheels
# for 2.7 it carries), which runs from a Python 3 venv under the build directory: nothing is
# installed into any system or pyenv Python.
venv="${CARGO_TARGET_DIR:-$root/target}/venv"
[ -x "$venv/bin/python3" ] || python3 -m venv "$venv" >&2
"$venv/bin/python3" -m pip install -q --disable-pip-version-check "virtualenv==20.21.1" >&2
env2="$root/.tools/wstest-env"
[ -x "$env2/bin/python" ] || "$venv/bin/python3" -m virtualenv -q -p "$python2" "$env2" >&2
"$env2/bin/python" -m pip install -q --disable-pip-version-check "autobahntestsuite==25.10.1" >&2
python2="$env2/bin/python"

# A wrapper that runs the suite with exactly this interpreter, wherever pip put its scripts.
mkdir -p "$(dirname "$wstest")"
cat >"$wstest" <<WRAP
#!/bin/sh
exec "$python2" -c 'import sys; from autobahntestsuite.wstest import run; sys.argv[0] = "wstest"; run()' "\$@"
WRAP
chmod +x "$wstest"
"$wstest" --autobahnversion >/dev/null
echo "$wstest"
