"""Datasets: fetch, verify, mirror and prepare; the embedded fixtures and the synthetic task."""
from __future__ import annotations

from lightformer.validate import arg


def cmd_data(args) -> None:
    """fetch / verify / mirror / prepare DATASET (lightformer.datasets.pipeline)."""
    from lightformer.datasets import pipeline
    from lightformer.options import from_args

    opts = from_args(pipeline.DataOptions, args)
    lines = pipeline.mirror(args.dataset, opts, args.to) if args.what == "mirror" else \
        getattr(pipeline, args.what)(args.dataset, opts)
    print("\n".join(lines))


def cmd_data_fixtures(args) -> None:
    from lightformer.datasets.fixtures import write_mirror

    for name, path in write_mirror(args.out).items():
        print(f"{path}: embedded {name}")


def cmd_data_synthetic(args) -> None:
    from lightformer.data.synthetic import write_synthetic

    root = write_synthetic(args.out, args.task, train=args.train, valid=args.valid, test=args.test,
                           vocab=args.vocab, min_len=args.min_len, max_len=args.max_len, seed=args.seed)
    print(f"{root}: synthetic {args.task} task")


def register(sub) -> None:
    from lightformer.datasets.pipeline import KINDS, DataOptions
    from lightformer.options import add_options

    s = sub.add_parser("data", help="datasets")
    dsub = s.add_subparsers(dest="what", required=True)
    d = dsub.add_parser("synthetic", help="write the built-in copy/reverse task as a prepared directory")
    d.add_argument("--task", choices=["copy", "reverse"], default="copy")
    d.add_argument("--train", type=arg("at_least_1", int), default=4000)
    d.add_argument("--valid", type=arg("at_least_1", int), default=200)
    d.add_argument("--test", type=arg("at_least_1", int), default=200)
    d.add_argument("--vocab", type=arg("at_least_1", int), default=24)
    d.add_argument("--min-len", type=arg("at_least_1", int), default=3, help="shortest sentence, tokens")
    d.add_argument("--max-len", type=arg("at_least_1", int), default=12, help="longest sentence, tokens")
    d.add_argument("--seed", type=arg("nonnegative", int), default=1)
    d.add_argument("--out", required=True)
    d.set_defaults(func=cmd_data_synthetic)
    for verb, text in (("fetch", "download (or copy from --mirror) and verify the raw files"),
                       ("verify", "re-check fetched files against pinned or recorded checksums"),
                       ("prepare", "tokenise, clean, BPE and binarise as the fairseq recipe"),
                       ("mirror", "copy verified raw files into a mirror directory for offline nodes")):
        d = dsub.add_parser(verb, help=text)
        d.add_argument("dataset", help=f"{', '.join(KINDS)} (text: your own corpus, described by --corpus)")
        add_options(d, DataOptions, only=DataOptions.VERBS[verb])
        if verb == "mirror":
            d.add_argument("--to", required=True, help="mirror directory to fill")
        d.set_defaults(func=cmd_data)
    d = dsub.add_parser("fixtures", help="write the embedded tiny datasets as a mirror directory")
    d.add_argument("--out", required=True)
    d.set_defaults(func=cmd_data_fixtures)
