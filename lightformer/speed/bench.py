"""Speed protocols you can compare across papers (docs/reference.md §6).

* ``latency`` (HAT): batch 1, a source of ``src_len`` tokens (23 IWSLT, 30 WMT), beam as the
  decoder's batch; encoder and decoder timed separately; the mean of the 10th–90th percentiles.
* ``throughput`` (fairseq-generate): a set of sentences translated in batches of ``batch``
  sentences with beam ``beam``; sentences/s and generated tokens/s.

Models run interleaved (A B A B ...) in one process after a warm-up, and each model's speedup
over the first is taken run by run, so drifts in clock or load hit both sides of every ratio.
``fixed_length`` decodes exactly ``tgt_len`` steps whatever the scores say, so untrained or
random-weight models can be timed. Every row carries the conditions it was measured under.
"""
from __future__ import annotations

import datetime as _dt
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from lightformer.compress.count import count_parameters
from lightformer.config import EOS
from lightformer.data.batching import collate
from lightformer.decode.beam import SearchConfig, beam_search
from lightformer.decode.cache import init_cache
from lightformer.decode.device_search import device_beam_search
from lightformer.errors import LightformerError
from lightformer.gpu import pick_device
from lightformer.hardware import device_name
from lightformer.io import command_line
from lightformer.options import check_fields, option
from lightformer.paper import SIZES
from lightformer.speed.fast import prepare_for_inference

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# how our models decode: operator by operator, compiled graphs, or exported to an inference runtime
ENGINES = ("eager", "compiled", "onnxruntime", "openvino")
ENGINE_LABEL = {"eager": "lightformer", "compiled": "lightformer-compiled",  # the rows' engine column
                "onnxruntime": "lightformer-onnxruntime", "openvino": "lightformer-openvino"}

def paper_size_models(task: str, seed: int = 1) -> dict:
    """A random-weight dense model of ``task``'s paper size and a LightFormer of the shapes SVD
    transfer gives at the abstract's ratio: speed depends on shapes, not weights, so the factors
    are drawn at random (init 'random') rather than paying for the SVDs."""
    from lightformer.compress.transfer import compress
    from lightformer.models.build import build_model

    if task not in SIZES:
        raise LightformerError(f"no paper size is known for task {task!r}; known: {', '.join(SIZES)}")
    p = SIZES[task]
    dense = build_model(p["arch"], p["src_vocab"], p["tgt_vocab"], seed=seed, **p["overrides"])
    return {f"{task}_paper_size_baseline": dense, f"{task}_paper_size_lf": compress(dense, ratio=p["ratio"], init="random")}


def load_speed_entries(entries: list[str], names: list[str] | None = None) -> tuple[dict, list[str]]:
    """({name: model}, the checkpoint column) for ``lightformer speed``'s entries: checkpoints, or
    ``ct2:DIR[:PRECISION]`` for CTranslate2 models. Names are the file stems, the entries
    themselves where stems collide, or ``names``."""
    from lightformer.checkpoint import load_checkpoint
    from lightformer.speed.ct2 import CT2Model, is_ct2, parse_entry

    parsed = [parse_entry(p) if is_ct2(p) else None for p in entries]
    stems = [(f"ct2_{Path(e[0]).name}" + (f"_{e[1]}" if e[1] else "")) if e else Path(p).name.split(".")[0]
             for p, e in zip(entries, parsed)]
    chosen = stems if len(set(stems)) == len(stems) else list(entries)
    if names:
        if len(names) != len(entries) or len(set(names)) != len(names):
            raise LightformerError(f"--names needs {len(entries)} distinct names, one per checkpoint")
        chosen = names
    models = {n: CT2Model(*e) if e else load_checkpoint(p) for n, p, e in zip(chosen, entries, parsed)}
    return models, list(entries)


def split_sources(data: str, split: str) -> list[torch.Tensor]:
    """A prepared split's source sentences (token ids with </s>), as the throughput set."""
    from lightformer.data.indexed import ParallelData

    src, _ = ParallelData(data).split(split)
    return [src[i] for i in range(len(src))]


@dataclass
class SpeedConfig:
    """The timing protocol (docs/speed.md); each field is also an option of ``lightformer speed``."""
    protocol: str = option("latency", choices=("latency", "throughput"),
                           help="latency: one sentence at a time; throughput: batches of a set")
    device: str = option("cpu", help="cpu, cuda or cuda:N")
    dtype: str = option("fp32", choices=tuple(DTYPES), help="weights and activations (GPU: bf16 or fp16)")
    threads: int | None = option(None, check="at_least_1", help="CPU threads, fixed for the run (default: torch's)")
    beam: int = option(SearchConfig.beam, check="at_least_1", help="beam size, as generate's")
    lenpen: float = option(SearchConfig.lenpen, check="finite", help="length penalty, as generate's")
    src_len: int = option(23, check="at_least_1", help="source tokens incl. </s>: 23 IWSLT, 30 WMT (HAT); "
                                                       "throughput: the mean")
    tgt_len: int | None = option(None, check="at_least_1", help="decoder steps in fixed-length mode (default: src-len)")
    batch: int = option(128, check="at_least_1", help="throughput: sentences per batch")
    sentences: int = option(512, check="at_least_1", help="throughput: size of the synthetic set")
    runs: int = option(300, check="at_least_1", help="latency: timed runs per model; throughput: passes over the set")
    warmup: int = option(5, check="nonnegative", help="untimed runs first")
    fixed_length: bool = option(True, flag="--free-length", help="stop at </s> (trained models only)")
    fast: bool = option(True, flag="--no-fast-path", help="time the training-time modules as they are")
    cuda_graph: bool = option(False, help="GPU: replay each decoder step as a CUDA graph (captured in the warm-up)")
    whole_step: bool = option(False, help="the whole search step on the device, finished hypotheses included "
                                          "(decode/device_search.py); with --cuda-graph the graph holds all of it and "
                                          "the host never waits for a step")
    fused_lowrank: bool = option(False, help="GPU: each low-rank product A(Bx)+b (packed q/k/v too) in one Triton "
                                             "launch (speed/fused.py)")
    int8: bool = option(False, help="CPU: every product in int8 (FBGEMM, dynamic activations; speed/int8.py); "
                                    "changes outputs slightly")
    engines: tuple[str, ...] = option(("eager",), flag="--engine", choices=ENGINES,
                                      help="how our models decode, each timed in the same interleaved run: eager "
                                           "(operator by operator), compiled (CPU: TorchInductor graphs per search "
                                           "step, built in the warm-up; decode/compiled.py), onnxruntime or openvino "
                                           "(CPU: encoder and decoder step exported to ONNX, run in that runtime, "
                                           "quantised by ONNX Runtime under --int8; speed/runtime.py)")
    seed: int = option(0, check="nonnegative", help="the synthetic sources")

    def __post_init__(self):
        if self.protocol not in ("latency", "throughput"):
            raise LightformerError(f"protocol={self.protocol!r} is invalid; allowed: latency, throughput")
        if self.dtype not in DTYPES:
            raise LightformerError(f"dtype={self.dtype!r} is invalid; allowed: {', '.join(DTYPES)}")
        check_fields(self)
        if self.src_len < 2:
            raise LightformerError(f"src_len={self.src_len} is too short: allowed >= 2 (tokens + </s>)")
        self.tgt_len = self.tgt_len or self.src_len
        if self.fused_lowrank and not self.fast:
            raise LightformerError("--fused-lowrank is part of the fast path; drop --no-fast-path")
        if self.cuda_graph and not self.device.startswith("cuda"):
            raise LightformerError("cuda_graph needs --device cuda")
        if self.fused_lowrank:
            from lightformer.speed.fused import check_fused

            check_fused(torch.device(self.device), DTYPES[self.dtype])
        if self.int8:
            from lightformer.speed.int8 import check_int8

            if not self.fast:
                raise LightformerError("--int8 is part of the fast path; drop --no-fast-path")
            check_int8(torch.device(self.device), DTYPES[self.dtype])
        if self.whole_step and tuple(self.engines) != ("eager",):
            raise LightformerError("--whole-step runs the models' own modules: use it with --engine eager")
        if self.cuda_graph and self.warmup < 1:
            raise LightformerError("cuda_graph needs warmup >= 1: graphs are captured in the warm-up")
        self.engines = tuple(self.engines)
        bad = [e for e in self.engines if e not in ENGINES]
        if bad or not self.engines or len(set(self.engines)) != len(self.engines):
            raise LightformerError(f"engines={list(self.engines)} is invalid: one or more of {', '.join(ENGINES)}, "
                                   f"each once")
        if "compiled" in self.engines:
            from lightformer.decode.compiled import check_compiled

            check_compiled(torch.device(self.device))
            if self.warmup < 1:
                raise LightformerError("the compiled engine needs warmup >= 1: its graphs are built in the warm-up")
        for runtime in set(self.engines) & {"onnxruntime", "openvino"}:
            from lightformer.speed.runtime import check_runtime

            check_runtime(runtime, torch.device(self.device))
            if self.dtype != "fp32":
                raise LightformerError(f"the {runtime} engine runs the fp32 export (int8 with --int8); "
                                       f"drop --dtype {self.dtype}")
        if self.int8 and "openvino" in self.engines:
            raise LightformerError("--int8 is ONNX Runtime's quantisation, which OpenVINO runs 3-4x slower than ONNX Runtime "
                                   "does (docs/speed.md); time openvino without --int8")


def percentile(xs: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default)."""
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo, hi = int(math.floor(pos)), int(math.ceil(pos))
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def speedup_stats(base: list[float], times: list[float]) -> dict:
    """A model's speedup over the reference from interleaved runs: the ratio is taken run by run
    (so drift in the machine's speed cancels) and summarised by its median and 10th/90th
    percentiles; translation and GLUE speed both report it (docs/reference.md §6)."""
    ratios = [b / t for b, t in zip(base, times, strict=True)]
    return {"speedup": statistics.median(ratios), "speedup_p10": percentile(ratios, 0.1),
            "speedup_p90": percentile(ratios, 0.9)}


def trimmed_mean(xs: list[float]) -> float:
    """Mean of the values between the 10th and 90th percentiles (HAT)."""
    lo, hi = percentile(xs, 0.1), percentile(xs, 0.9)
    inside = [x for x in xs if lo <= x <= hi]
    return statistics.fmean(inside) if inside else statistics.median(xs)  # too few runs for tails


class Timer:
    """Wall time of a region; CUDA events on GPU (asynchronous work is waited for)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn()
            end.record()
            end.synchronize()
            return out, start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t0


def synthetic_sources(vocab: int, n: int, mean_len: int, seed: int, exact: bool) -> list[torch.Tensor]:
    """Random token ids ending in </s>; lengths exactly ``mean_len`` or spread ±50% around it."""
    g = torch.Generator().manual_seed(seed)
    if exact:
        lengths = [mean_len] * n
    else:
        lo, hi = max(2, mean_len // 2), max(3, mean_len * 3 // 2)
        lengths = torch.randint(lo, hi + 1, (n,), generator=g).tolist()
    out = []
    for L in lengths:
        s = torch.randint(4, vocab, (L,), generator=g)
        s[-1] = EOS
        out.append(s)
    return out


def length_batches(sources: list[torch.Tensor], batch: int) -> list[torch.Tensor]:
    """Sort by length, cut into batches of ``batch`` sentences, left-pad as in training (collate)."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    return [collate([sources[j] for j in order[i: i + batch]])["src_tokens"] for i in range(0, len(order), batch)]


def macs(model, src_len: int, tgt_len: int, device) -> tuple[float, float]:
    """Multiply-accumulates per source token (encoder, plus the decoder's cross-attention keys
    and values, computed once per source) and per generated token and hypothesis (one cached
    decoder step halfway through the target, output projection included)."""
    src = torch.full((1, src_len), 5, dtype=torch.long, device=device)
    prev = torch.full((1, tgt_len), 5, dtype=torch.long, device=device)
    mid = max(1, tgt_len // 2)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as fc:
            enc = model.encoder(src)
            cache = init_cache(model.decoder, enc, capacity=tgt_len)
        per_source = fc.get_total_flops()
        model.decoder(prev[:, :mid], None, cache)
        with FlopCounterMode(display=False) as fc:
            model.decoder(prev[:, : mid + 1], None, cache)
        per_step = fc.get_total_flops()
    return per_source / 2 / src_len, per_step / 2


def launches_per_step(model, rows: int, src_len: int, tgt_len: int, device: torch.device, engine=None) -> int:
    """Work items one decoder step issues, from the profiler: CUDA kernels (and copies) on a GPU,
    top-level ATen operators on a CPU. Counted on a static-cache step halfway through the target,
    the shape a CUDA graph replays; the beam search's own operators are not included. A compiled
    ``engine``: the ATen operators its step graph still dispatches (its C++ wrapper calls the
    BLAS products directly; what it dispatches are mostly views and copies around them); a runtime
    ``engine``: the nodes of its exported step graph (before the runtime's own fusions) and the
    ATen operators around it."""
    if engine is not None:
        return _compiled_launches(engine, rows, src_len, tgt_len, device) + getattr(engine, "step_nodes", 0)
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    src = torch.full((rows, src_len), 5, dtype=torch.long, device=device)
    tok = torch.full((rows, 1), 5, dtype=torch.long, device=device)
    with torch.inference_mode():
        cache = init_cache(model.decoder, model.encoder(src), capacity=tgt_len + 1, static=True)
        for _ in range(max(1, tgt_len // 2)):
            model.decoder(tok, None, cache)
        cuda = device.type == "cuda"
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        if cuda:
            torch.cuda.synchronize(device)
        with profile(activities=activities) as prof:
            model.decoder(tok, None, cache)
            if cuda:
                torch.cuda.synchronize(device)
    events = prof.events()
    if cuda:
        return sum(1 for e in events if e.device_type == DeviceType.CUDA)
    return sum(1 for e in events if e.cpu_parent is None and e.name.startswith("aten::"))


def _compiled_launches(engine, rows: int, src_len: int, tgt_len: int, device: torch.device) -> int:
    from torch.profiler import ProfilerActivity, profile

    src = torch.full((1, src_len), 5, dtype=torch.long, device=device)  # one sentence, ``rows`` beams
    with torch.inference_mode():
        _, cache = engine.state(src, rows, tgt_len, None)
        tokens = torch.full((rows, tgt_len + 2), 5, dtype=torch.long, device=device)
        scores = torch.zeros(1, rows, device=device)
        for _ in range(max(1, tgt_len // 2)):  # to halfway through the target, as the eager count
            engine.candidates(engine.model.decoder, cache, tokens, scores, "no_eos", 0.0, rows)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            engine.candidates(engine.model.decoder, cache, tokens, scores, "no_eos", 0.0, rows)
    def counted(e) -> bool:  # dispatched operators: outside the graph or called from it (not their children)
        parent = e.cpu_parent.name if e.cpu_parent is not None else ""
        return e.name.startswith(("aten::", "lightformer::")) and e.name != "aten::resolve_conj" and (
            not parent or parent.startswith("## Call CompiledFxGraph"))
    return sum(1 for e in prof.events() if counted(e))


def _torch_runner(m, search: SearchConfig, timer: Timer, pool: dict, cuda_graph: bool, engine=None,
                  whole_step: bool = False):
    encoder = m.encoder if engine is None else engine.encoder

    def run(src: torch.Tensor) -> tuple[float, float, float, int]:
        enc, t_enc = timer(lambda: encoder(src))
        if whole_step:
            hyps, t_dec = timer(lambda: device_beam_search(m, src, search, enc, cuda_graph, pool))
        else:
            hyps, t_dec = timer(lambda: beam_search(m, src, search, encoder_out=enc, graph_pool=pool,
                                                    cuda_graph=cuda_graph, engine=engine))
        return t_enc, t_dec, t_enc + t_dec, sum(len(h[0].tokens) + 1 for h in hyps)
    return run


def _ct2_runner(m, cfg: SpeedConfig, batches: list[torch.Tensor]):
    as_tokens = {id(b): m.tokens(b) for b in batches}  # once, untimed: a caller holds token strings

    def run(src: torch.Tensor) -> tuple[float, float, float, int]:
        batch = as_tokens[id(src)]
        t0 = time.perf_counter()  # translate_batch returns on the host: wall time is the whole work
        tokens = m.translate(batch, cfg.beam, cfg.lenpen, cfg.tgt_len, cfg.fixed_length)
        return math.nan, math.nan, time.perf_counter() - t0, tokens  # one call: no encoder/decoder split
    return run


def _runnable(models: dict, cfg: SpeedConfig, device: torch.device) -> tuple[dict, dict]:
    """(the models as they will run, their parameter counts): ours through the inference path
    (or as stored with --no-fast-path), CTranslate2 models loaded on the device."""
    from lightformer.speed.ct2 import CT2Model

    run_models, params = {}, {}
    for n, m in models.items():
        if isinstance(m, CT2Model):  # an export: what it stores
            params[n] = {"total": m.params or math.nan, "embedding": math.nan, "body": math.nan}
            m.load(device, cfg.dtype, cfg.threads or torch.get_num_threads())
            run_models[n] = m
            continue
        params[n] = count_parameters(m)  # of the stored model
        run_models[n] = prepare_for_inference(m, dtype=DTYPES[cfg.dtype], device=device, fused_lowrank=cfg.fused_lowrank,
                                              int8=cfg.int8) if cfg.fast else m.to(device=device, dtype=DTYPES[cfg.dtype]).eval()
    return run_models, params


def _engines(models: dict, run_models: dict, ours: list[str], cfg: SpeedConfig, device: torch.device) -> dict:
    """{(model, engine): the search engine} for every engine but eager. Runtimes export the fp32
    inference model and, under --int8, quantise it themselves (not FBGEMM's int8 modules)."""
    built = {}
    for e in cfg.engines:
        for n in ours:
            if e == "compiled":
                from lightformer.decode.compiled import CompiledSearch

                built[n, e] = CompiledSearch(run_models[n])
            elif e != "eager":
                from lightformer.speed.runtime import RuntimeSearch

                fp32 = prepare_for_inference(models[n], device=device) if cfg.int8 else run_models[n]
                built[n, e] = RuntimeSearch(fp32, e, int8=cfg.int8, threads=cfg.threads or torch.get_num_threads())
    return built


def _source_batches(cfg: SpeedConfig, src_vocab: int, sources: list[torch.Tensor] | None,
                    device: torch.device) -> tuple[list[torch.Tensor], int]:
    """(batches on the device, sentences per run): latency is one fixed synthetic sentence."""
    if cfg.protocol == "latency":
        return [synthetic_sources(src_vocab, 1, cfg.src_len, cfg.seed, exact=True)[0][None].to(device)], 1
    if sources is None:
        sources = synthetic_sources(src_vocab, cfg.sentences, cfg.src_len, cfg.seed, exact=False)
    elif max(int(x.max()) for x in sources) >= src_vocab:
        raise LightformerError(f"the source sentences use ids up to {max(int(x.max()) for x in sources)}, "
                               f"beyond the models' source vocabulary of {src_vocab}")
    return [b.to(device) for b in length_batches(sources, cfg.batch)], len(sources)


def _time_interleaved(runners: dict, batches: list[torch.Tensor], cfg: SpeedConfig, device: torch.device,
                      progress: bool) -> dict:
    """Per model, per timed run: encoder, decoder and total seconds, generated tokens. Models run
    A B A B ... so that drift in the machine's speed hits all of them alike."""
    times = {n: {"enc": [], "dec": [], "total": [], "tokens": []} for n in runners}
    total_runs = cfg.warmup + cfg.runs
    bar = tqdm(total=total_runs * len(runners), desc=f"speed {cfg.protocol} {device.type}", disable=not progress or None)
    try:
        with torch.inference_mode():
            for r in range(total_runs):
                for n, run in runners.items():
                    sums = [0.0, 0.0, 0.0, 0]
                    for b in batches:
                        sums = [x + y for x, y in zip(sums, run(b))]
                    if r >= cfg.warmup:
                        for key, value in zip(("enc", "dec", "total", "tokens"), sums):
                            times[n][key].append(value)
                    bar.update()
    except torch.cuda.OutOfMemoryError:
        raise LightformerError(f"batch {cfg.batch} x beam {cfg.beam} does not fit on {device_name(device)}; "
                               f"lower --batch") from None
    finally:
        bar.close()
    return times


def _entries(names: list[str], ours: list[str], engines: tuple[str, ...]) -> dict:
    """{row name: (model name, engine)}: each of our models under each engine (the first engine's
    rows keep the model's name and the entries' order, CTranslate2 models among them with engine
    None; later engines' rows follow, named ``<model>_<engine>``)."""
    out = {n: (n, engines[0] if n in ours else None) for n in names}
    for e in engines[1:]:
        out |= {f"{n}_{e}": (n, e) for n in ours}
    if len(out) != len(ours) * len(engines) + len(names) - len(ours):
        raise LightformerError(f"row names collide: {', '.join(names)} under engines {', '.join(engines)}")
    return out


def run_speed(models: dict, cfg: SpeedConfig, progress: bool = True,
              sources: list[torch.Tensor] | None = None, source_name: str = "synthetic") -> list[dict]:
    """One row per model and engine; the first model under the first engine is the reference for
    the speedups (``speedup_same_engine``: against the first model under the row's own engine). A
    model is one of ours, or a ``lightformer.speed.ct2.CT2Model``. ``sources`` (token ids with </s>, e.g. a
    prepared test split) replace the synthetic throughput set."""
    from lightformer.speed.ct2 import CT2Model

    if not models:
        raise LightformerError("no models to time")
    vocab_of = {n: m.vocab if isinstance(m, CT2Model) else (m.cfg.src_vocab, m.cfg.tgt_vocab) for n, m in models.items()}
    if len(set(vocab_of.values())) > 1:
        raise LightformerError("models with different vocabularies cannot be compared on one input: "
                               + ", ".join(f"{n} {v[0]}/{v[1]}" for n, v in vocab_of.items()))
    device = pick_device(cfg.device)
    if device.type == "cpu" and cfg.threads:
        torch.set_num_threads(cfg.threads)
    ours = [n for n in models if not isinstance(models[n], CT2Model)]
    entries = _entries(list(models), ours, cfg.engines)  # {row name: (model, engine or None for ct2)}
    run_models, params = _runnable(models, cfg, device)
    batches, n_sent = _source_batches(cfg, next(iter(vocab_of.values()))[0], sources, device)
    search = SearchConfig(beam=cfg.beam, lenpen=cfg.lenpen, max_len_a=0, max_len_b=cfg.tgt_len,
                          min_len=1, fixed_length=cfg.fixed_length)
    timer = Timer(device)
    built = _engines(models, run_models, ours, cfg, device)  # {(model, engine): its search engine}
    runners = {row: _torch_runner(run_models[n], search, timer, {}, cfg.cuda_graph, built.get((n, e)), cfg.whole_step)
               if e else _ct2_runner(run_models[n], cfg, batches) for row, (n, e) in entries.items()}
    times = _time_interleaved(runners, batches, cfg, device, progress)
    meta = {
        "protocol": cfg.protocol, "device": device.type, "device_name": device_name(device),
        "torch": torch.__version__, "threads": torch.get_num_threads() if device.type == "cpu" else "",
        "dtype": cfg.dtype, "batch": 1 if cfg.protocol == "latency" else cfg.batch, "beam": cfg.beam,
        "lenpen": cfg.lenpen, "src_len": cfg.src_len, "tgt_len": cfg.tgt_len, "fixed_length": cfg.fixed_length,
        "fast_path": cfg.fast, "cuda_graph": cfg.cuda_graph, "fused_lowrank": cfg.fused_lowrank, "int8": cfg.int8,
        "runs": cfg.runs, "warmup": cfg.warmup, "sentences": n_sent,
        "source": "synthetic" if cfg.protocol == "latency" else source_name,
        "measured": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
    }
    rows_per_step = cfg.beam * meta["batch"]
    first = next(iter(entries))
    first_of_engine = {}  # the reference of each engine's own speedups (compiled against compiled)
    for row, (_, e) in entries.items():
        first_of_engine.setdefault(e, row)
    mac_of = {n: macs(run_models[n], cfg.src_len, cfg.tgt_len, device) for n in ours}  # once per model, not per engine
    rows = []
    for row, (n, e) in entries.items():
        t, ct2 = times[row], e is None
        mac = mac_of.get(n)
        launches = "" if ct2 else launches_per_step(run_models[n], rows_per_step, cfg.src_len, cfg.tgt_len, device,
                                                    built.get((n, e)))
        same = speedup_stats(times[first_of_engine[e]]["total"], t["total"])
        rows.append({
            "model": row, "entry": n, "engine": "ctranslate2" if ct2 else ENGINE_LABEL[e],
            "compute_type": run_models[n].compute_type if ct2 else ("int8_float32" if cfg.int8 else cfg.dtype),
            "params": params[n]["total"], "params_embedding": params[n]["embedding"],
            "params_body": params[n]["body"],
            "compression": params[entries[first][0]]["total"] / params[n]["total"],
            "macs_per_src_token": "" if ct2 else round(mac[0]), "macs_per_tgt_token": "" if ct2 else round(mac[1]),
            "launches_per_step": launches, "whole_step": cfg.whole_step and not ct2,  # CTranslate2 runs its own search
            "launches_unit": "" if ct2 else ("cuda kernels" if device.type == "cuda" else
                                             "aten ops dispatched by the compiled step" if e == "compiled"
                                             else "aten ops" if e == "eager"
                                             else "onnx nodes of the exported step + aten ops around it"),
            "encoder_ms": math.nan if ct2 else 1e3 * trimmed_mean(t["enc"]),
            "decoder_ms": math.nan if ct2 else 1e3 * trimmed_mean(t["dec"]),
            "total_ms": 1e3 * trimmed_mean(t["total"]),
            "sentences_per_s": n_sent / statistics.median(t["total"]),
            "tokens_per_s": statistics.median(tok / x for tok, x in zip(t["tokens"], t["total"])),
            "tokens_per_run": statistics.median(t["tokens"]),  # generated, </s> included
            "engine_reference": first_of_engine[e], "speedup_same_engine": same["speedup"],
        } | speedup_stats(times[first]["total"], t["total"]) | meta)
    return rows
