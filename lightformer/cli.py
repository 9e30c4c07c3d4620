"""``lightformer <verb>``: parse, build one config, call one library function, write atomically.

Bad input (a value out of range, an unknown name, a foreign file) is one line on stderr and
exit status 2, with nothing written.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

from lightformer.errors import LightformerError
from lightformer.io import command_line, write_rows, write_text_atomic
from lightformer.provenance import provenance
from lightformer.validate import check, distinct_outputs, load_yaml

EXIT_USAGE = 2
# every numeric option of every verb, checked once after parsing (None = not given)
OPTION_RULES = {
    "nproc_per_node": "at_least_1", "batch_size": "at_least_1", "beam": "at_least_1", "max_tokens": "at_least_1",
    "max_len_a": "nonnegative", "max_len_b": "nonnegative", "min_len": "nonnegative", "lenpen": "finite",
    "no_repeat_ngram_size": "nonnegative", "runs": "at_least_1", "warmup": "nonnegative", "threads": "at_least_1",
    "batch": "at_least_1", "sentences": "at_least_1", "src_len": "at_least_1", "tgt_len": "at_least_1",
    "ratio": "positive", "share_layers": "at_least_1", "seed": "nonnegative", "src_vocab": "at_least_1",
    "tgt_vocab": "at_least_1", "train": "at_least_1", "valid": "at_least_1", "test": "at_least_1",
    "vocab": "at_least_1", "workers": "at_least_1", "bpe_merges": "at_least_1", "src_max_tokens": "at_least_1",
    "tgt_max_tokens": "at_least_1", "seq_len": "at_least_1", "hidden": "at_least_1", "layers": "at_least_1",
    "heads": "at_least_1", "ffn": "at_least_1", "max_len": "at_least_1", "calib_batches": "at_least_1",
    "calib_max_tokens": "at_least_1", "whiten_eps": "positive", "asvd_alpha": "positive",
}


def check_options(args) -> None:
    for name, rule in OPTION_RULES.items():
        value = getattr(args, name, None)
        if value is not None and not isinstance(value, (list, str)):
            check(f"--{name.replace('_', '-')}", value, rule)


# --- helpers ----------------------------------------------------------------------------------

def parse_value(text: str, kind) -> object:
    """Typed value for a ``key=value`` override, by the dataclass field's type name."""
    kind = str(kind)
    if "bool" in kind:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise LightformerError(f"expected a boolean (true/false), got {text!r}")
    try:
        if "int" in kind:
            return int(text)
        if "float" in kind:
            return float(text)
    except ValueError:
        raise LightformerError(f"expected {kind}, got {text!r}") from None
    return text


def parse_overrides(pairs: list[str]) -> dict:
    from lightformer.config import ModelConfig

    types = {f.name: f.type for f in dataclasses.fields(ModelConfig)}
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise LightformerError(f"--set expects key=value, got {pair!r}")
        if key not in types:
            raise LightformerError(f"unknown model option {key!r}; allowed: {', '.join(sorted(types))}")
        out[key] = parse_value(value, types[key])
    return out


def parse_rank(text: str) -> int | dict:
    """'64' or 'all=64,embeddings=128'."""
    try:
        if "=" not in text:
            return int(text)
        out = {}
        for item in text.split(","):
            key, _, value = item.partition("=")
            out[key.strip()] = int(value)
        return out
    except ValueError:
        raise LightformerError(f"--rank expects an integer or role=int pairs, got {text!r}") from None


def format_counts(counts: dict, baseline: dict | None = None) -> str:
    rows = []
    for key, n in counts.items():
        line = f"  {key:<18}{n:>14,}"
        if baseline and baseline.get(key):
            line += f"   ({baseline[key] / n:.2f}x fewer)" if n else ""
        rows.append(line)
    return "\n".join(rows)


# --- verbs ------------------------------------------------------------------------------------

def cmd_init(args) -> None:
    import lightformer as lf

    distinct_outputs([], [args.out])
    overrides = parse_overrides(args.set)
    if args.share_decoder_input_output_embed:
        overrides["share_decoder_input_output_embed"] = True
    if args.share_all_embeddings:
        overrides["share_all_embeddings"] = True
    model = lf.build_model(args.arch, args.src_vocab, args.tgt_vocab, seed=args.seed, **overrides)
    lf.save_checkpoint(model, args.out, provenance={"arch": args.arch, "seed": args.seed, "init": "random"})
    print(f"{args.out}: {args.arch}, {lf.count_parameters(model)['total']:,} parameters", file=sys.stderr)


def cmd_params(args) -> None:
    import lightformer as lf

    counts = [lf.count_parameters(lf.load_checkpoint(path, verify=args.verify)) for path in args.checkpoints]
    if args.verify:
        print("\n".join(f"{p}: content digest OK" for p in args.checkpoints), file=sys.stderr)
    if args.json:
        rows = [{"checkpoint": p} | c for p, c in zip(args.checkpoints, counts)]
        print(json.dumps(counts[0] if len(counts) == 1 else rows, indent=2))
        return
    if len(counts) == 1:
        print(f"{args.checkpoints[0]}\n{format_counts(counts[0])}")
        return
    # several checkpoints: one row each, compression relative to the first
    name_w = max(len(p) for p in args.checkpoints)
    print(f"{'checkpoint':<{name_w}} {'total':>12} {'embedding':>12} {'body':>12} {'x fewer':>8}")
    for path, c in zip(args.checkpoints, counts):
        print(f"{path:<{name_w}} {c['total']:>12,} {c['embedding']:>12,} {c['body']:>12,} "
              f"{counts[0]['total'] / c['total']:>8.2f}")


def cmd_compress(args) -> None:
    import lightformer as lf
    from lightformer.io import file_sha256

    classifier = (Path(args.checkpoint) / "lightformer.json").is_file()  # a GLUE classifier (BERT) directory
    distinct_outputs([args.checkpoint, args.spec, args.calib_data],
                     [args.report] if classifier else [args.out, args.report])
    if classifier and (Path(args.out).resolve() == Path(args.checkpoint).resolve()
                       or (args.report and Path(args.report).resolve().is_relative_to(Path(args.out).resolve()))):
        raise LightformerError(f"--out {args.out!r} would overwrite the input classifier or the report; write it elsewhere")
    spec = {}
    if args.spec:
        spec = load_yaml(args.spec, "spec file") or {}
        if not isinstance(spec, dict):
            raise LightformerError(f"spec file {args.spec!r} must hold a mapping of compression options")
    flags = {
        "rank": parse_rank(args.rank) if args.rank is not None else None,
        "ratio": args.ratio, "roles": args.roles, "share_layers": args.share_layers,
        "share_side": args.share_side, "share_roles": args.share_roles,
        "share_qkv": True if args.share_qkv else None, "sigma_split": args.sigma_split,
        "init": args.init, "seed": args.seed, "rank_alloc": args.rank_alloc, "calib_batches": args.calib_batches,
        "calib_max_tokens": args.calib_max_tokens, "whiten_eps": args.whiten_eps, "asvd_alpha": args.asvd_alpha,
    }
    spec |= {k: v for k, v in flags.items() if v is not None}
    if classifier:
        return _compress_classifier(args, spec)
    dense = lf.load_checkpoint(args.checkpoint)
    model = lf.compress(dense, spec, calib=args.calib_data)  # all checks happen here, before anything is written
    before, after = lf.count_parameters(dense), lf.count_parameters(model)
    report = {
        "source": {"path": str(args.checkpoint), "sha256": file_sha256(args.checkpoint)},
        "spec": model.compression["spec"],
        "params": {"dense": before, "compressed": after, "ratio": before["total"] / after["total"]},
        "groups": model.compression["groups"],
        "matrices": model.compression["report"],
    }
    errors = [r["output_rel_error"] for r in report["matrices"] or [] if r.get("output_rel_error") is not None]
    if args.calib_data:  # mean over matrices of the held-out (valid split) output error
        report["calibration"] = {"data": str(args.calib_data), "output_rel_error_mean": sum(errors) / len(errors)
                                 if errors else None}
    lf.save_checkpoint(model, args.out, provenance={"parent": report["source"]})
    if args.report:
        write_text_atomic(args.report, json.dumps(report, indent=2) + "\n")
    print(f"{args.out}: {before['total']:,} -> {after['total']:,} parameters "
          f"({report['params']['ratio']:.2f}x fewer)\n{format_counts(after, before)}")


def cmd_export_ct2(args) -> None:
    import lightformer as lf
    from lightformer.export.ct2 import export_ct2, read_symbols
    from lightformer.io import file_sha256

    model = lf.load_checkpoint(args.checkpoint)
    src_symbols = tgt_symbols = None
    if args.data:  # token strings from the prepared directory's dictionaries
        from lightformer.data.indexed import ParallelData

        data = ParallelData(args.data)
        src_symbols = read_symbols(data.src_dict, model.cfg.src_vocab, f"{args.data} (source)")
        tgt_symbols = read_symbols(data.tgt_dict, model.cfg.tgt_vocab, f"{args.data} (target)")
    report = export_ct2(model, args.out, src_symbols=src_symbols, tgt_symbols=tgt_symbols,
                        quantization=args.quantization, force=args.force,
                        source={"checkpoint": str(args.checkpoint), "checkpoint_sha256": file_sha256(args.checkpoint),
                                "command": command_line()})
    print(f"{args.out}: CTranslate2 {report['ctranslate2']} model ({report['quantization']}, "
          f"{report['vocabulary']} vocabulary); {report['note']}")


def _compress_classifier(args, spec: dict) -> None:
    from lightformer.classify.model import load_classifier, save_classifier
    from lightformer.compress.bert import compress_bert, dense_params

    dense, meta = load_classifier(args.checkpoint)
    spec.setdefault("roles", ["body"])  # BERT: attention and FFN; add src_embed for the embeddings
    model = compress_bert(dense, spec)
    before, after = dense_params(dense), dense_params(model)
    save_classifier(model, args.out, Path(args.checkpoint),
                    {"task": meta.get("task"), "provenance": {"parent": str(args.checkpoint)}})
    report = {"source": {"path": str(args.checkpoint)}, "spec": model.compression["spec"],
              "params": {"dense": {"total": before}, "compressed": {"total": after}, "ratio": before / after},
              "groups": model.compression["groups"], "matrices": model.compression["report"]}
    if args.report:
        write_text_atomic(args.report, json.dumps(report, indent=2) + "\n")
    print(f"{args.out}: {before:,} -> {after:,} parameters ({before / after:.2f}x fewer)")


def cmd_glue_init(args) -> None:
    import tempfile

    from lightformer.classify.model import (
        build_vocab,
        load_tokenizer,
        pretrained_bert,
        save_classifier,
        tiny_bert,
    )
    from lightformer.classify.train import read_rows
    from lightformer.data.glue import GLUE_COLUMNS, NUM_LABELS, check_task

    task = check_task(args.task)
    with tempfile.TemporaryDirectory() as tmp:
        if args.pretrained:
            model = pretrained_bert(Path(args.pretrained), NUM_LABELS[task])
            vocab_dir = Path(args.pretrained)
            load_tokenizer(vocab_dir)  # fail now, not after training
        else:  # a tiny BERT from scratch, its vocabulary from the task's training text (smoke runs)
            if not args.data:
                raise LightformerError("a tiny BERT needs --data (its vocabulary comes from the task); or --pretrained")
            rows = read_rows(Path(args.data), task, "train")
            vocab_dir = Path(tmp)
            build_vocab([r[c] for r in rows for c in GLUE_COLUMNS[task][0]], vocab_dir)
            model = tiny_bert(vocab_dir, NUM_LABELS[task], hidden=args.hidden, layers=args.layers, heads=args.heads,
                              ffn=args.ffn, max_len=args.max_len, seed=args.seed)
        save_classifier(model, args.out, vocab_dir, {"task": task, "source": args.pretrained or "tiny (random init)"})
    print(f"{args.out}: {'pretrained ' + args.pretrained if args.pretrained else 'tiny BERT'} for {task}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters")


def cmd_glue_train(args) -> None:
    from lightformer.classify.model import (
        load_classifier,
        load_tokenizer,
        save_classifier,
    )
    from lightformer.classify.train import GlueConfig, fine_tune
    from lightformer.compress.bert import dense_params
    from lightformer.train.config import _typed

    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in GlueConfig.__dataclass_fields__:
            raise LightformerError(f"{item!r}: expected KEY=VALUE with KEY one of {', '.join(GlueConfig.__dataclass_fields__)}")
        overrides[key] = _typed(key, value, getattr(GlueConfig(), key))
    cfg = GlueConfig(**overrides)
    if Path(args.out).resolve() == Path(args.checkpoint).resolve():
        raise LightformerError(f"--out {args.out!r} would overwrite the input checkpoint; write it elsewhere")
    model, meta = load_classifier(args.checkpoint)
    task = args.task or meta.get("task")
    result = fine_tune(model, load_tokenizer(Path(args.checkpoint)), task, Path(args.data), cfg)
    save_classifier(model.cpu(), args.out, Path(args.checkpoint),
                    {"task": task, "provenance": {"parent": str(args.checkpoint), "fine_tuned": result["config"]}})
    result |= {"params": dense_params(model), "checkpoint": str(args.out), "command": command_line(),
               "provenance": provenance()}
    write_text_atomic(Path(args.out) / "metrics.json", json.dumps(result, indent=2) + "\n")
    print(f"{args.out}: " + "; ".join(f"{k} " + ", ".join(f"{m} {v:.2f}" for m, v in d["scores"].items())
                                      for k, d in result["dev"].items()))


def cmd_glue_speed(args) -> None:
    import pandas as pd

    from lightformer.classify.model import load_classifier
    from lightformer.classify.speed import encoder_speed

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


def cmd_speed(args) -> None:

    import lightformer as lf
    from lightformer.speed.bench import SpeedConfig, run_speed

    cfg = SpeedConfig(protocol=args.protocol, device=args.device, dtype=args.dtype, threads=args.threads,
                      beam=args.beam, lenpen=args.lenpen, src_len=args.src_len, tgt_len=args.tgt_len,
                      batch=args.batch, sentences=args.sentences, runs=args.runs, warmup=args.warmup,
                      fixed_length=not args.free_length, fast=not args.no_fast_path,
                      cuda_graph=args.cuda_graph, fused_lowrank=args.fused_lowrank, int8=args.int8, seed=args.seed)
    from lightformer.speed.ct2 import CT2Model, is_ct2, parse_entry

    if bool(args.checkpoints) == bool(args.paper_size):
        raise LightformerError("give checkpoints to time, or --paper-size TASK (not both)")
    distinct_outputs([p for p in args.checkpoints if not is_ct2(p)] + [args.data], [args.out])
    entries = [parse_entry(p) if is_ct2(p) else None for p in args.checkpoints]
    stems = [(f"ct2_{Path(e[0]).name}" + (f"_{e[1]}" if e[1] else "")) if e else Path(p).name.split(".")[0]
             for p, e in zip(args.checkpoints, entries)]
    names = stems if len(set(stems)) == len(stems) else list(args.checkpoints)
    if args.names:
        if len(args.names) != len(args.checkpoints) or len(set(args.names)) != len(args.names):
            raise LightformerError(f"--names needs {len(args.checkpoints)} distinct names, one per checkpoint")
        names = args.names
    models = {n: CT2Model(*e) if e else lf.load_checkpoint(p) for n, p, e in zip(names, args.checkpoints, entries)}
    labels = list(args.checkpoints)  # the checkpoint column
    if args.paper_size:
        from lightformer.speed.bench import paper_size_models

        models = paper_size_models(args.paper_size)
        labels = [f"random weights, paper size ({args.paper_size})"] * len(models)
    sources, source_name = None, "synthetic"
    if args.data:
        if cfg.protocol != "throughput":
            raise LightformerError("--data applies to --protocol throughput (latency uses a fixed synthetic source)")
        from lightformer.data.indexed import ParallelData

        src, _ = ParallelData(args.data).split(args.split)
        sources, source_name = [src[i] for i in range(len(src))], f"{args.data}:{args.split}"
    rows = run_speed(models, cfg, sources=sources, source_name=source_name)
    for row, label in zip(rows, labels):
        row["checkpoint"] = str(label)
        if args.task or args.paper_size:
            row["task"] = args.task or args.paper_size
    if args.out:
        write_rows(args.out, rows, append=args.append)
    r0 = rows[0]
    print(f"{cfg.protocol} on {r0['device_name']} ({r0['dtype']}, threads {r0['threads'] or '-'}, "
          f"batch {r0['batch']}, beam {r0['beam']}, src {cfg.src_len}, tgt {cfg.tgt_len} fixed={cfg.fixed_length}, "
          f"cuda_graph={cfg.cuda_graph})")
    print(f"{'model':<20}{'params':>12}{'x fewer':>9}{'enc ms':>9}{'dec ms':>10}{'sent/s':>9}"
          f"{'speedup':>9}  p10-p90")
    for r in rows:
        print(f"{r['model']:<20}{r['params']:>12,}{r['compression']:>9.2f}{r['encoder_ms']:>9.2f}"
              f"{r['decoder_ms']:>10.2f}{r['sentences_per_s']:>9.1f}{r['speedup']:>9.2f}  "
              f"{r['speedup_p10']:.2f}-{r['speedup_p90']:.2f}")


def cmd_report_speed(args) -> None:
    from lightformer.report.speed import load_speed, speed_figure, write_speed_table

    df = load_speed(args.csvs)
    write_speed_table(df, args.table, args.markdown)
    if args.figure:
        speed_figure(df, args.figure)
    print(f"{args.table}: {len(df)} rows from {len(args.csvs)} file(s)")


def cmd_train(args) -> int:
    from lightformer.train.config import load_train_config
    from lightformer.train.loop import EXIT_PREEMPTED, Preempted, train

    cfg = load_train_config(args.recipe, args.config, args.overrides)
    if args.nproc_per_node > 1 and "LOCAL_RANK" not in os.environ:
        return _relaunch_under_torchrun(args.nproc_per_node, cfg.update_freq)
    restart = "always" if args.restart else "if-changed" if args.restart_if_changed else "no"
    try:
        summary = train(cfg, restart=restart)
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
    import lightformer as lf
    from lightformer.train.checkpoints import average_checkpoints

    distinct_outputs(args.checkpoints, [args.out])
    model = average_checkpoints(args.checkpoints)
    lf.save_checkpoint(model, args.out, provenance={"averaged": [str(p) for p in args.checkpoints]})
    print(f"{args.out}: mean of {len(args.checkpoints)} checkpoints")


def cmd_generate(args) -> None:
    import lightformer as lf
    from lightformer.data.indexed import ParallelData
    from lightformer.decode.generate import generate
    from lightformer.gpu import pick_device
    from lightformer.io import file_sha256

    distinct_outputs([args.checkpoint, args.data], [args.out, f"{args.out}.json"])
    device = pick_device(args.device)
    search = search_config(args)
    model = lf.load_checkpoint(args.checkpoint)
    res = generate(model, ParallelData(args.data), args.split, search, device, max_tokens=args.max_tokens,
                   batch_size=args.batch_size, remove_bpe=args.remove_bpe, detok_lang=args.detok,
                   bleu=None if args.bleu == "none" else args.bleu)
    write_text_atomic(args.out, "".join(h + "\n" for h in res["hypotheses"]))
    summary = {k: v for k, v in res.items() if k not in ("hypotheses", "references")} | {
        "checkpoint": str(args.checkpoint), "checkpoint_sha256": file_sha256(args.checkpoint),
        "data": str(args.data), "split": args.split, "search": dataclasses.asdict(search), "device": str(device),
        "remove_bpe": args.remove_bpe, "detok": args.detok, "command": command_line(), "provenance": provenance()}
    write_text_atomic(f"{args.out}.json", json.dumps(summary, indent=2) + "\n")
    line = f"{res['sentences']} sentences, {res['sentences_per_s']:.1f} sent/s, {res['tokens_per_s']:.0f} tok/s"
    if "bleu" in res:
        line += f"; {res['bleu']['label']}: {res['bleu']['score']:.2f} ({res['bleu']['signature']})"
    if "rouge" in res:
        line += "; " + ", ".join(f"{k} {v:.2f}" for k, v in res["rouge"]["scores"].items()) + f" ({res['rouge']['label']})"
    print(line)


def cmd_translate(args) -> None:
    """Lines in (tokenised, BPE applied as in training), hypotheses out, in input order."""
    import time

    import torch

    import lightformer as lf
    from lightformer.data.batching import collate, length_buckets
    from lightformer.data.indexed import ParallelData
    from lightformer.decode.beam import beam_search
    from lightformer.decode.generate import check_vocabularies, detokenizer, postprocess

    data = ParallelData(args.data)
    model = lf.load_checkpoint(args.checkpoint).eval()
    check_vocabularies(model, data)
    lines = read_lines(args.input)
    if not lines:
        raise LightformerError("no input lines to translate")
    detok = detokenizer(args.detok)
    sources = [data.src_dict.encode(line).long() for line in lines]
    limit = model.cfg.max_source_positions
    for n, src in enumerate(sources, 1):
        if len(src) > limit and not args.truncate:
            raise LightformerError(f"{args.input or 'stdin'}:{n}: {len(src)} tokens (with </s>), but the model takes at "
                                   f"most {limit}; shorten the line or pass --truncate")
    sources = [s if len(s) <= limit else torch.cat([s[: limit - 1], s[-1:]]) for s in sources]
    sizes = torch.tensor([len(x) for x in sources]).numpy()
    search = search_config(args)
    out: list[str] = [""] * len(lines)
    start = time.perf_counter()
    for idx in length_buckets(sizes, sizes, max(int(sizes.max()) * args.batch_size, 1), max_sentences=args.batch_size):
        found = beam_search(model, collate([sources[i] for i in idx])["src_tokens"], search)
        for i, hyps in zip(idx, found):
            out[i] = postprocess(data.tgt_dict.decode(hyps[0].tokens, args.remove_bpe), detok)
    seconds = time.perf_counter() - start
    sys.stdout.write("".join(h + "\n" for h in out))
    print(f"{len(lines)} sentences in {seconds:.2f} s ({len(lines) / seconds:.1f} sent/s)", file=sys.stderr)


def read_lines(path: str | None) -> list[str]:
    """Input lines from a file or stdin as UTF-8; undecodable bytes are an error naming the line."""
    if path and not Path(path).is_file():
        raise LightformerError(f"input file {path!r} does not exist")
    raw = Path(path).read_bytes() if path else sys.stdin.buffer.read()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for n, line in enumerate(lines, 1):
        try:
            out.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as e:
            raise LightformerError(f"{path or 'stdin'}:{n}: not UTF-8 ({e.reason} at byte {e.start})") from None
    return out


APT_LISTS = "/var/lib/apt/lists"


def cmd_data_ddtp(args) -> None:
    """DDTP: read from apt's lists directory (or <mirror>/ddtp/), never from the archive host."""
    from lightformer.data import ddtp

    pair = tuple(getattr(args, "pair", "de-en").split("-"))  # fetch and prepare take --pair
    if len(pair) != 2 or not all(pair) or "en" not in pair or pair[0] == pair[1]:
        raise LightformerError(f"--pair {args.pair!r}: expected LANG-en or en-LANG, e.g. de-en")
    raw, out = Path(args.root) / "ddtp" / "raw", Path(args.root) / "ddtp" / "prepared"
    if args.what == "fetch":
        source = args.source or (f"{args.mirror.rstrip('/')}/ddtp" if args.mirror else APT_LISTS)
        if source.startswith(("http://", "https://")):  # a Debian archive root, e.g. https://deb.debian.org/debian
            manifest = ddtp.fetch_ddtp_http(source, raw, pair, args.suite)
        else:
            manifest = ddtp.fetch_ddtp(Path(source), raw, pair, args.suite)
        for name in manifest["files"]:
            print(f"{raw / name}: verified (suite {manifest['suite']}, Release {manifest.get('release_date') or '?'})")
    elif args.what == "verify":
        for name in ddtp.verify_ddtp(raw)["files"]:
            print(f"{raw / name}: verified")
    elif args.what == "mirror":
        target = Path(args.to) / "ddtp"
        target.mkdir(parents=True, exist_ok=True)
        for name in ddtp.verify_ddtp(raw)["files"]:
            shutil.copyfile(raw / name, target / name)
            print(f"{target / name}: copied")
    elif args.what == "prepare":
        counts = ddtp.prepare_ddtp(raw, out, pair, bpe_merges=args.bpe_merges or 8_000)
        print(f"{out}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))


def cmd_data_text(args) -> None:
    """Your own corpus (lightformer.data.corpus): the spec names it, its files and its recipe."""
    from lightformer.data import corpus as custom

    if not args.corpus:
        raise LightformerError("dataset 'text' needs --corpus SPEC (a YAML/JSON corpus spec; see README, 'Your own "
                               "corpus')")
    spec = custom.load(args.corpus)
    root = Path(args.root)
    if args.what == "fetch":
        for path in custom.fetch_corpus(spec, root, args.mirror, retrust=args.retrust):
            print(f"{path}: verified")
        print(f"{root / spec.name}: {spec.kind} corpus read and checked (every file, every line)")
    elif args.what == "verify":
        print("\n".join(custom.verify_corpus(spec, root)))
    elif args.what == "mirror":
        for path in custom.mirror_corpus(spec, root, Path(args.to)):
            print(f"{path}: copied")
    elif args.what == "prepare":
        counts = custom.prepare_corpus(spec, root, bpe_merges=args.bpe_merges or 10_000, workers=args.workers)
        print(f"{root / spec.name / 'prepared'}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items() if k != "drift"))


def cmd_data(args) -> None:
    from lightformer.data import download
    from lightformer.data.sources import get_dataset

    if args.dataset == "ddtp":
        return cmd_data_ddtp(args)
    if args.dataset == "text":
        return cmd_data_text(args)
    if getattr(args, "corpus", None):
        raise LightformerError(f"--corpus applies to dataset 'text' (your own corpus), not {args.dataset!r}")
    ds = get_dataset(args.dataset)
    root = Path(args.root)
    if args.what == "fetch":
        if getattr(args, "revision", None):
            if ds.hub is None:
                raise LightformerError(f"--revision applies to Hub datasets; {ds.name} is not one")
            ds = dataclasses.replace(ds, hub=dataclasses.replace(ds.hub, revision=args.revision))
        if args.embedded:
            mirror = args.mirror or os.environ.get(download.MIRROR_ENV)
            if not mirror:
                raise LightformerError("--embedded needs --mirror (the directory `lightformer data fixtures` wrote)")
            if ds.hub is None:  # Hub fixtures carry their pins in the mirror's hub.json
                ds = download.embedded_pins(ds, mirror)
        for path in download.fetch(ds, root, args.mirror, embedded=args.embedded, retrust=args.retrust):
            print(f"{path}: verified")
        if args.embedded:  # later verifies use the recorded (fixture) checksums, not the published ones
            manifest = download.read_manifest(root / ds.name / "raw")
            download.write_manifest(root / ds.name / "raw", manifest | {"embedded": True})
    elif args.what == "verify":
        print("\n".join(download.verify(ds, root)))
    elif args.what == "mirror":
        for path in download.mirror_to(ds, root, Path(args.to)):
            print(f"{path}: copied")
    elif args.what == "prepare":
        download.verify(ds, root)
        out = root / ds.name / "prepared"
        expected = None if args.no_expected or download.read_manifest(root / ds.name / "raw").get("embedded") \
            else ds.expected
        if ds.name == "iwslt14":
            from lightformer.data.iwslt14 import prepare_iwslt14

            counts = prepare_iwslt14(root / ds.name / "raw" / ds.files[0].name, out,
                                     bpe_merges=args.bpe_merges or 10_000, expected=expected)
        elif ds.name in ("wmt14", "wmt14_hub"):
            from lightformer.data.wmt14 import prepare_wmt14

            counts = prepare_wmt14(root / ds.name / "raw", out, bpe_merges=args.bpe_merges or 40_000,
                                   valid_from=args.valid_from, workers=args.workers, expected=expected,
                                   source="hub" if ds.name == "wmt14_hub" else "statmt")
        elif ds.name == "cnndm":
            from lightformer.data.cnndm import prepare_cnndm

            counts = prepare_cnndm(root / ds.name / "raw", out, bpe_merges=args.bpe_merges or 20_000,
                                   src_max_tokens=args.src_max_tokens, tgt_max_tokens=args.tgt_max_tokens,
                                   workers=args.workers, expected=expected)
        elif ds.name == "glue":
            from lightformer.data.glue import prepare_glue

            counts = prepare_glue(root / ds.name / "raw", out, expected=expected)
        else:
            raise LightformerError(f"preparation of {ds.name!r} is not implemented")
        print(f"{out}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items() if k != "drift"))
        if counts.get("drift") and any(counts["drift"].values()):
            print(f"drift from the published split sizes: {counts['drift']} (recorded in meta.json)")


def cmd_data_fixtures(args) -> None:
    from lightformer.data.fixtures import write_mirror

    for name, path in write_mirror(args.out).items():
        print(f"{path}: embedded {name}")


def cmd_data_synthetic(args) -> None:
    from lightformer.data.synthetic import write_synthetic

    root = write_synthetic(args.out, args.task, train=args.train, valid=args.valid, test=args.test,
                           vocab=args.vocab, seed=args.seed)
    print(f"{root}: synthetic {args.task} task")


def cmd_report_glue(args) -> None:
    from lightformer.report.tables import glue_rows, write_table

    df = glue_rows(args.metrics, args.speed, args.config_sha256)
    write_table(df, args.table, args.markdown)
    print(f"{args.table}: {len(df)} models")


def cmd_report_ablation_transfer(args) -> None:
    from lightformer.report.figures import ablation_transfer_figure
    from lightformer.report.tables import ablation_transfer_rows, write_table

    df = ablation_transfer_rows(args.transfer, args.finetuned, args.reports, args.baselines, args.config_sha256)
    write_table(df, args.table, args.markdown)
    if args.figure:
        ablation_transfer_figure(df, args.figure)
    print(f"{args.table}: {len(df)} transfer variants")


def cmd_report_tables(args) -> None:
    import pandas as pd

    from lightformer.report.figures import (
        learning_curves,
        metric_vs_params,
        sharing_heatmap,
    )
    from lightformer.report.tables import (
        ablations,
        paper_comparison,
        task_rows,
        write_table,
    )

    out = Path(args.out)
    if not args.summary:
        if len(args.tasks) != 1:
            raise LightformerError("a task table is built for one task at a time (--tasks NAME)")
        task = args.tasks[0]
        df = task_rows(task, args.evals, args.params, args.reports, args.speed, args.config_sha256, args.manifest,
                       args.prepared_meta)
        write_table(df, out / f"{task}.csv", out / f"{task}.md")
        print(f"{out}: table for {task} from {len(args.evals)} evaluations")
        return
    if len(args.tables) != len(args.tasks):
        raise LightformerError("--summary needs one --tables CSV per task, in --tasks order")
    tables = {t: pd.read_csv(p) for t, p in zip(args.tasks, args.tables)}
    everything = pd.concat(tables.values(), ignore_index=True)
    for name, df in ablations(everything).items():
        write_table(df, out / f"ablation_{name}.csv", out / f"ablation_{name}.md")
    paper_speed = {}
    for path in args.paper_size_speed or []:
        df = pd.read_csv(path)
        paper_speed[str(df["task"].iloc[0])] = df
    write_table(paper_comparison(tables, paper_speed), out / "paper_comparison.csv", out / "paper_comparison.md")
    figures = Path(args.figures)
    metric_vs_params(everything, figures / "metric_vs_params.png")
    sharing_heatmap(everything, figures / "sharing_heatmap.png")
    curves = {f"{Path(p).parent.parent.name} {Path(p).parent.name}": pd.read_csv(p) for p in args.curves}
    learning_curves(curves, figures / "learning_curves.png")
    print(f"{out}: ablations and paper comparison for {', '.join(args.tasks)}; {figures}: figures")


# --- parser -----------------------------------------------------------------------------------

def add_decoding_args(s: argparse.ArgumentParser, batch_size: int) -> None:
    """Beam-search and post-processing options shared by generate and translate (fairseq names)."""
    s.add_argument("--beam", type=int, default=5)
    s.add_argument("--lenpen", type=float, default=1.0)
    s.add_argument("--max-len-a", type=float, default=0.0)
    s.add_argument("--max-len-b", type=int, default=200)
    s.add_argument("--min-len", type=int, default=1)
    s.add_argument("--no-repeat-ngram-size", type=int, default=0)
    s.add_argument("--batch-size", type=int, default=batch_size, help="sentences per batch")
    s.add_argument("--remove-bpe", nargs="?", const="@@ ", default=None, help="BPE continuation marker")
    s.add_argument("--detok", metavar="LANG", help="Moses-detokenize the output (and references)")


def search_config(args):
    from lightformer.decode.beam import SearchConfig

    return SearchConfig(beam=args.beam, lenpen=args.lenpen, max_len_a=args.max_len_a, max_len_b=args.max_len_b,
                        min_len=args.min_len, no_repeat_ngram_size=args.no_repeat_ngram_size)


def build_parser() -> argparse.ArgumentParser:
    from lightformer import __version__
    from lightformer.compress.spec import INITS, RANK_ALLOCS, SHARE_SIDES, SIGMA_SPLITS
    from lightformer.config import PRESETS

    p = argparse.ArgumentParser(prog="lightformer", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"lightformer {__version__}")
    sub = p.add_subparsers(dest="verb", required=True)

    s = sub.add_parser("init", help="write a freshly initialised dense Transformer")
    s.add_argument("--arch", required=True, choices=list(PRESETS))
    s.add_argument("--src-vocab", type=int, required=True)
    s.add_argument("--tgt-vocab", type=int, required=True)
    s.add_argument("--share-decoder-input-output-embed", action="store_true")
    s.add_argument("--share-all-embeddings", action="store_true", help="needs src-vocab == tgt-vocab")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a ModelConfig field, e.g. --set dropout=0.3")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("params", help="count parameters by role (shared tensors once); several files: "
                                      "a table with compression relative to the first")
    s.add_argument("checkpoints", nargs="+")
    s.add_argument("--json", action="store_true")
    s.add_argument("--verify", action="store_true", help="recompute each file's content digest (a flipped byte fails)")
    s.set_defaults(func=cmd_params)

    s = sub.add_parser("compress", help="SVD weight transfer (or random init) to a LightFormer")
    s.add_argument("checkpoint")
    s.add_argument("--spec", help="YAML/JSON file of compression options; flags override it")
    s.add_argument("--rank", help="an integer, or role=int pairs: all=64,embeddings=128")
    s.add_argument("--ratio", type=float, help="target dense/compressed parameter ratio, e.g. 3.8")
    s.add_argument("--roles", help="roles to factorise, comma-separated (default: all)")
    s.add_argument("--share-layers", type=int, help="cross-layer group size k (1 = no sharing)")
    s.add_argument("--share-side", choices=SHARE_SIDES, help="which factor a group shares (default: in)")
    s.add_argument("--share-roles", help="roles that share across layers (default: body)")
    s.add_argument("--share-qkv", action="store_true", help="q/k/v of each attention share one input basis")
    s.add_argument("--sigma-split", choices=SIGMA_SPLITS)
    s.add_argument("--init", choices=INITS, help="svd (default), random, or data-aware: svd_whiten (SVD-LLM), "
                                                 "svd_fisher (FWSVD), asvd (ASVD); those need --calib-data")
    s.add_argument("--rank-alloc", choices=RANK_ALLOCS, help="with --ratio: uniform (default), or greedy by "
                                                              "singular-value energy per parameter")
    s.add_argument("--calib-data", help="prepared directory: train split calibrates, valid split gives the report's "
                                        "held-out output error")
    s.add_argument("--calib-batches", type=int, help="calibration batches (default 8)")
    s.add_argument("--calib-max-tokens", type=int, help="tokens per calibration batch (default 4096)")
    s.add_argument("--whiten-eps", type=float, help="ridge on Gram matrices, relative to the mean diagonal (1e-6)")
    s.add_argument("--asvd-alpha", type=float, help="ASVD exponent on mean |x| (0.5)")
    s.add_argument("--seed", type=int)
    s.add_argument("--out", required=True)
    s.add_argument("--report", help="JSON report: per-matrix rank, error and energy kept")
    s.set_defaults(func=cmd_compress)
    s = sub.add_parser("export", help="convert a checkpoint for another inference engine")
    esub = s.add_subparsers(dest="engine", required=True)
    e = esub.add_parser("ct2", help="a CTranslate2 model directory (factorised matrices are merged: CTranslate2 "
                                    "has no low-rank layer)")
    e.add_argument("checkpoint")
    e.add_argument("--out", required=True, help="model directory to write")
    e.add_argument("--data", help="prepared directory whose dictionaries name the tokens (default: w<id> names)")
    e.add_argument("--quantization", help="stored weight type: float32 (default), float16, bfloat16, int8, ...; "
                                          "the compute type can still be chosen when loading")
    e.add_argument("--force", action="store_true", help="replace an existing --out directory")
    e.set_defaults(func=cmd_export_ct2)

    s = sub.add_parser("glue", help="GLUE classifiers (BERT or a tiny BERT): init, fine-tune + dev metrics")
    gsub = s.add_subparsers(dest="what", required=True)
    g = gsub.add_parser("init", help="a classifier checkpoint: a fetched BERT with a new head, or a tiny BERT")
    g.add_argument("--task", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--pretrained", help="BERT directory (`lightformer data fetch bert_base_uncased` -> .../raw)")
    g.add_argument("--data", help="prepared GLUE directory (tiny BERT: its vocabulary comes from the task)")
    for name, default in (("hidden", 64), ("layers", 2), ("heads", 2), ("ffn", 128), ("max-len", 128), ("seed", 1)):
        g.add_argument(f"--{name}", type=int, default=default, help="tiny BERT" if name != "seed" else None)
    g.set_defaults(func=cmd_glue_init)
    g = gsub.add_parser("train", help="fine-tune on a task; writes the checkpoint and metrics.json (dev)")
    g.add_argument("--checkpoint", required=True, help="classifier directory (glue init, compress or train)")
    g.add_argument("--data", required=True, help="prepared GLUE directory")
    g.add_argument("--task", help="default: the checkpoint's task")
    g.add_argument("--out", required=True)
    g.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="lr=2e-5 epochs=3 batch_size=32 max_len=128 seed=1")
    g.set_defaults(func=cmd_glue_train)

    g = gsub.add_parser("speed", help="encoder-only latency (batch 1) or throughput; speedups vs the first")
    g.add_argument("checkpoints", nargs="+", help="classifier directories; the first is the baseline")
    g.add_argument("--names", nargs="+")
    g.add_argument("--protocol", choices=["latency", "throughput"], default="latency")
    g.add_argument("--device", default="cpu")
    g.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    g.add_argument("--threads", type=int)
    g.add_argument("--batch", type=int, default=32, help="throughput: sequences per batch")
    g.add_argument("--seq-len", type=int, default=128)
    g.add_argument("--runs", type=int, default=100)
    g.add_argument("--warmup", type=int, default=5)
    g.add_argument("--out", required=True, help="CSV")
    g.set_defaults(func=cmd_glue_speed)

    s = sub.add_parser("bench", help="training benchmarks")
    bsub = s.add_subparsers(dest="what", required=True)
    b = bsub.add_parser("train", help="training tokens/s, model FLOPs per token, MFU and peak memory; Hugging "
                                      "Face's Marian of the same configuration on the same batches")
    b.add_argument("checkpoints", nargs="*", help="models to time (their shapes; weights do not matter)")
    b.add_argument("--paper-size", metavar="TASK", choices=["iwslt14", "wmt14"],
                   help="instead of checkpoints: the task's paper-size model and its LightFormer at the abstract's ratio")
    b.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda or cuda:N")
    b.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16", help="bf16 autocast (GPU) or fp32")
    b.add_argument("--max-tokens", type=int, default=4096, help="tokens per batch (padded), as training's max_tokens")
    b.add_argument("--steps", type=int, default=20, help="timed steps per engine")
    b.add_argument("--warmup", type=int, default=3, help="untimed steps first (allocator, kernels, compile)")
    b.add_argument("--lengths", choices=["iwslt14", "wmt14"], help="sentence-length distribution (default: the task's)")
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--compile", action="store_true", help="torch.compile both engines' models")
    b.add_argument("--peak-tflops", type=float, help="the device's peak for MFU (CPUs and unlisted GPUs have none)")
    b.add_argument("--no-hf", action="store_true", help="time our models only")
    b.add_argument("--loss", choices=["auto", "fused", "dense"], default="auto",
                   help="our loss: fused with the output layer and chunked, or over dense logits (auto: fused on GPU)")
    b.add_argument("--out", help="CSV of the rows (with the command)")
    b.add_argument("--append", action="store_true", help="add to --out instead of replacing it")
    b.set_defaults(func=cmd_bench_train)

    s = sub.add_parser("plan-cost", help="GPU-hours of a workflow config's training, from `bench train` rows")
    s.add_argument("configfile", help="a workflow config, e.g. workflow/configs/paper.yaml")
    s.add_argument("--bench", required=True, help="CSV of `lightformer bench train` (the device it names is costed)")
    s.add_argument("--out", help="CSV of the per-stage rows and the total")
    s.set_defaults(func=cmd_plan_cost)

    s = sub.add_parser("speed", help="time checkpoints interleaved; speedups relative to the first")
    s.add_argument("checkpoints", nargs="*", help="checkpoints, or ct2:DIR[:fp32|fp16|bf16|int8] for a CTranslate2 "
                                                  "export (lightformer export ct2) timed the same way")
    s.add_argument("--paper-size", metavar="TASK", help="instead of checkpoints: the task's paper-size dense model "
                                                         "and its LightFormer at the abstract's ratio, random weights")
    s.add_argument("--protocol", choices=["latency", "throughput"], default="latency")
    s.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    s.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    s.add_argument("--threads", type=int, help="CPU threads (default: torch's current setting)")
    s.add_argument("--beam", type=int, default=5)
    s.add_argument("--lenpen", type=float, default=1.0)
    s.add_argument("--src-len", type=int, default=23, help="source tokens: 23 IWSLT, 30 WMT (HAT)")
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
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", help="CSV, one row per model with every condition")
    s.add_argument("--append", action="store_true", help="add rows to an existing --out CSV")
    s.add_argument("--names", nargs="+", help="model names for the rows (default: file names)")
    s.add_argument("--task", help="task the models belong to, recorded in each row (speed tables group by it)")
    s.add_argument("--data", help="throughput on this prepared directory's split instead of a synthetic set")
    s.add_argument("--split", default="test")
    s.set_defaults(func=cmd_speed)

    s = sub.add_parser("train", help="train, fine-tune (init_from=CKPT) or resume (same save_dir)")
    s.add_argument("--recipe", help="preset: iwslt_de_en, wmt_en_de_base, finetune, synthetic")
    s.add_argument("--config", help="YAML file of TrainConfig keys (after the recipe)")
    s.add_argument("--nproc-per-node", type=int, default=1, metavar="N",
                   help="data-parallel ranks on this node via torchrun (one per GPU); update_freq is divided by N")
    how = s.add_mutually_exclusive_group()
    how.add_argument("--restart", action="store_true",
                     help="start over: move an existing save_dir aside (never deleted); not for resubmitted jobs")
    how.add_argument("--restart-if-changed", action="store_true",
                     help="resume when config, data and init_from are unchanged, else move the run aside and start "
                          "over (what the workflow uses); without either flag a changed run is an error")
    s.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="last word, e.g. data=DIR save_dir=DIR lr=1e-3")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("average", help="average checkpoints (fairseq average_checkpoints)")
    s.add_argument("checkpoints", nargs="+", help="checkpoint directories or model files")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_average)

    s = sub.add_parser("generate", help="translate a prepared split; hypotheses in order + metrics JSON")
    s.add_argument("checkpoint")
    s.add_argument("--data", required=True)
    s.add_argument("--split", default="test")
    add_decoding_args(s, batch_size=128)
    s.add_argument("--max-tokens", type=int, default=8192)
    s.add_argument("--bleu", "--metric", dest="bleu", choices=["tokenized", "sacrebleu", "compound", "rouge", "none"],
                   default="tokenized", help="BLEU kind, or rouge for summaries (CNN/DailyMail)")
    s.add_argument("--device", default="auto")
    s.add_argument("--out", required=True, help="hypotheses, one per line in split order (+ OUT.json)")
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("translate", help="translate lines (tokenised + BPE as in training) from a file or stdin")
    s.add_argument("checkpoint")
    s.add_argument("--data", required=True, help="prepared directory holding the dictionaries")
    s.add_argument("--input", help="input file (default: stdin)")
    s.add_argument("--truncate", action="store_true", help="cut lines longer than the model's positions (else an error)")
    add_decoding_args(s, batch_size=64)
    s.set_defaults(func=cmd_translate)

    s = sub.add_parser("data", help="datasets")
    dsub = s.add_subparsers(dest="what", required=True)
    d = dsub.add_parser("synthetic", help="write the built-in copy/reverse task as a prepared directory")
    d.add_argument("--task", choices=["copy", "reverse"], default="copy")
    d.add_argument("--train", type=int, default=4000)
    d.add_argument("--valid", type=int, default=200)
    d.add_argument("--test", type=int, default=200)
    d.add_argument("--vocab", type=int, default=24)
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--out", required=True)
    d.set_defaults(func=cmd_data_synthetic)
    for verb, text in (("fetch", "download (or copy from --mirror) and verify the raw files"),
                       ("verify", "re-check fetched files against pinned or recorded checksums"),
                       ("prepare", "tokenise, clean, BPE and binarise as the fairseq recipe"),
                       ("mirror", "copy verified raw files into a mirror directory for offline nodes")):
        d = dsub.add_parser(verb, help=text)
        d.add_argument("dataset", help="iwslt14, wmt14, wmt14_hub, cnndm, glue, bert_base_uncased, ddtp, or text "
                                       "(your own corpus, described by --corpus)")
        d.add_argument("--root", default="data", help="data root: <root>/<dataset>/{raw,prepared}")
        d.add_argument("--corpus", help="text: the corpus spec, a YAML/JSON file or inline JSON "
                                        "(lightformer.data.corpus)")
        if verb in ("fetch", "prepare"):
            d.add_argument("--pair", default="de-en", help="ddtp: source-target languages, one of them en")
        if verb == "fetch":
            d.add_argument("--suite", default="bookworm", help="ddtp: the Debian suite apt fetched")
            d.add_argument("--source", help=f"ddtp: apt's lists directory (default {APT_LISTS}), a mirror directory, or "
                                            "a Debian archive URL (e.g. https://deb.debian.org/debian: the suite's "
                                            "Release file, then the Translation files checked against it)")
            d.add_argument("--mirror", help="local directory or http(s) URL laid out as <dataset>/<file> "
                                            "(default: $LIGHTFORMER_MIRROR, else the original URLs; ddtp: apt's "
                                            f"lists directory {APT_LISTS})")
            d.add_argument("--embedded", action="store_true",
                           help="the mirror holds the embedded fixtures: verify against its SHA256SUMS "
                                "(Hub datasets: its hub.json)")
            d.add_argument("--retrust", action="store_true",
                           help="forget checksums recorded on first use (never pinned ones) and the files they "
                                "vouched for, then fetch, check and record anew")
            d.add_argument("--revision", help="Hub datasets (cnndm, glue): commit sha or branch to fetch "
                                              "(default: the pinned one; a branch is resolved and recorded)")
        if verb == "mirror":
            d.add_argument("--to", required=True, help="mirror directory to fill")
        if verb == "prepare":
            d.add_argument("--bpe-merges", type=int, help="joint BPE merges (IWSLT default 10,000)")
            d.add_argument("--no-expected", action="store_true",
                           help="do not compare split sizes with the published ones (embedded data)")
            d.add_argument("--valid-from", choices=["newstest2013", "train"], default="newstest2013",
                           help="WMT'14 validation set: newstest2013, or fairseq's every 100th train line")
            d.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="tokenizer processes")
            d.add_argument("--src-max-tokens", type=int, default=400,
                           help="CNN/DailyMail: truncate articles to this many tokens (See et al.: 400)")
            d.add_argument("--tgt-max-tokens", type=int, default=100,
                           help="CNN/DailyMail: truncate summaries to this many tokens (See et al.: 100)")
        d.set_defaults(func=cmd_data)
    d = dsub.add_parser("fixtures", help="write the embedded tiny datasets as a mirror directory")
    d.add_argument("--out", required=True)
    d.set_defaults(func=cmd_data_fixtures)

    s = sub.add_parser("report", help="tables and figures from measurements")
    rep = s.add_subparsers(dest="what", required=True)
    r = rep.add_parser("speed", help="concatenate speed CSVs into one table (+ Markdown, + figure)")
    r.add_argument("csvs", nargs="+")
    r.add_argument("--table", required=True, help="output CSV")
    r.add_argument("--markdown", help="output Markdown table")
    r.add_argument("--figure", help="output PNG (a PDF is written beside it)")
    r.set_defaults(func=cmd_report_speed)
    r = rep.add_parser("tables", help="a task table, or (--summary) ablations, paper comparison and figures, "
                                      "from the files named (never a glob of results/)")
    r.add_argument("--tasks", nargs="+", required=True)
    r.add_argument("--evals", nargs="*", default=[], help="task table: <model>/seed<n>/hyps.txt.json files")
    r.add_argument("--params", nargs="*", default=[], help="task table: <model>.json parameter counts")
    r.add_argument("--reports", nargs="*", default=[], help="task table: <model>/seed<n>/report.json (compress)")
    r.add_argument("--speed", nargs="*", default=[], help="task table: speed CSVs of the task")
    r.add_argument("--tables", nargs="*", default=[], help="--summary: the task tables, one per task")
    r.add_argument("--curves", nargs="*", default=[], help="--summary: fine-tuning curve.csv files")
    r.add_argument("--paper-size-speed", nargs="*", default=[],
                   help="--summary: speed CSVs of `lightformer speed --paper-size TASK` (a speed row per task)")
    r.add_argument("--config-sha256", help="hash of the resolved workflow config, recorded in each row")
    r.add_argument("--manifest", help="the task's raw-data manifest.json; its sha256 is recorded in each row")
    r.add_argument("--prepared-meta", help="the task's prepared meta.json: split sizes and drift in each row")
    r.add_argument("--out", default="results/tables")
    r.add_argument("--figures", default="results/figures")
    r.add_argument("--summary", action="store_true",
                   help="instead of the task tables: ablations, paper comparison and figures")
    r.set_defaults(func=cmd_report_tables)
    r = rep.add_parser("ablation-transfer", help="initialisers x rank allocation: quality after transfer and after "
                                                 "fine-tuning, held-out output error, gaps to the baseline")
    r.add_argument("--transfer", nargs="+", required=True, help="generate JSONs of compressed, not fine-tuned models")
    r.add_argument("--finetuned", nargs="+", required=True, help="generate JSONs of the fine-tuned models")
    r.add_argument("--reports", nargs="+", required=True, help="compress report.json files")
    r.add_argument("--baselines", nargs="*", default=[], help="generate JSONs of the baselines")
    r.add_argument("--table", required=True)
    r.add_argument("--markdown")
    r.add_argument("--figure", help="PNG (a PDF is written beside it)")
    r.add_argument("--config-sha256", help="hash of the resolved workflow config, recorded in each row")
    r.set_defaults(func=cmd_report_ablation_transfer)
    r = rep.add_parser("glue", help="the GLUE table from <task>/<model>/seed<n>/metrics.json files")
    r.add_argument("--metrics", nargs="+", required=True)
    r.add_argument("--speed", nargs="*", default=[], help="encoder speed CSVs (glue speed)")
    r.add_argument("--table", required=True, help="output CSV")
    r.add_argument("--markdown", required=True, help="output Markdown")
    r.add_argument("--config-sha256", help="hash of the resolved workflow config, recorded in each row")
    r.set_defaults(func=cmd_report_glue)
    return p


def cmd_bench_train(args) -> None:
    """Training throughput and MFU, ours and Hugging Face's on the same batches (lightformer.train.bench)."""
    import lightformer as lf
    from lightformer.gpu import pick_device
    from lightformer.train.bench import TrainBenchConfig, bench_train

    if bool(args.checkpoints) == bool(args.paper_size):
        raise LightformerError("give checkpoints to time, or --paper-size TASK (not both)")
    cfg = TrainBenchConfig(device=args.device, dtype=args.dtype, max_tokens=args.max_tokens, steps=args.steps,
                           warmup=args.warmup, lengths=args.lengths or args.paper_size or "iwslt14", seed=args.seed,
                           compile=args.compile, peak_tflops=args.peak_tflops, hf=not args.no_hf,
                           loss=args.loss)
    if args.paper_size:
        from lightformer.speed.bench import paper_size_models

        models = paper_size_models(args.paper_size)
    else:
        models = {Path(p).name.split(".")[0]: lf.load_checkpoint(p) for p in args.checkpoints}
    rows = bench_train(models, cfg, pick_device(args.device))
    for row in rows:
        row["command"] = command_line()
    if args.out:
        write_rows(args.out, rows, append=args.append)
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
    import csv

    import yaml

    from lightformer.train.cost import plan_cost

    for path in (args.configfile, args.bench):
        if not Path(path).is_file():
            raise LightformerError(f"{path}: no such file")
    rows = plan_cost(yaml.safe_load(Path(args.configfile).read_text()) or {},
                     list(csv.DictReader(open(args.bench, newline=""))))
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


def uses_gpu(args) -> bool:
    """Verbs that may run on a GPU and so take a per-device lock on a local multi-GPU node."""
    return args.verb in ("train", "generate", "translate", "speed") or (
        args.verb, getattr(args, "what", None)) in (("glue", "train"), ("glue", "speed"), ("bench", "train"))


def main(argv: list[str] | None = None) -> int:
    from lightformer import io

    io.INVOKED[:] = ["lightformer", *(sys.argv[1:] if argv is None else argv)]
    args = build_parser().parse_args(argv)
    try:
        check_options(args)
        if uses_gpu(args):
            from lightformer.gpu import claim_gpu

            claim_gpu()  # before anything initialises CUDA
        return args.func(args) or 0
    except LightformerError as e:
        print(f"lightformer {args.verb}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
