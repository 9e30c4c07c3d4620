"""nn.Modules: the fairseq-faithful Transformer and its low-rank building blocks."""
from lightformer.models.lowrank import Embedding, FactorizedEmbedding, LowRankLinear
from lightformer.models.transformer import EncoderOut, Transformer

__all__ = ["Embedding", "FactorizedEmbedding", "LowRankLinear", "Transformer", "EncoderOut"]
