"""Decoding: translate a prepared split (with metrics) or lines from a file."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from lightformer.cli.common import RECORD_HELP, record_object
from lightformer.errors import LightformerError
from lightformer.io import command_line, write_text_atomic
from lightformer.provenance import provenance
from lightformer.validate import arg, distinct_outputs


def add_decoding_args(s: argparse.ArgumentParser, batch_size: int) -> None:
    """Beam-search options (SearchConfig's fields, fairseq's names) and post-processing, shared by
    generate and translate."""
    from lightformer.decode.beam import SearchConfig
    from lightformer.options import add_options

    add_options(s, SearchConfig)
    s.add_argument("--batch-size", type=arg("at_least_1", int), default=batch_size, help="sentences per batch")
    s.add_argument("--remove-bpe", nargs="?", const="@@ ", default=None, help="BPE continuation marker")
    s.add_argument("--detok", metavar="LANG", help="Moses-detokenize the output (and references)")


def search_config(args):
    from lightformer.decode.beam import SearchConfig
    from lightformer.options import from_args

    return from_args(SearchConfig, args)


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


def cmd_generate(args) -> None:
    from lightformer.checkpoint import load_checkpoint
    from lightformer.data.indexed import ParallelData
    from lightformer.decode.generate import generate
    from lightformer.gpu import pick_device
    from lightformer.io import file_sha256

    distinct_outputs([args.checkpoint, args.data], [args.out, f"{args.out}.json"])
    device = pick_device(args.device)
    search = search_config(args)
    model = load_checkpoint(args.checkpoint)
    res = generate(model, ParallelData(args.data), args.split, search, device, max_tokens=args.max_tokens,
                   batch_size=args.batch_size, remove_bpe=args.remove_bpe, detok_lang=args.detok,
                   bleu=None if args.bleu == "none" else args.bleu)
    write_text_atomic(args.out, "".join(h + "\n" for h in res["hypotheses"]))
    summary = {k: v for k, v in res.items() if k not in ("hypotheses", "references")} | {
        "checkpoint": str(args.checkpoint), "checkpoint_sha256": file_sha256(args.checkpoint),
        "data": str(args.data), "split": args.split, "search": dataclasses.asdict(search), "device": str(device),
        "remove_bpe": args.remove_bpe, "detok": args.detok, "command": command_line(), "provenance": provenance()} | (
        {"record": args.record} if args.record else {})
    write_text_atomic(f"{args.out}.json", json.dumps(summary, indent=2) + "\n")
    line = f"{res['sentences']} sentences, {res['sentences_per_s']:.1f} sent/s, {res['tokens_per_s']:.0f} tok/s"
    if "bleu" in res:
        line += f"; {res['bleu']['label']}: {res['bleu']['score']:.2f} ({res['bleu']['signature']})"
    if "rouge" in res:
        line += "; " + ", ".join(f"{k} {v:.2f}" for k, v in res["rouge"]["scores"].items()) + f" ({res['rouge']['label']})"
    print(line)


def cmd_translate(args) -> None:
    """Lines in (tokenised, BPE applied as in training), hypotheses out, in input order."""
    from lightformer.checkpoint import load_checkpoint
    from lightformer.data.indexed import ParallelData
    from lightformer.decode.generate import decode_sources, detokenizer, encode_lines
    from lightformer.gpu import pick_device

    data, model, lines = ParallelData(args.data), load_checkpoint(args.checkpoint), read_lines(args.input)
    sources = encode_lines(lines, model, data, args.truncate, args.input or "stdin")
    max_tokens = max(len(s) for s in sources) * args.batch_size  # --batch-size sentences per batch
    hyps, _, seconds = decode_sources(sources, model, data, search_config(args), pick_device(args.device), max_tokens,
                                      args.batch_size, args.remove_bpe, detokenizer(args.detok))
    sys.stdout.write("".join(h + "\n" for h in hyps))
    print(f"{len(lines)} sentences in {seconds:.2f} s ({len(lines) / seconds:.1f} sent/s)", file=sys.stderr)


def register(sub) -> None:
    s = sub.add_parser("generate", help="translate a prepared split; hypotheses in order + metrics JSON")
    s.add_argument("checkpoint")
    s.add_argument("--data", required=True)
    s.add_argument("--split", default="test")
    add_decoding_args(s, batch_size=128)
    s.add_argument("--max-tokens", type=arg("at_least_1", int), default=8192)
    s.add_argument("--bleu", "--metric", dest="bleu", choices=["tokenized", "sacrebleu", "compound", "rouge", "none"],
                   default="tokenized", help="BLEU kind, or rouge for summaries (CNN/DailyMail)")
    s.add_argument("--device", default="auto")
    s.add_argument("--out", required=True, help="hypotheses, one per line in split order (+ OUT.json)")
    s.add_argument("--record", type=record_object, help=RECORD_HELP)
    s.set_defaults(func=cmd_generate, gpu=True)

    s = sub.add_parser("translate", help="translate lines (tokenised + BPE as in training) from a file or stdin")
    s.add_argument("checkpoint")
    s.add_argument("--data", required=True, help="prepared directory holding the dictionaries")
    s.add_argument("--input", help="input file (default: stdin)")
    s.add_argument("--truncate", action="store_true", help="cut lines longer than the model's positions (else an error)")
    add_decoding_args(s, batch_size=64)
    s.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda or cuda:N")
    s.set_defaults(func=cmd_translate, gpu=True)
