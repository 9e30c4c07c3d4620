"""LightFormer compression: plan (what and how), SVD transfer, sharing, parameter accounting."""
from lightformer.compress.count import count_parameters
from lightformer.compress.swap import swap_in_factors
from lightformer.compress.plan import Group, dense_total, make_plan
from lightformer.compress.spec import CompressionSpec
from lightformer.compress.transfer import compress, is_compressed

__all__ = ["CompressionSpec", "Group", "compress", "count_parameters", "dense_total", "swap_in_factors",
           "is_compressed", "make_plan"]
