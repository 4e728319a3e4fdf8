"""One exception tree for the ``activation`` package.

Messages name event ids, batch numbers, keys and Meta's error codes — never an identifier (raw or hashed),
a token or an appsecret_proof.
"""


class ActivationError(Exception):
    """Root of every error raised on purpose by ``activation``."""
