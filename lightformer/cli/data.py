"""Datasets: fetch, verify, mirror and prepare; the embedded fixtures and the synthetic task."""
from __future__ import annotations

import dataclasses
import os


def cmd_data(args) -> None:
    """fetch / verify / mirror / prepare DATASET (lightformer.data.pipeline)."""
    from lightformer.data import pipeline

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(pipeline.DataOptions) if hasattr(args, f.name)}
    opts = pipeline.DataOptions(**given, expected=not getattr(args, "no_expected", False))
    lines = pipeline.mirror(args.dataset, opts, args.to) if args.what == "mirror" else \
        getattr(pipeline, args.what)(args.dataset, opts)
    print("\n".join(lines))


def cmd_data_fixtures(args) -> None:
    from lightformer.data.fixtures import write_mirror

    for name, path in write_mirror(args.out).items():
        print(f"{path}: embedded {name}")


def cmd_data_synthetic(args) -> None:
    from lightformer.data.synthetic import write_synthetic

    root = write_synthetic(args.out, args.task, train=args.train, valid=args.valid, test=args.test,
                           vocab=args.vocab, min_len=args.min_len, max_len=args.max_len, seed=args.seed)
    print(f"{root}: synthetic {args.task} task")


def register(sub) -> None:
    from lightformer.data.pipeline import APT_LISTS

    s = sub.add_parser("data", help="datasets")
    dsub = s.add_subparsers(dest="what", required=True)
    d = dsub.add_parser("synthetic", help="write the built-in copy/reverse task as a prepared directory")
    d.add_argument("--task", choices=["copy", "reverse"], default="copy")
    d.add_argument("--train", type=int, default=4000)
    d.add_argument("--valid", type=int, default=200)
    d.add_argument("--test", type=int, default=200)
    d.add_argument("--vocab", type=int, default=24)
    d.add_argument("--min-len", type=int, default=3, help="shortest sentence, tokens")
    d.add_argument("--max-len", type=int, default=12, help="longest sentence, tokens")
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
