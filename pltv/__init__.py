"""pLTV modeling: sources and the data contract, point-in-time features, training, evaluation, registry.

Heavy dependencies (LightGBM, MLflow) are imported lazily by the modules that need them, so
``import pltv`` and ``pltv --help`` stay fast.
"""

from pltv.config import Config, load_config
from pltv.errors import (
    ConfigError,
    DataQualityError,
    InsufficientDataError,
    PltvError,
    RegistryError,
    SchemaError,
    SourceError,
)

__all__ = [
    "Config",
    "ConfigError",
    "DataQualityError",
    "InsufficientDataError",
    "PltvError",
    "RegistryError",
    "SchemaError",
    "SourceError",
    "load_config",
]
__version__ = "0.1.0"
