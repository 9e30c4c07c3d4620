"""Where the ONNX Runtime engine's time goes (docs/speed.md, "Inference runtimes"): one-off timings,
random weights, paper-size IWSLT models, a step halfway through a 23-token target.

    python workflow/scripts/profile_runtime.py step-parts --batch 32 --threads 2   # step vs cache reorder vs eager
    python workflow/scripts/profile_runtime.py int8-graphs --model lf                # fp32 / dynamic int8 / MatMulNBits
    python workflow/scripts/profile_runtime.py search-glue                          # our search around the graph
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch

from lightformer.decode.beam import SearchConfig, beam_search
from lightformer.decode.cache import init_cache
from lightformer.export.onnx import _quiet, export_onnx, quantize_int8
from lightformer.speed.bench import paper_size_models
from lightformer.speed.fast import prepare_for_inference
from lightformer.speed.runtime import RuntimeSearch, _session

STEP, TGT, SRC = 12, 23, 23


def ms(fn, n: int = 20) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e3


def model(which: str):
    models = paper_size_models("iwslt14")  # {name: model}: the dense baseline, then LightFormer k1
    name = next(n for n in models if n.endswith("baseline" if which == "dense" else "lf"))
    return prepare_for_inference(models[name])


def sources(batch: int) -> torch.Tensor:
    src = torch.randint(4, 8848, (batch, SRC), generator=torch.Generator().manual_seed(0))
    src[:, -1] = 2
    return src


@torch.inference_mode()
def at_step(rs: RuntimeSearch, src: torch.Tensor, beam: int):
    """A runtime cache ``STEP`` tokens into a search, and the step's feeds."""
    _, cache = rs.state(src, beam, TGT, None)
    cache.step.fill_(STEP)
    cache.self_mask[..., : STEP + 1] = True
    return cache, cache.feeds | {"token": np.full((src.size(0) * beam, 1), 5, dtype=np.int64)}


def step_parts(args) -> None:
    m = model(args.model)
    src, rows = sources(args.batch), args.batch * args.beam
    rs = RuntimeSearch(m, "onnxruntime", threads=args.threads)
    cache, feeds = at_step(rs, src, args.beam)
    order = torch.randperm(rows)
    with torch.inference_mode():
        enc = m.encoder(src)
        expand = torch.arange(args.batch).repeat_interleave(args.beam)
        enc.out, enc.padding_mask = enc.out.index_select(0, expand), None
        static = init_cache(m.decoder, enc, capacity=TGT + 1, static=True)
        tok = torch.full((rows, 1), 5)

        def eager_step():
            static.step.fill_(STEP)
            m.decoder(tok, None, static)

        print(f"{args.model}, {rows} rows, {args.threads} threads: ONNX Runtime step {ms(lambda: rs._step(feeds)):.1f} ms, "
              f"its cache reorder {ms(lambda: cache.reorder(order)):.1f} ms, eager static step {ms(eager_step):.1f} ms, "
              f"eager static reorder {ms(lambda: static.reorder(order)):.1f} ms")


def int8_graphs(args) -> None:
    with tempfile.TemporaryDirectory(prefix="lightformer-profile-") as tmp:  # the graphs are removed afterwards
        _int8_graphs(args, model(args.model), Path(tmp))


def _int8_graphs(args, m, tmp: Path) -> None:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    enc_path, step_path = export_onnx(m, tmp)
    graphs = {"fp32": step_path, "dynamic int8": quantize_int8(step_path, tmp)}
    for block in (32, 128):
        q = MatMulNBitsQuantizer(str(step_path), bits=8, block_size=block, is_symmetric=True, accuracy_level=4)
        with _quiet():
            q.process()
        graphs[f"MatMulNBits 8-bit, blocks of {block}"] = tmp / f"step.nbits{block}.onnx"
        onnx.save(q.model.model, str(graphs[f"MatMulNBits 8-bit, blocks of {block}"]))
    rs = RuntimeSearch(m, "onnxruntime", threads=args.threads, export=(enc_path, step_path))
    _, feeds = at_step(rs, sources(args.batch), args.beam)
    ref = None
    for name, path in graphs.items():
        run = _session("onnxruntime", path, args.threads)
        out = run(feeds)[0]
        ref = out if ref is None else ref
        print(f"{args.model} {name:34s} {ms(lambda: run(feeds), 100):6.2f} ms a step, "
              f"{len(onnx.load(str(path)).graph.node)} nodes, max |logit - fp32| {np.abs(out - ref).max():.3f}")


def search_glue(args) -> None:
    m = model(args.model)
    src = sources(args.batch)
    cfg = SearchConfig(beam=args.beam, max_len_a=0, max_len_b=TGT, fixed_length=True)
    rs = RuntimeSearch(m, "onnxruntime", threads=args.threads)
    enc = rs.encoder(src)
    full = ms(lambda: beam_search(m, src, cfg, encoder_out=enc, engine=rs), 30)
    real, saved = rs._step, []

    def replay(feeds):  # the graph's outputs from memory: what is left is our search
        if not saved:
            saved.append(real(feeds))
        return saved[0]

    rs._step = replay
    glue = ms(lambda: beam_search(m, src, cfg, encoder_out=enc, engine=rs), 30)
    print(f"{args.model}: the search {full:.1f} ms; with the graph's outputs replayed {glue:.1f} ms "
          f"({glue / (TGT + 1):.2f} ms a step)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["step-parts", "int8-graphs", "search-glue"])
    ap.add_argument("--model", choices=["dense", "lf"], default="lf")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    {"step-parts": step_parts, "int8-graphs": int8_graphs, "search-glue": search_glue}[args.what](args)


if __name__ == "__main__":
    main()
