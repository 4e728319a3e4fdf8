"""PSI of the sent values against the holdout's distribution."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from activation.report import population_stability_index, reference_bins


def test_same_distribution_has_psi_near_zero():
    """Values drawn like the holdout score a PSI well under the 0.1 'stable' line."""
    rng = np.random.default_rng(0)
    ref = reference_bins(rng.lognormal(3, 1, 20_000))
    assert population_stability_index(ref["edges"], ref["shares"], rng.lognormal(3, 1, 5_000)) < 0.02


def test_shifted_distribution_crosses_the_warning_line():
    """Values twice as large as the holdout's score a PSI above 0.2."""
    rng = np.random.default_rng(1)
    ref = reference_bins(rng.lognormal(3, 1, 20_000))
    assert population_stability_index(ref["edges"], ref["shares"], 2 * rng.lognormal(3, 1, 5_000)) > 0.2


def test_hand_computed_example():
    """Two bins, 50/50 expected, 80/20 observed: (0.8-0.5)ln(0.8/0.5) + (0.2-0.5)ln(0.2/0.5)."""
    psi = population_stability_index([1.0], [0.5, 0.5], [0.5] * 8 + [2.0] * 2)
    assert psi == pytest.approx(0.3 * np.log(1.6) + 0.3 * np.log(2.5))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0.01, max_value=1e4), min_size=20, max_size=300))
def test_reference_shares_sum_to_one_and_psi_is_non_negative(values):
    """Reference shares form a distribution; PSI is never negative."""
    ref = reference_bins(values)
    assert sum(ref["shares"]) == pytest.approx(1.0)
    assert population_stability_index(ref["edges"], ref["shares"], values[::-1]) >= -1e-12
