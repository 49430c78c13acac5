#!/usr/bin/env bash
# Autobahn's permessage-deflate cases (12.*, 13.*) against `tether serve` with each compression
# setting at its extremes (the defaults are covered by scripts/autobahn.sh's full run):
#   smallest:  --deflate-window-bits 9  --deflate-mem-level 1 --deflate-level 0
#   largest:   --deflate-window-bits 15 --deflate-mem-level 9 --deflate-level 9
#   no context takeover: --deflate-no-context-takeover
# Every case must be OK, as in scripts/autobahn.sh. About 9 minutes a setting on 2 cores.
# Usage: scripts/autobahn-deflate.sh [CASES]   (CASES defaults to "12.*,13.*")
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cases=${1:-12.*,13.*}
status=0
for flags in \
  "--deflate-window-bits 9 --deflate-mem-level 1 --deflate-level 0" \
  "--deflate-window-bits 15 --deflate-mem-level 9 --deflate-level 9" \
  "--deflate-no-context-takeover"; do
  echo "autobahn-deflate: tether serve $flags"
  TETHER_SERVE_FLAGS="$flags" bash scripts/autobahn.sh "$cases" || status=1
done
exit $status
