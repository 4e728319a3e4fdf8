"""Activation: event design, identity hashing, CAPI payloads and client, delivery ledger, daily job, sandbox.

``activation`` may import ``pltv``; ``pltv`` never imports ``activation``.
"""
