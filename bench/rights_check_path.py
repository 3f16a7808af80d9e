"""Which of our modules a rights check runs through, from the route to the answer.

Builds the HTTP tests' world on SQLite (two insurers, a pharmacy with an API token), sends
one warm-up rights check, then traces a second one and prints, as JSON lines, the project
modules whose code ran (in first-call order) and their count per layer. A reader's map of
the hot path, and the before/after figure of a reorganisation.

Usage: PYTHONPATH=. python bench/rights_check_path.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from tests.api.world import TODAY, build_world, close_world


class _TempDirs:
    """What ``build_world`` needs of pytest's tmp_path_factory on SQLite."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tp-path-"))
        self.count = 0

    def mktemp(self, name: str) -> Path:
        self.count += 1
        path = self.root / f"{name}{self.count}"
        path.mkdir()
        return path


def main() -> int:
    world = build_world("sqlite", None, _TempDirs(), count=20)  # type: ignore[arg-type]
    person = next(iter(world.people.values()))[0]
    body = {"card": person.card(), "care_date": TODAY.isoformat(), "domains": ["PHAR"]}
    headers = world.pharmacy.headers
    first = world.client.post("/v1/eligibility", json=body, headers=headers)
    if first.status_code != 200:
        print(json.dumps({"error": first.status_code, "body": first.text}))
        return 1
    seen: dict[str, None] = {}

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call":
            module = frame.f_globals.get("__name__", "")
            if module.startswith("tierspayant.") and module not in seen:
                seen[module] = None

    sys.setprofile(profile)
    import threading

    threading.setprofile(profile)
    try:
        answer = world.client.post("/v1/eligibility", json=body, headers=headers)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    close_world(world)
    if answer.status_code != 200 or "rights" not in answer.json():
        print(json.dumps({"error": answer.status_code, "body": answer.text}))
        return 1
    layers: dict[str, int] = {}
    for module in seen:
        layer = module.split(".")[1]
        layers[layer] = layers.get(layer, 0) + 1
    print(json.dumps({"benchmark": "rights_check_path", "modules": len(seen), "layers": layers}))
    print(json.dumps({"benchmark": "rights_check_path", "order": list(seen)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
