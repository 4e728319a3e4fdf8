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

# Lazy re-exports: training and registry pull in LightGBM/MLflow only when first used.
_LAZY = {
    "build_features": "pltv.features",
    "default_as_of": "pltv.features",
    "discover_event_names": "pltv.features",
    "feature_columns": "pltv.features",
    "HurdleLTV": "pltv.models",
    "TweedieLTV": "pltv.models",
    "EarlyRevenueMultiple": "pltv.models",
    "normalized_gini": "pltv.metrics",
    "decile_table": "pltv.metrics",
    "decile_mape": "pltv.metrics",
    "evaluate_holdout": "pltv.evaluate",
    "fit_send_day": "pltv.train",
    "open_source": "pltv.sources",
    "experiment_readout": "pltv.experiment",
    "lift_interval": "pltv.experiment",
    "maturity_curve": "pltv.maturity",
}
__all__ += sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pltv' has no attribute {name!r}")
