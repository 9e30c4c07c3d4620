"""Model files: initialise, count parameters, compress (SVD weight transfer), export."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from lightformer.cli.common import RECORD_HELP, json_object, parse_overrides, record_object
from lightformer.errors import LightformerError
from lightformer.io import command_line, write_text_atomic
from lightformer.validate import arg, distinct_outputs


def format_counts(counts: dict, baseline: dict | None = None) -> str:
    rows = []
    for key, n in counts.items():
        line = f"  {key:<18}{n:>14,}"
        if baseline and baseline.get(key):
            line += f"   ({baseline[key] / n:.2f}x fewer)" if n else ""
        rows.append(line)
    return "\n".join(rows)


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


def cmd_init(args) -> None:
    from lightformer.checkpoint import save_checkpoint
    from lightformer.compress.count import count_parameters
    from lightformer.models.build import build_model

    distinct_outputs([], [args.out])
    overrides = parse_overrides(args.set)
    if args.share_decoder_input_output_embed:
        overrides["share_decoder_input_output_embed"] = True
    if args.share_all_embeddings:
        overrides["share_all_embeddings"] = True
    model = build_model(args.arch, args.src_vocab, args.tgt_vocab, seed=args.seed, **overrides)
    save_checkpoint(model, args.out, provenance={"arch": args.arch, "seed": args.seed, "init": "random"})
    print(f"{args.out}: {args.arch}, {count_parameters(model)['total']:,} parameters", file=sys.stderr)


def cmd_control_init(args) -> None:
    """A light-weight control's fresh model (lightformer.controls): the baseline's architecture from its
    training recipe and data, narrowed (dense_small) or shared (share_*), randomly initialised."""
    import torch

    from lightformer.checkpoint import save_checkpoint
    from lightformer.config import model_config
    from lightformer.controls import control_config, control_record
    from lightformer.data.indexed import ParallelData
    from lightformer.models.transformer import Transformer
    from lightformer.train.recipes import load_train_config

    distinct_outputs([args.data], [args.out, args.record])
    run = load_train_config(args.recipe, None, args.overrides)
    data = ParallelData(args.data)
    base = model_config(run.arch, len(data.src_dict), len(data.tgt_dict), **run.model)
    cfg = control_config(base, args.control, args.ratio)
    # the identity (task, seed, sweep point) first: what was measured here (sizes, counts, ratio) wins
    record = (args.identity or {}) | control_record(args.control, base, cfg, args.ratio) | {"init_label": "scratch"}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        model = Transformer(cfg)
    save_checkpoint(model, args.out, provenance={"init": "random", "control": record, "seed": args.seed})
    if args.record:
        write_text_atomic(args.record, json.dumps(record, indent=2) + "\n")
    print(f"{args.out}: {args.control}, {record['params']:,} parameters ({record['ratio']:.2f}x fewer than the "
          f"baseline; {record['params_without_embeddings']:,} without embeddings), width {cfg.embed_dim}")


def cmd_params(args) -> None:
    from lightformer.checkpoint import load_checkpoint
    from lightformer.compress.count import count_parameters

    if args.record and (len(args.checkpoints) > 1 or not args.json):  # refused before any file is read
        raise LightformerError("--record names one checkpoint's counts: give one checkpoint and --json")
    counts = [count_parameters(load_checkpoint(path, verify=args.verify)) for path in args.checkpoints]
    if args.verify:
        print("\n".join(f"{p}: content digest OK" for p in args.checkpoints), file=sys.stderr)
    if args.json:
        rows = [{"checkpoint": p} | c for p, c in zip(args.checkpoints, counts)]
        print(json.dumps(counts[0] | ({"record": args.record} if args.record else {}) if len(counts) == 1 else rows,
                         indent=2))
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
    """SVD weight transfer (or random init) of a checkpoint or GLUE classifier (lightformer.compress)."""
    from lightformer.checkpoint import load_checkpoint, save_checkpoint
    from lightformer.compress.spec import CompressionSpec, load_spec
    from lightformer.compress.transfer import compress, transfer_report
    from lightformer.options import given
    from lightformer.io import file_sha256

    classifier = (Path(args.checkpoint) / "lightformer.json").is_file()  # a GLUE classifier (BERT) directory
    distinct_outputs([args.checkpoint, args.spec, args.calib_data],
                     [args.report] if classifier else [args.out, args.report])
    rank = {"rank": parse_rank(args.rank)} if args.rank is not None else {}
    spec = load_spec(args.spec, given(CompressionSpec, args) | rank)  # flags over the spec file
    if classifier:
        return _compress_classifier(args, spec)
    dense = load_checkpoint(args.checkpoint)
    model = compress(dense, spec, calib=args.calib_data)  # all checks happen here, before anything is written
    report = transfer_report(dense, model, {"path": str(args.checkpoint), "sha256": file_sha256(args.checkpoint)},
                             args.calib_data) | ({"record": args.record} if args.record else {})
    save_checkpoint(model, args.out, provenance={"parent": report["source"]})
    if args.report:
        write_text_atomic(args.report, json.dumps(report, indent=2) + "\n")
    before, after = report["params"]["dense"], report["params"]["compressed"]
    print(f"{args.out}: {before['total']:,} -> {after['total']:,} parameters "
          f"({report['params']['ratio']:.2f}x fewer)\n{format_counts(after, before)}")


def _compress_classifier(args, spec: dict) -> None:
    from lightformer.compress.bert import compress_bert, dense_params
    from lightformer.glue.model import KIND, load_classifier, save_classifier
    from lightformer.io import check_output_dir

    check_output_dir(args.out, KIND, inputs=(args.checkpoint, args.calib_data, args.report), force=args.force)
    dense, meta = load_classifier(args.checkpoint)
    spec.setdefault("roles", ["body"])  # BERT: attention and FFN; add src_embed for the embeddings
    model = compress_bert(dense, spec)
    before, after = dense_params(dense), dense_params(model)
    save_classifier(model, args.out, Path(args.checkpoint),
                    {"task": meta.get("task"), "provenance": {"parent": str(args.checkpoint)}}, force=args.force)
    report = {"source": {"path": str(args.checkpoint)}, "spec": model.compression["spec"],
              "params": {"dense": {"total": before}, "compressed": {"total": after}, "ratio": before / after},
              "groups": model.compression["groups"], "matrices": model.compression["report"]}
    if args.report:
        write_text_atomic(args.report, json.dumps(report, indent=2) + "\n")
    print(f"{args.out}: {before:,} -> {after:,} parameters ({before / after:.2f}x fewer)")


def cmd_export_ct2(args) -> None:
    from lightformer.checkpoint import load_checkpoint
    from lightformer.export.ct2 import KIND, export_ct2, read_symbols
    from lightformer.io import check_output_dir, file_sha256

    check_output_dir(args.out, KIND, inputs=(args.checkpoint, args.data), force=args.force)
    model = load_checkpoint(args.checkpoint)
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


def cmd_export_onnx(args) -> None:
    import torch

    from lightformer.checkpoint import load_checkpoint
    from lightformer.export.onnx import KIND, export_onnx_dir
    from lightformer.io import check_output_dir, file_sha256
    from lightformer.speed.fast import prepare_for_inference
    from lightformer.speed.runtime import check_runtime

    check_runtime("onnxruntime", torch.device("cpu"))  # the exporter (onnxscript) and the quantiser
    check_output_dir(args.out, KIND, inputs=(args.checkpoint,), force=args.force)
    model = prepare_for_inference(load_checkpoint(args.checkpoint).float().eval())
    report = export_onnx_dir(model, args.out, int8=args.int8, force=args.force,
                             source={"checkpoint": str(args.checkpoint), "checkpoint_sha256": file_sha256(args.checkpoint),
                                     "command": command_line()})
    print(f"{args.out}: encoder.onnx and step.onnx (opset {report['opset']['step']}{', int8' if args.int8 else ''}; "
          f"the step's inputs and cache layout in lightformer_export.json)")


def register(sub) -> None:
    from lightformer.compress.spec import CompressionSpec
    from lightformer.config import PRESETS
    from lightformer.options import add_options

    s = sub.add_parser("init", help="write a freshly initialised dense Transformer")
    s.add_argument("--arch", required=True, choices=list(PRESETS))
    s.add_argument("--src-vocab", type=arg("at_least_1", int), required=True)
    s.add_argument("--tgt-vocab", type=arg("at_least_1", int), required=True)
    s.add_argument("--share-decoder-input-output-embed", action="store_true")
    s.add_argument("--share-all-embeddings", action="store_true", help="needs src-vocab == tgt-vocab")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a ModelConfig field, e.g. --set dropout=0.3")
    s.add_argument("--seed", type=arg("nonnegative", int), default=1)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_init)

    _register_control(sub)

    s = sub.add_parser("params", help="count parameters by role (shared tensors once); several files: "
                                      "a table with compression relative to the first")
    s.add_argument("checkpoints", nargs="+")
    s.add_argument("--json", action="store_true")
    s.add_argument("--verify", action="store_true", help="recompute each file's content digest (a flipped byte fails)")
    s.add_argument("--record", type=record_object, help=RECORD_HELP)
    s.set_defaults(func=cmd_params)

    s = sub.add_parser("compress", help="SVD weight transfer (or random init) to a LightFormer")
    s.add_argument("checkpoint")
    s.add_argument("--spec", help="YAML/JSON file of compression options; flags override it")
    s.add_argument("--rank", help="an integer, or role=int pairs: all=64,embeddings=128")
    add_options(s, CompressionSpec)
    s.add_argument("--calib-data", help="prepared directory: train split calibrates, valid split gives the report's "
                                        "held-out output error")
    s.add_argument("--out", required=True)
    s.add_argument("--report", help="JSON report: per-matrix rank, error and energy kept")
    s.add_argument("--force", action="store_true", help="a GLUE classifier --out directory: replace an existing one "
                                                       "(only one this project wrote)")
    s.add_argument("--record", type=record_object, help="a JSON object stored as the report's 'record': the run's "
                                                      "identity (task, variant, seed, budget) that reports group by")
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
    e.add_argument("--force", action="store_true", help="replace an existing --out directory (only one an earlier export wrote)")
    e.set_defaults(func=cmd_export_ct2)
    e = esub.add_parser("onnx", help="two ONNX graphs, the encoder and one decoder step over a static cache, as "
                                     "lightformer speed --engine onnxruntime|openvino runs them (speed/runtime.py)")
    e.add_argument("checkpoint")
    e.add_argument("--out", required=True, help="directory to write")
    e.add_argument("--int8", action="store_true", help="ONNX Runtime's dynamic int8 quantisation of every product")
    e.add_argument("--force", action="store_true", help="replace an existing --out directory (only one an earlier export wrote)")
    e.set_defaults(func=cmd_export_onnx)


def _register_control(sub) -> None:
    from lightformer.controls import CONTROLS

    s = sub.add_parser("control", help="light-weight controls trained from scratch like the baseline")
    csub = s.add_subparsers(dest="what", required=True)
    c = csub.add_parser("init", help="a control's fresh model: dense_small (the baseline narrowed to --ratio) or "
                                     "share_all / share_sandwich / share_cycle_rev (cross-layer sharing alone)")
    c.add_argument("--control", required=True, choices=CONTROLS)
    c.add_argument("--recipe", required=True, help="the baseline's training recipe (its arch and model options)")
    c.add_argument("--data", required=True, help="prepared directory (its dictionaries size the embeddings)")
    c.add_argument("--ratio", type=arg("positive"), help="dense_small: the parameter ratio to match")
    c.add_argument("--seed", type=arg("nonnegative", int), default=1)
    c.add_argument("--out", required=True)
    c.add_argument("--record", help="JSON: what the control is (sizes, counts with and without embeddings)")
    c.add_argument("--identity", type=json_object, help="JSON object merged into the record (task, seed)")
    c.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="the baseline's TrainConfig overrides")
    c.set_defaults(func=cmd_control_init)
