"""Model zoo: ``create_model(name)``, ``list_models()``, ``get_model_info(name)``.

Importing this package registers every architecture (one file each).
"""

from edge_iqa.models.registry import ModelInfo, create_model, get_model_info, list_models, register_model

# One import per architecture file; each registers its variants.
from edge_iqa.models import edge_hybrid  # noqa: E402,F401  isort: skip
from edge_iqa.models import topiq  # noqa: E402,F401  isort: skip
from edge_iqa.models import loda  # noqa: E402,F401  isort: skip
from edge_iqa.models import dgiqa  # noqa: E402,F401  isort: skip
from edge_iqa.models import glintiqa  # noqa: E402,F401  isort: skip

__all__ = ["ModelInfo", "create_model", "get_model_info", "list_models", "register_model"]
