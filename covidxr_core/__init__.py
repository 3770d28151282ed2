"""covidxr_core: data loading, the parameterized six-conv CNN and one training run.

Importing this package is cheap: it imports neither Ray nor TensorFlow. Keras and the
backend are imported by the modules that build or train models, when they are used.
"""

from __future__ import annotations

from covidxr_core.errors import BadImageError, ConfigError, CovidxrError, DataError

__version__ = "0.1.0"

__all__ = ["BadImageError", "ConfigError", "CovidxrError", "DataError", "__version__"]
