"""Unit tests may import the test helpers that live beside the e2e tests (``gitserver``).

Appended, not prepended, to ``sys.path``: the unit tests' own modules come first.
"""

from __future__ import annotations

import sys
from pathlib import Path

_E2E = str(Path(__file__).resolve().parent.parent / "e2e")
if _E2E not in sys.path:
    sys.path.append(_E2E)
