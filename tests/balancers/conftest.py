"""The balancer tests share the resilience tests' doubles (tests/resilience/resilience_fakes.py)."""

import sys
from pathlib import Path

_FAKES_DIR = str(Path(__file__).resolve().parent.parent / "resilience")
if _FAKES_DIR not in sys.path:
    sys.path.insert(0, _FAKES_DIR)
