"""The one way every benchmark prints its figures: a two-column table on stdout and, optionally, a JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def report(figures: dict[str, Any], json_path: Path | None) -> int:
    """Print the figures as a two-column table (nested dicts go only to the JSON) and write ``json_path``."""
    width = max(len(k) for k in figures)
    print(f"{'figure':<{width}}  value")
    for k, v in figures.items():
        if not isinstance(v, dict):
            print(f"{k:<{width}}  {v}")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {json_path}")
    return 0
