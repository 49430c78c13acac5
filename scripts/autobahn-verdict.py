"""Reads an Autobahn|Testsuite index.json and fails unless every case of the agent is OK.

INFORMATIONAL (cases that only record behaviour) counts as OK; FAILED, NON-STRICT and UNIMPLEMENTED,
in the case itself or in its closing behaviour, fail the run.
Usage: autobahn-verdict.py INDEX_JSON AGENT ELAPSED_SECONDS CASES LABEL
"""
import collections
import json
import sys

index_path, agent, elapsed, cases, label = sys.argv[1:]
results = json.load(open(index_path))[agent]
acceptable = {"OK", "INFORMATIONAL"}
behavior = collections.Counter(r["behavior"] for r in results.values())
closing = collections.Counter(r["behaviorClose"] for r in results.values())
bad = sorted(
    (case for case, r in results.items() if r["behavior"] not in acceptable or r["behaviorClose"] not in acceptable),
    key=lambda c: [int(p) for p in c.split(".")],
)
print(f"{label}: {len(results)} cases in {elapsed} s")
print(f"{label}: behavior       " + ", ".join(f"{k} {v}" for k, v in sorted(behavior.items())))
print(f"{label}: close behavior " + ", ".join(f"{k} {v}" for k, v in sorted(closing.items())))
for case in bad:
    r = results[case]
    print(f"{label}: case {case}: {r['behavior']} / close {r['behaviorClose']}")
if cases == "*" and len(results) != 517:
    print(f"{label}: expected 517 cases, got {len(results)}")
    sys.exit(1)
if bad:
    sys.exit(1)
print(f"{label}: {len(results)} passed, 0 failed")
