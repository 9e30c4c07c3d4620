"""Translation speed: checkpoints timed interleaved, speedups against the first."""
from __future__ import annotations


from lightformer.errors import LightformerError
from lightformer.io import write_rows
from lightformer.validate import distinct_outputs


def cmd_speed(args) -> None:
    """Time checkpoints (or CTranslate2 exports, or the paper-size pair) interleaved (lightformer.speed.bench)."""
    from lightformer.speed.bench import load_speed_entries, paper_size_models, run_speed, split_sources
    from lightformer.speed.ct2 import is_ct2

    cfg = speed_config(args)
    if bool(args.checkpoints) == bool(args.paper_size):
        raise LightformerError("give checkpoints to time, or --paper-size TASK (not both)")
    if args.data and cfg.protocol != "throughput":
        raise LightformerError("--data applies to --protocol throughput (latency uses a fixed synthetic source)")
    distinct_outputs([p for p in args.checkpoints if not is_ct2(p)] + [args.data], [args.out])
    if args.paper_size:
        models = paper_size_models(args.paper_size)
        labels = [f"random weights, paper size ({args.paper_size})"] * len(models)
    else:
        models, labels = load_speed_entries(args.checkpoints, args.names)
    sources = split_sources(args.data, args.split) if args.data else None
    rows = run_speed(models, cfg, sources=sources, source_name=f"{args.data}:{args.split}" if args.data else "synthetic")
    label_of = dict(zip(models, labels))
    for row in rows:  # one row per model and engine
        row["checkpoint"] = str(label_of[row["entry"]])
        if args.task or args.paper_size:
            row["task"] = args.task or args.paper_size
    if args.out:
        write_rows(args.out, rows, append=args.append)
    print_speed_rows(rows, cfg)


def speed_config(args):
    from lightformer.speed.bench import SpeedConfig

    return SpeedConfig(protocol=args.protocol, device=args.device, dtype=args.dtype, threads=args.threads,
                       beam=args.beam, lenpen=args.lenpen, src_len=args.src_len, tgt_len=args.tgt_len,
                       batch=args.batch, sentences=args.sentences, runs=args.runs, warmup=args.warmup,
                       fixed_length=not args.free_length, fast=not args.no_fast_path, cuda_graph=args.cuda_graph,
                       fused_lowrank=args.fused_lowrank, int8=args.int8, seed=args.seed, engines=tuple(args.engine))


def print_speed_rows(rows: list[dict], cfg) -> None:
    r0 = rows[0]
    print(f"{cfg.protocol} on {r0['device_name']} ({r0['dtype']}, threads {r0['threads'] or '-'}, "
          f"batch {r0['batch']}, beam {r0['beam']}, src {cfg.src_len}, tgt {cfg.tgt_len} fixed={cfg.fixed_length}, "
          f"cuda_graph={cfg.cuda_graph})")
    w = max(20, 2 + max(len(r["model"]) for r in rows))
    print(f"{'model':<{w}}{'params':>12}{'x fewer':>9}{'enc ms':>9}{'dec ms':>10}{'sent/s':>9}"
          f"{'speedup':>9}  p10-p90  same engine")
    for r in rows:
        print(f"{r['model']:<{w}}{r['params']:>12,}{r['compression']:>9.2f}{r['encoder_ms']:>9.2f}"
              f"{r['decoder_ms']:>10.2f}{r['sentences_per_s']:>9.1f}{r['speedup']:>9.2f}  "
              f"{r['speedup_p10']:.2f}-{r['speedup_p90']:.2f}  {r['speedup_same_engine']:.2f}")


def register(sub) -> None:
    from lightformer.speed.bench import ENGINES, SpeedConfig

    s = sub.add_parser("speed", help="time checkpoints interleaved; speedups relative to the first")
    s.add_argument("checkpoints", nargs="*", help="checkpoints, or ct2:DIR[:fp32|fp16|bf16|int8] for a CTranslate2 "
                                                  "export (lightformer export ct2) timed the same way")
    s.add_argument("--paper-size", metavar="TASK", help="instead of checkpoints: the task's paper-size dense model "
                                                         "and its LightFormer at the abstract's ratio, random weights")
    s.add_argument("--protocol", choices=["latency", "throughput"], default="latency")
    s.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    s.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    s.add_argument("--threads", type=int, help="CPU threads (default: torch's current setting)")
    s.add_argument("--beam", type=int, default=SpeedConfig.beam)
    s.add_argument("--lenpen", type=float, default=SpeedConfig.lenpen)
    s.add_argument("--src-len", type=int, default=SpeedConfig.src_len, help="source tokens: 23 IWSLT, 30 WMT (HAT)")
    s.add_argument("--tgt-len", type=int, help="decoder steps in fixed-length mode (default: src-len)")
    s.add_argument("--batch", type=int, default=128, help="throughput: sentences per batch")
    s.add_argument("--sentences", type=int, default=512, help="throughput: synthetic set size")
    s.add_argument("--runs", type=int, default=300)
    s.add_argument("--warmup", type=int, default=5)
    s.add_argument("--free-length", action="store_true", help="stop at </s> (trained models only)")
    s.add_argument("--no-fast-path", action="store_true", help="time the training-time modules as they are")
    s.add_argument("--cuda-graph", action="store_true", help="GPU: replay each decoder step as a CUDA graph")
    s.add_argument("--fused-lowrank", action="store_true",
                   help="GPU: each low-rank product A(Bx)+b (packed q/k/v too) in one Triton launch")
    s.add_argument("--int8", action="store_true",
                   help="CPU: every product in int8 (FBGEMM, dynamic activations); changes outputs slightly")
    s.add_argument("--engine", nargs="+", choices=ENGINES, default=list(SpeedConfig.engines),
                   help="how our models decode, each timed in the same interleaved run: eager (operator by "
                        "operator) and/or compiled (CPU: TorchInductor graphs per search step, built in the "
                        "warm-up; lightformer/decode/compiled.py)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", help="CSV, one row per model with every condition")
    s.add_argument("--append", action="store_true", help="add rows to an existing --out CSV")
    s.add_argument("--names", nargs="+", help="model names for the rows (default: file names)")
    s.add_argument("--task", help="task the models belong to, recorded in each row (speed tables group by it)")
    s.add_argument("--data", help="throughput on this prepared directory's split instead of a synthetic set")
    s.add_argument("--split", default="test")
    s.set_defaults(func=cmd_speed, gpu=True)
