#!/usr/bin/env python3
"""Parses a `/metrics` page read from stdin with Python prometheus-client (PyPI), the independent
parser of crates/tether/tests/metrics.rs, and prints what it understood as one JSON object:

    {"families": {NAME: {"type": ..., "unit": ..., "help": ..., "samples": [[NAME, {LABELS}, VALUE], ...]}},
     "classic": [[NAME, {LABELS}, VALUE], ...]}

`families` comes from the strict OpenMetrics parser (prometheus_client.openmetrics.parser), which
refuses a page that breaks the format: a missing `# EOF`, a counter sample without `_total`, a
unit that is not the name's suffix, a family described twice, a histogram without its `+Inf`
bucket or with decreasing buckets. `classic` is every sample as the classic Prometheus text parser
(prometheus_client.parser) reads the same page; that parser is lax (it takes an OpenMetrics
counter's `_total` samples as untyped ones), so only its samples are compared, not its types.

Exits 1 with the parser's error on stderr when either parser refuses the page.
Needs `prometheus-client` on the `python3` of PATH (scripts/test.sh installs it into its venv).
"""

import json
import math
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as classic_families


def value(number):
    """JSON has no infinities: they are written as strings, as the text format writes them."""
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return number


def main():
    page = sys.stdin.read()
    families = {}
    try:
        for family in openmetrics_families(page):
            if family.name in families:
                raise ValueError(f"family {family.name} described twice")
            families[family.name] = {
                "type": family.type,
                "unit": family.unit,
                "help": family.documentation,
                "samples": [[s.name, s.labels, value(s.value)] for s in family.samples],
            }
    except ValueError as error:
        print(f"OpenMetrics parser refused the page: {error!r}", file=sys.stderr)
        return 1
    try:
        classic = [[s.name, s.labels, value(s.value)] for family in classic_families(page) for s in family.samples]
    except ValueError as error:
        print(f"classic parser refused the page: {error!r}", file=sys.stderr)
        return 1
    json.dump({"families": families, "classic": classic}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
