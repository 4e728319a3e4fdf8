"""One exception tree for the ``pltv`` package.

Every error the library raises on purpose is a :class:`PltvError`; leaves also subclass the builtin they
resemble so that callers catching ``ValueError`` keep working. Messages name the table, column and row key,
never a value that may be personal data or a secret.
"""


class PltvError(Exception):
    """Root of every error raised on purpose by ``pltv``."""


class ConfigError(PltvError, ValueError):
    """The configuration (``pltv.toml`` or CLI flags) is invalid."""


class SourceError(PltvError, OSError):
    """A source path cannot be opened or does not hold the expected tables."""


class SchemaError(PltvError, ValueError):
    """A table lacks a required column, or a column has the wrong type."""


class DataQualityError(PltvError, ValueError):
    """Rows violate the data contract (duplicate keys, unparseable timestamps, mixed currencies...)."""


class InsufficientDataError(PltvError, ValueError):
    """Too few matured users or payers to train or evaluate honestly."""


class RegistryError(PltvError, RuntimeError):
    """The MLflow model registry is missing a model/version/alias, or is inconsistent."""
