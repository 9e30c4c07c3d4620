"""Translation speed: checkpoints timed interleaved, speedups against the first."""
from __future__ import annotations


from lightformer.errors import LightformerError
from lightformer.io import write_rows
from lightformer.validate import distinct_outputs


def cmd_speed(args) -> None:
    """Time checkpoints (or CTranslate2 exports, or the paper-size pair) interleaved (lightformer.speed.bench)."""
    from lightformer.options import from_args
    from lightformer.speed.bench import SpeedConfig, load_speed_entries, paper_size_models, run_speed, split_sources
    from lightformer.speed.ct2 import is_ct2

    cfg = from_args(SpeedConfig, args)
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
    from lightformer.options import add_options
    from lightformer.speed.bench import SpeedConfig

    s = sub.add_parser("speed", help="time checkpoints interleaved; speedups relative to the first")
    s.add_argument("checkpoints", nargs="*", help="checkpoints, or ct2:DIR[:fp32|fp16|bf16|int8] for a CTranslate2 "
                                                  "export (lightformer export ct2) timed the same way")
    s.add_argument("--paper-size", metavar="TASK", help="instead of checkpoints: the task's paper-size dense model "
                                                         "and its LightFormer at the abstract's ratio, random weights")
    add_options(s, SpeedConfig)
    s.add_argument("--out", help="CSV, one row per model with every condition")
    s.add_argument("--append", action="store_true", help="add rows to an existing --out CSV")
    s.add_argument("--names", nargs="+", help="model names for the rows (default: file names)")
    s.add_argument("--task", help="task the models belong to, recorded in each row (speed tables group by it)")
    s.add_argument("--data", help="throughput on this prepared directory's split instead of a synthetic set")
    s.add_argument("--split", default="test")
    s.set_defaults(func=cmd_speed, gpu=True)
