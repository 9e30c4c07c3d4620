"""GLUE classifiers: init, fine-tune with dev metrics, encoder speed."""
from __future__ import annotations

import json
from pathlib import Path

from lightformer.cli.common import RECORD_HELP, record_object
from lightformer.errors import LightformerError
from lightformer.io import command_line, write_text_atomic
from lightformer.provenance import provenance
from lightformer.validate import arg


def cmd_glue_init(args) -> None:
    import tempfile

    from lightformer.datasets.glue import check_task
    from lightformer.datasets.glue_tasks import TASKS
    from lightformer.glue.model import KIND, build_vocab, load_tokenizer, pretrained_bert, save_classifier, tiny_bert
    from lightformer.glue.train import read_rows
    from lightformer.io import check_output_dir

    check_output_dir(args.out, KIND, inputs=(args.data, args.pretrained), force=args.force)
    task = check_task(args.task)
    with tempfile.TemporaryDirectory() as tmp:
        if args.pretrained:
            model = pretrained_bert(Path(args.pretrained), TASKS[task].num_labels)
            vocab_dir = Path(args.pretrained)
            load_tokenizer(vocab_dir)  # fail now, not after training
        else:  # a tiny BERT from scratch, its vocabulary from the task's training text (smoke runs)
            if not args.data:
                raise LightformerError("a tiny BERT needs --data (its vocabulary comes from the task); or --pretrained")
            rows = read_rows(Path(args.data), task, "train")
            vocab_dir = Path(tmp)
            build_vocab([r[c] for r in rows for c in TASKS[task].columns], vocab_dir)
            model = tiny_bert(vocab_dir, TASKS[task].num_labels, hidden=args.hidden, layers=args.layers, heads=args.heads,
                              ffn=args.ffn, max_len=args.max_len, seed=args.seed)
        save_classifier(model, args.out, vocab_dir, {"task": task, "source": args.pretrained or "tiny (random init)"},
                        force=args.force)
    print(f"{args.out}: {'pretrained ' + args.pretrained if args.pretrained else 'tiny BERT'} for {task}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters")


def cmd_glue_train(args) -> None:
    from lightformer.compress.bert import dense_params
    from lightformer.glue.model import KIND, load_classifier, load_tokenizer, save_classifier
    from lightformer.glue.train import GlueConfig, fine_tune
    from lightformer.io import check_output_dir
    from lightformer.options import build

    cfg = build(GlueConfig, pairs=args.overrides, what="GLUE option")
    check_output_dir(args.out, KIND, inputs=(args.checkpoint, args.data), force=args.force)
    model, meta = load_classifier(args.checkpoint)
    task = args.task or meta.get("task")
    result = fine_tune(model, load_tokenizer(Path(args.checkpoint)), task, Path(args.data), cfg)
    save_classifier(model.cpu(), args.out, Path(args.checkpoint),
                    {"task": task, "provenance": {"parent": str(args.checkpoint), "fine_tuned": result["config"]}},
                    force=args.force)
    result |= {"params": dense_params(model), "checkpoint": str(args.out), "command": command_line(),
               "provenance": provenance()} | ({"record": args.record} if args.record else {})
    write_text_atomic(Path(args.out) / "metrics.json", json.dumps(result, indent=2) + "\n")
    print(f"{args.out}: " + "; ".join(f"{k} " + ", ".join(f"{m} {v:.2f}" for m, v in d["scores"].items())
                                      for k, d in result["dev"].items()))


def cmd_glue_speed(args) -> None:
    import pandas as pd

    from lightformer.glue.model import load_classifier
    from lightformer.glue.speed import encoder_speed

    names = args.names or [Path(p).name for p in args.checkpoints]
    if len(names) != len(args.checkpoints) or len(set(names)) != len(names):
        raise LightformerError("--names needs one distinct name per checkpoint")
    models = {n: load_classifier(p)[0] for n, p in zip(names, args.checkpoints)}
    rows = encoder_speed(models, protocol=args.protocol, device=args.device, dtype=args.dtype, threads=args.threads,
                         batch=args.batch, seq_len=args.seq_len, runs=args.runs, warmup=args.warmup)
    df = pd.DataFrame(rows)
    write_text_atomic(args.out, df.to_csv(index=False))
    for r in rows:
        print(f"{r['model']}: {r['ms']:.2f} ms, {r['sentences_per_s']:.1f} sent/s, {r['speedup']:.2f}x")


def register(sub) -> None:
    s = sub.add_parser("glue", help="GLUE classifiers (BERT or a tiny BERT): init, fine-tune + dev metrics")
    gsub = s.add_subparsers(dest="what", required=True)
    g = gsub.add_parser("init", help="a classifier checkpoint: a fetched BERT with a new head, or a tiny BERT")
    g.add_argument("--task", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--pretrained", help="BERT directory (`lightformer data fetch bert_base_uncased` -> .../raw)")
    g.add_argument("--data", help="prepared GLUE directory (tiny BERT: its vocabulary comes from the task)")
    g.add_argument("--force", action="store_true", help="replace an existing --out classifier (only one this wrote)")
    for name, default in (("hidden", 64), ("layers", 2), ("heads", 2), ("ffn", 128), ("max-len", 128), ("seed", 1)):
        g.add_argument(f"--{name}", type=arg("nonnegative" if name == "seed" else "at_least_1", int), default=default, help="tiny BERT" if name != "seed" else None)
    g.set_defaults(func=cmd_glue_init)
    g = gsub.add_parser("train", help="fine-tune on a task; writes the checkpoint and metrics.json (dev)")
    g.add_argument("--checkpoint", required=True, help="classifier directory (glue init, compress or train)")
    g.add_argument("--data", required=True, help="prepared GLUE directory")
    g.add_argument("--task", help="default: the checkpoint's task")
    g.add_argument("--out", required=True)
    g.add_argument("--force", action="store_true", help="replace an existing --out classifier (only one this wrote)")
    g.add_argument("--record", type=record_object, help=RECORD_HELP)
    g.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="lr=2e-5 epochs=3 batch_size=32 max_len=128 seed=1")
    g.set_defaults(func=cmd_glue_train, gpu=True)

    g = gsub.add_parser("speed", help="encoder-only latency (batch 1) or throughput; speedups vs the first")
    g.add_argument("checkpoints", nargs="+", help="classifier directories; the first is the baseline")
    g.add_argument("--names", nargs="+")
    g.add_argument("--protocol", choices=["latency", "throughput"], default="latency")
    g.add_argument("--device", default="cpu")
    g.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    g.add_argument("--threads", type=arg("at_least_1", int))
    g.add_argument("--batch", type=arg("at_least_1", int), default=32, help="throughput: sequences per batch")
    g.add_argument("--seq-len", type=arg("at_least_1", int), default=128)
    g.add_argument("--runs", type=arg("at_least_1", int), default=100)
    g.add_argument("--warmup", type=arg("nonnegative", int), default=5)
    g.add_argument("--out", required=True, help="CSV")
    g.set_defaults(func=cmd_glue_speed, gpu=True)
