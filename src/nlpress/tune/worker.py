"""An extra local worker of ``nlpress tune --workers N``: the same search, no final report."""

from __future__ import annotations

import json
import sys


def main() -> int:
    from nlpress.tune.api import tune
    from nlpress.tune.commands import quiet_optuna

    quiet_optuna()

    kw = json.loads(sys.argv[1])
    tune(**kw, progress=False, _worker=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
