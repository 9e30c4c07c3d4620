"""Training: train / fine-tune / resume, checkpoint averaging, the training benchmark and its cost."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from lightformer.cli.common import RECORD_HELP, record_object
from lightformer.errors import LightformerError
from lightformer.io import command_line, write_rows
from lightformer.validate import arg, distinct_outputs


def cmd_train(args) -> int:
    from lightformer.train.loop import EXIT_PREEMPTED, Preempted, train
    from lightformer.train.recipes import load_train_config

    cfg = load_train_config(args.recipe, args.config, args.overrides)
    if args.nproc_per_node > 1 and "LOCAL_RANK" not in os.environ:
        return _relaunch_under_torchrun(args.nproc_per_node, cfg.update_freq)
    restart = "always" if args.restart else "if-changed" if args.restart_if_changed else "no"
    try:
        summary = train(cfg, restart=restart, record=args.record)
    except Preempted as e:
        print(f"lightformer train: preempted: {e}; rerun the same command to resume", file=sys.stderr)
        return EXIT_PREEMPTED
    print(json.dumps(summary, indent=2))
    return 0


def _relaunch_under_torchrun(nproc: int, update_freq: int) -> int:
    """Run this same command as ``nproc`` data-parallel ranks on one node.

    The recipe's effective batch is kept: each of the N ranks accumulates update_freq / N
    batches, so N GPUs take the place of the recipe's gradient accumulation (fairseq's recipes
    are written for 8 GPUs x update_freq 1 or 1 GPU x update_freq 8).
    """
    if update_freq % nproc:
        raise LightformerError(f"--nproc-per-node {nproc} does not divide update_freq={update_freq}: the effective "
                               "batch (max_tokens x update_freq) would change; set update_freq to a multiple")
    argv = sys.argv[1:]
    i = argv.index("--nproc-per-node") if "--nproc-per-node" in argv else None
    argv = argv[:i] + argv[i + 2:] if i is not None else [a for a in argv if not a.startswith("--nproc-per-node=")]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "lightformer", *argv, f"update_freq={update_freq // nproc}"]
    print(f"lightformer train: {nproc} ranks, update_freq {update_freq} -> {update_freq // nproc} per rank: "
          + " ".join(cmd), file=sys.stderr, flush=True)
    # exec: SLURM's SIGTERM reaches torchrun, which forwards it to the ranks (they checkpoint)
    os.execv(sys.executable, cmd)


def cmd_average(args) -> None:
    from lightformer.checkpoint import save_checkpoint
    from lightformer.train.run_dir import average_checkpoints

    distinct_outputs(args.checkpoints, [args.out])
    model = average_checkpoints(args.checkpoints)
    save_checkpoint(model, args.out, provenance={"averaged": [str(p) for p in args.checkpoints]})
    print(f"{args.out}: mean of {len(args.checkpoints)} checkpoints")


def cmd_bench_train(args) -> None:
    """Training throughput and MFU, ours and Hugging Face's on the same batches (lightformer.train.bench)."""
    from lightformer.checkpoint import load_checkpoint
    from lightformer.gpu import pick_device
    from lightformer.options import from_args
    from lightformer.train.bench import TrainBenchConfig, bench_train
    from lightformer.validate import distinct_outputs

    if bool(args.checkpoints) == bool(args.paper_size):
        raise LightformerError("give checkpoints to time, or --paper-size TASK (not both)")
    distinct_outputs(args.checkpoints or [], [args.out])
    task_lengths = {"lengths": args.paper_size} if args.paper_size and not hasattr(args, "lengths") else {}
    cfg = from_args(TrainBenchConfig, args, **task_lengths)
    if args.paper_size:
        from lightformer.speed.bench import paper_size_models

        models = paper_size_models(args.paper_size)
    else:
        models = {Path(p).name.split(".")[0]: load_checkpoint(p) for p in args.checkpoints}
    rows = bench_train(models, cfg, pick_device(cfg.device))
    for row in rows:
        row["command"] = command_line()
    if args.out:
        write_rows(args.out, rows, append=args.append)
    print_bench_rows(rows, cfg)


def print_bench_rows(rows: list[dict], cfg) -> None:
    print(f"training step on {rows[0]['device_name']} ({cfg.dtype}, max_tokens {cfg.max_tokens}, {cfg.steps} steps)")
    print(f"{'model':<28}{'engine':<14}{'params':>12}{'tok/s':>10}{'GFLOP/tok':>11}{'TFLOP/s':>9}{'MFU':>7}"
          f"{'peak MB':>9}")
    for r in rows:
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        mem = f"{r['peak_mem_mb']:.0f}" if r["peak_mem_mb"] is not None else "-"
        print(f"{r['model']:<28}{r['engine']:<14}{r['params']:>12,}{r['tokens_per_s']:>10,.0f}"
              f"{r['model_flops_per_token'] / 1e9:>11.3f}{r['tflops']:>9.2f}{mfu:>7}{mem:>9}")


def cmd_plan_cost(args) -> None:
    """GPU-hours of a workflow config from measured training throughput (lightformer.train.cost)."""
    from lightformer.train.cost import plan_cost, read_bench_csv
    from lightformer.validate import distinct_outputs, load_yaml

    distinct_outputs([args.configfile, args.bench], [args.out])
    for path in (args.configfile, args.bench):
        if not Path(path).is_file():
            raise LightformerError(f"{path}: no such file")
    rows = plan_cost(load_yaml(args.configfile, "workflow config") or {}, read_bench_csv(args.bench))
    if not rows:
        raise LightformerError(f"{args.configfile} has no tasks to cost")
    if args.out:
        write_rows(args.out, rows)
    print(f"{args.configfile} on {rows[-1]['device']} ({rows[-1]['dtype']}), from {args.bench}:")
    print(f"{'task':<10}{'stage':<32}{'runs':>6}{'updates':>9}{'tok/update':>12}{'hours':>11}")
    for r in rows:
        print(f"{r['task']:<10}{r['stage']:<32}{r['runs']:>6}{str(r['updates']):>9}{str(r['tokens_per_update']):>12}"
              f"{r['device_hours']:>11.2f}")
    print(rows[-1]["note"])


def cmd_diagnose_init(args) -> None:
    """The first updates of a fresh dense model and of LightFormers at --ratio (lightformer.train.diagnose)."""
    from lightformer.data.indexed import ParallelData
    from lightformer.train.diagnose import diagnose, initial_models
    from lightformer.train.recipes import load_train_config

    distinct_outputs([args.data], [args.out])
    cfg = load_train_config(args.recipe, None, args.overrides)
    data = ParallelData(args.data)
    models = initial_models(cfg, data, args.ratio, args.inits)
    rows = diagnose(models, data, cfg, args.updates,
                    progress=lambda m, u, loss: print(f"{m} update {u}: loss {loss:.3f}", file=sys.stderr)
                    if u % 25 == 0 else None)
    for row in rows:
        row["command"] = command_line()
    write_rows(args.out, rows)
    last = {r["model"]: r for r in rows}
    print("\n".join(f"{m}: loss {r['loss']:.3f} after {r['update']} updates" for m, r in last.items()))


def register(sub) -> None:
    from lightformer.compress.spec import INITS
    from lightformer.options import add_options
    from lightformer.train.bench import TrainBenchConfig

    s = sub.add_parser("train", help="train, fine-tune (init_from=CKPT) or resume (same save_dir)")
    s.add_argument("--recipe", help="preset: iwslt_de_en, wmt_en_de_base, finetune, synthetic")
    s.add_argument("--config", help="YAML file of TrainConfig keys (after the recipe)")
    s.add_argument("--nproc-per-node", type=arg("at_least_1", int), default=1, metavar="N",
                   help="data-parallel ranks on this node via torchrun (one per GPU); update_freq is divided by N")
    how = s.add_mutually_exclusive_group()
    how.add_argument("--restart", action="store_true",
                     help="start over: move an existing save_dir aside (never deleted); not for resubmitted jobs")
    how.add_argument("--restart-if-changed", action="store_true",
                     help="resume when config, data and init_from are unchanged, else move the run aside and start "
                          "over (what the workflow uses); without either flag a changed run is an error")
    s.add_argument("--record", type=record_object, help=RECORD_HELP)
    s.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="last word, e.g. data=DIR save_dir=DIR lr=1e-3")
    s.set_defaults(func=cmd_train, gpu=True)

    s = sub.add_parser("diagnose-init", help="how fresh dense and factorised models train: per-update gradient "
                                             "norms, update-to-weight ratios, activation scales (CSV)")
    s.add_argument("--recipe", required=True)
    s.add_argument("--data", required=True, help="prepared directory")
    s.add_argument("--ratio", type=arg("positive"), default=3.8)
    s.add_argument("--inits", nargs="+", default=["dense", "random", "random_svd"], choices=["dense", *INITS],
                   help="dense, or compression inits of the same fresh model")
    s.add_argument("--updates", type=arg("at_least_1", int), default=200)
    s.add_argument("--out", required=True, help="CSV")
    s.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="TrainConfig overrides, as for train")
    s.set_defaults(func=cmd_diagnose_init)

    s = sub.add_parser("average", help="average checkpoints (fairseq average_checkpoints)")
    s.add_argument("checkpoints", nargs="+", help="checkpoint directories or model files")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_average)

    s = sub.add_parser("bench", help="training benchmarks")
    bsub = s.add_subparsers(dest="what", required=True)
    b = bsub.add_parser("train", help="training tokens/s, model FLOPs per token, MFU and peak memory; Hugging "
                                      "Face's Marian of the same configuration on the same batches")
    b.add_argument("checkpoints", nargs="*", help="models to time (their shapes; weights do not matter)")
    b.add_argument("--paper-size", metavar="TASK", choices=["iwslt14", "wmt14"],
                   help="instead of checkpoints: the task's paper-size model and its LightFormer at the abstract's ratio")
    add_options(b, TrainBenchConfig)
    b.add_argument("--out", help="CSV of the rows (with the command)")
    b.add_argument("--append", action="store_true", help="add to --out instead of replacing it")
    b.set_defaults(func=cmd_bench_train, gpu=True)

    s = sub.add_parser("plan-cost", help="GPU-hours of a workflow config's training, from `bench train` rows")
    s.add_argument("configfile", help="a workflow config, e.g. workflow/configs/paper.yaml")
    s.add_argument("--bench", required=True, help="CSV of `lightformer bench train` (the device it names is costed)")
    s.add_argument("--out", help="CSV of the per-stage rows and the total")
    s.set_defaults(func=cmd_plan_cost)
