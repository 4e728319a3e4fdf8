"""Shared fixtures: a real sandbox on a loopback port, reset before each test."""

from __future__ import annotations

import pytest
import requests

from activation.sandbox import Sandbox


@pytest.fixture(scope="module")
def sandbox():
    """One sandbox per module, reset between tests."""
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def sb(sandbox):
    """The module's sandbox, emptied and fault-free."""
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5)
    sandbox.set_faults(rate=0.0, seed=0)
    return sandbox
