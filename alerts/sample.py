"""What a rule compares with its threshold: one labelled value at one evaluation time.

Every signal source - a catalog metric, an SLO burn rate, the release
regression verdicts, the redesign scorecard - yields :class:`Sample`\\ s, so the
evaluator's state machine is the same for all of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Sample:
    """One series' value: ``labels`` name it (at least ``product``; ``version`` for per-release signals)."""

    labels: Mapping[str, str]
    value: float
    volume: float = math.inf  # what the rule's minimum-volume check reads (e.g. sessions in the window)
    evidence: Mapping[str, Any] = field(default_factory=dict)  # signals, values, baselines: shown to people
