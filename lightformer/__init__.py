"""LightFormer reproduction harness: a fairseq-faithful Transformer, SVD-based weight transfer
with parameter sharing, exact parameter accounting, and checkpoints that carry their plan."""
from __future__ import annotations

from lightformer.checkpoint import load_checkpoint, save_checkpoint
from lightformer.compress import CompressionSpec, compress, count_parameters
from lightformer.config import PRESETS, ModelConfig, model_config
from lightformer.errors import LightformerError
from lightformer.models import Transformer
from lightformer.models.build import build_model
from lightformer.version import __version__

__all__ = ["CompressionSpec", "LightformerError", "ModelConfig", "PRESETS", "Transformer", "build_model",
           "compress", "count_parameters", "load_checkpoint", "model_config", "save_checkpoint", "__version__"]
