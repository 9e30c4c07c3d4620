"""Datasets: fetch, verify, mirror and prepare; the embedded fixtures and the synthetic task."""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from lightformer.errors import LightformerError

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


def register(sub) -> None:
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
