"""What every plugin factory is handed besides its own config."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from l5d_twisted.telemetry.stats import NULL_STATS, StatsReceiver


@dataclass
class PluginContext:
    """The reactor (or a ``Clock`` in tests), stats, environment and config directory.

    ``env`` is the process environment by default; tests pass their own (``NODE_NAME``,
    ``POD_IP`` for the Kubernetes transformers).  ``namers`` maps a configured namer's
    prefix (``/io.l5d.fs``) to the namer, for plugins that need another plugin.
    """

    reactor: Any
    stats: StatsReceiver = NULL_STATS
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    config_dir: str = "."
    rng: random.Random = field(default_factory=random.Random)
    namers: dict[str, Any] = field(default_factory=dict)
