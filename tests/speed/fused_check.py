"""Run by tests/speed/test_fused.py in a fresh interpreter with TRITON_INTERPRET=1 (Triton reads
it when kernels are defined): the fused kernel and the fused model against the two-product ones."""
import json
import os
import sys

assert os.environ.get("TRITON_INTERPRET") == "1"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import lightformer as lf  # noqa: E402
from lightformer.decode.beam import SearchConfig, beam_search  # noqa: E402
from lightformer.speed.fast import prepare_for_inference  # noqa: E402
from lightformer.speed.fused import FusedLowRank, lowrank_linear, lowrank_linear_split  # noqa: E402
from tests.conftest import batch, trained_like  # noqa: E402

torch.manual_seed(0)
out = {"kernel": [], "models": []}
# shapes: odd sizes (masks), rank above one block, 3-d input, no bias, one row; fp16 stands for the
# 16-bit path (the interpreter mishandles bf16 stores; bf16 is checked on the GPU by gpu_speed_check.sh)
for M, K, N, R, bias, dtype in [(5, 32, 48, 7, True, torch.float32), (40, 64, 100, 70, False, torch.float32),
                                (3, 72, 56, 33, True, torch.float16), (1, 16, 16, 16, True, torch.float32)]:
    x = torch.randn(M, 2, K, dtype=dtype)
    A, B = torch.randn(N, R, dtype=dtype), torch.randn(R, K, dtype=dtype)
    b = torch.randn(N, dtype=dtype) if bias else None
    ref = F.linear(F.linear(x, B), A, b)
    scale = ref.float().abs().max().item()
    for kernel, fn in (("one program per block", lowrank_linear), ("rank-parallel", lowrank_linear_split)):
        y = fn(x, A, B, b)
        out["kernel"].append({"kernel": kernel, "shape": [M, K, N, R], "dtype": str(dtype), "out_shape": list(y.shape),
                              "out_dtype": str(y.dtype), "rel_err": (y.float() - ref.float()).abs().max().item() / scale})
# above max_rows the module takes the two-product path
m = FusedLowRank(torch.randn(8, 4), torch.randn(4, 6), None, max_rows=2)
x = torch.randn(3, 6)
out["fallback_equal"] = bool(torch.equal(m(x), F.linear(F.linear(x, m.B), m.A)))
big = FusedLowRank(torch.randn(8, 4), torch.randn(4, 6), None, max_rank=3)  # rank 4 > 3: two products
out["fallback_rank"] = (not big.fused) and bool(torch.equal(big(x), F.linear(F.linear(x, big.B), big.A)))

src, prev = batch(40, 40)
for name, opts in [("k1", dict(rank=6)), ("qkv", dict(rank=6, share_qkv=True)),
                   ("k2", dict(rank=5, share_layers=2)), ("emb", dict(rank=6, roles=["body", "embeddings"]))]:
    dense = trained_like(lf.build_model("transformer_tiny6", 40, 40, seed=1, share_all_embeddings=True)).eval()
    small = lf.compress(dense, **opts)
    ref = prepare_for_inference(small)
    fused = prepare_for_inference(small, fused_lowrank=True)
    kinds = sorted({type(mod).__name__ for mod in fused.modules()} & {"FusedLowRank", "PackedQKV", "LowRankLinear"})
    with torch.inference_mode():
        a, b = ref(src, prev), fused(src, prev)
        cfg = SearchConfig(beam=3, max_len_b=8)
        ha, hb = beam_search(ref, src, cfg), beam_search(fused, src, cfg)
    out["models"].append({"name": name, "kinds": kinds, "max_abs": (a - b).abs().max().item(),
                          "same_hypotheses": [[h.tokens for h in x] for x in ha] == [[h.tokens for h in x] for x in hb]})
print(json.dumps(out))
