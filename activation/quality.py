"""Match quality: key coverage over the events sent and an EMQ-*style* estimate (not Meta's score)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from activation.meta import USER_DATA_KEYS

#: Relative importance per key. Meta publishes no formula: these follow Meta's named high-quality keys
#: (em, client_ip_address, fn/ln, ph [BP]) and its per-key ACR uplift figures (email 58.96% vs IP 20.65%
#: [DQ]; fbc +100%, em +29%, fbp +13%, external_id +13%, ph +12% in Events Manager guidance).
MATCH_KEY_WEIGHTS: Mapping[str, float] = {
    "em": 3.0,
    "fbc": 2.0,
    "ph": 1.5,
    "client_ip_address": 1.0,
    "external_id": 0.8,
    "fbp": 0.8,
    "client_user_agent": 0.5,
    "fn": 0.4,
    "ln": 0.4,
    "madid": 0.4,
    "anon_id": 0.2,
    "db": 0.2,
    "zp": 0.2,
    "ct": 0.15,
    "st": 0.1,
    "country": 0.1,
    "ge": 0.05,
}


@dataclass(frozen=True)
class MatchQualityEstimate:
    """Coverage per key and an EMQ-style 0-10 score. An ESTIMATE, not Meta's Event Match Quality."""

    events: int
    coverage: Mapping[str, float]
    estimated_score: float
    label: str = "estimated EMQ (heuristic from key coverage; Meta's real EMQ is in Events Manager)"

    def render(self) -> str:
        """One line per covered key, then the estimate with its label."""
        keys = ", ".join(f"{k}={v:.0%}" for k, v in self.coverage.items() if v > 0)
        return f"{self.label}: {self.estimated_score:.1f}/10 over {self.events:,} events; coverage: {keys}"


def estimate_match_quality(user_datas: Iterable[Mapping[str, Any]]) -> MatchQualityEstimate:
    """Key coverage over events and a weighted 0-10 estimate (10 = every weighted key on every event)."""
    counts = dict.fromkeys(USER_DATA_KEYS, 0)
    n = 0
    for ud in user_datas:
        n += 1
        for k in ud:
            if k in counts:
                counts[k] += 1
    coverage = {k: (c / n if n else 0.0) for k, c in counts.items()}
    total = sum(MATCH_KEY_WEIGHTS.values())
    score = 10.0 * sum(MATCH_KEY_WEIGHTS.get(k, 0.0) * c for k, c in coverage.items()) / total
    return MatchQualityEstimate(events=n, coverage=coverage, estimated_score=round(score, 2))
