#!/usr/bin/env bash
# Browser tests (every tests/browser/*.test.mjs, in headless Chromium: Debian's /usr/bin/chromium
# driven by playwright-core): demo.test.mjs and channels.test.mjs start `tether serve --port 0` and
# drive the demo pages; auth.test.mjs starts `tether serve --port 0 --demo-tokens
# --demo-token-secs 4` and drives the chat's sign-in, token refresh and refusal messages;
# admin.test.mjs starts `tether serve --port 0 --admin-password ...` and drives the admin dashboard
# (login, live count, search, Disconnect, Publish; admin-desktop.png and admin-phone.png);
# token.test.mjs checks tether.js's token logic, and demo-fake.test.mjs the demo pages' handling of
# stopped clients and sign-in failures, against an in-process fake (fake-auth.mjs).
# Screenshots land in reports/browser/. TETHER_BIN=tests/browser/fake-tether.mjs runs the server
# tests against the JavaScript stand-in instead of the binary.
#
# Installs what it needs on first use: Debian's chromium (Playwright's own browser downloads cannot
# work here) and the npm packages of tests/browser (npm ci, from the committed package-lock.json).
# Environment: TETHER_BIN (default: build $CARGO_TARGET_DIR/debug/tether with cargo, target/ when
# CARGO_TARGET_DIR is unset); CHROMIUM (default
# /usr/bin/chromium). Runnable from any directory; exits non-zero if anything fails.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tests="$root/tests/browser"
step() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "error: need root to run: $*" >&2; exit 1
  fi
}

missing=()
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

# node_modules is fresh when it was installed from the current package-lock.json.
lock_sum=$(sha256sum "$tests/package-lock.json" | cut -d' ' -f1)
stamp="$tests/node_modules/.installed-from-lock"
if [ ! -d "$tests/node_modules" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]; then
  step "npm ci (tests/browser)"
  (cd "$tests" && npm ci --no-audit --no-fund)
  echo "$lock_sum" >"$stamp"
fi

if [ -z "${TETHER_BIN:-}" ]; then
  step "cargo build -p tether"
  (cd "$root" && cargo build -p tether)
  # Where cargo put it: CARGO_TARGET_DIR when set (relative to $root, where cargo ran), else target/.
  target_dir="${CARGO_TARGET_DIR:-target}"
  case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
  export TETHER_BIN="$target_dir/debug/tether"
else
  TETHER_BIN=$(cd "$(dirname "$TETHER_BIN")" && pwd)/$(basename "$TETHER_BIN")
  export TETHER_BIN
fi

step "node --test (tests/browser) against $TETHER_BIN"
cd "$tests"
node --test
