"""Record the config hash of every registered experiment and every sweep member at every scale.

The run store and the committed ``results/`` are keyed by these hashes, so a refactor that changes one
silently makes every stored run of that config stale. ``tests/test_config_hashes_unchanged.py``
recomputes this table and compares it with ``tests/data/config_hashes.json``, which this script wrote
on the commit named in the fixture (the last commit before the study families moved into packages).

    PYTHONPATH=$PWD python scripts/record_config_hashes.py > tests/data/config_hashes.json
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from theorybench import registry


def config_hashes(scales=registry.SCALES) -> dict[str, dict[str, object]]:
    """``{"experiment NAME" | "sweep NAME": {scale: hash | [[member name, hash], ...] | "error: ..."}}``.

    A build that refuses a scale is recorded as its error text, so a scale that starts or stops being
    buildable shows as a difference too."""
    registry.load_studies()
    table: dict[str, dict[str, object]] = {}
    for name, spec in registry.experiments().items():
        table[f"experiment {name}"] = {scale: _guard(lambda s=scale: spec.build(s).config_hash())
                                       for scale in scales}
    for name, spec in registry.sweeps().items():
        table[f"sweep {name}"] = {scale: _guard(lambda s=scale: [[c.name, c.config_hash()] for c in spec.members(s)])
                                  for scale in scales}
    return table


def _guard(compute):
    try:
        return compute()
    except Exception as err:  # noqa: BLE001 — a refusal is part of what is recorded
        return f"error: {type(err).__name__}: {err}"


def _head() -> str:
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                          check=True).stdout.strip()


def main() -> int:
    json.dump({"commit": _head(), "hashes": config_hashes()}, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
