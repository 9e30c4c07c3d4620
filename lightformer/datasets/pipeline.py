"""Fetch, verify, mirror and prepare any dataset by name: the published ones
(:mod:`lightformer.datasets.sources`), Debian's description translations (``ddtp``) and your own
corpus (``text``). One typed entry point per step; each returns the lines to show."""
from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lightformer.data import prepared_dir, raw_dir
from lightformer.errors import LightformerError
from lightformer.io import atomic_dir, one_writer
from lightformer.options import check_fields, option

APT_LISTS = "/var/lib/apt/lists"


@dataclass
class DataOptions:
    """What fetch, verify, mirror and prepare take; each field is also the option of ``lightformer data``."""
    root: str = option("data", help="data root: <root>/<dataset>/{raw,prepared}")
    corpus: str | None = option(None, help="text: the corpus spec, a YAML/JSON file or inline JSON "
                                          "(lightformer.datasets.corpus)")
    mirror: str | None = option(None, help="local directory or http(s) URL laid out as <dataset>/<file> (default: "
                                          f"$LIGHTFORMER_MIRROR, else the original URLs; ddtp: apt's lists "
                                          f"directory {APT_LISTS})")
    embedded: bool = option(False, help="the mirror holds the embedded fixtures: verify against its SHA256SUMS "
                                        "(Hub datasets: its hub.json)")
    retrust: bool = option(False, help="forget checksums recorded on first use (never pinned ones) and the files "
                                       "they vouched for, then fetch, check and record anew")
    revision: str | None = option(None, help="Hub datasets (cnndm, glue): commit sha or branch to fetch (default: "
                                            "the pinned one; a branch is resolved and recorded)")
    pair: str = option("de-en", help="ddtp: source-target languages, one of them en")
    suite: str = option("bookworm", help="ddtp: the Debian suite apt fetched")
    source: str | None = option(None, help=f"ddtp: apt's lists directory (default {APT_LISTS}), a mirror directory, "
                                          "or a Debian archive URL (e.g. https://deb.debian.org/debian: the suite's "
                                          "Release file, then the Translation files checked against it)")
    bpe_merges: int | None = option(None, check="at_least_1", help="joint BPE merges (default: the dataset recipe's "
                                                                   "own: IWSLT 10,000, WMT 40,000, CNN/DM 20,000)")
    expected: bool = option(True, flag="--no-expected", help="do not compare split sizes with the published ones "
                                                             "(embedded data)")
    valid_from: str = option("newstest2013", choices=("newstest2013", "train"),
                             help="WMT'14 validation set: newstest2013, or fairseq's every 100th train line")
    workers: int = option(default_factory=lambda: os.cpu_count() or 1, check="at_least_1", help="tokenizer processes")
    src_max_tokens: int = option(400, check="at_least_1", help="CNN/DailyMail: truncate articles (See et al.: 400)")
    tgt_max_tokens: int = option(100, check="at_least_1", help="CNN/DailyMail: truncate summaries (See et al.: 100)")

    # which verb reads which option (the CLI offers each verb only its own)
    VERBS: ClassVar[dict[str, tuple[str, ...]]] = {
        "fetch": ("root", "corpus", "pair", "suite", "source", "mirror", "embedded", "retrust", "revision"),
        "verify": ("root", "corpus"), "mirror": ("root", "corpus"),
        "prepare": ("root", "corpus", "pair", "bpe_merges", "expected", "valid_from", "workers",
                    "src_max_tokens", "tgt_max_tokens")}

    def __post_init__(self):
        check_fields(self)

    def merges(self) -> dict:
        """``bpe_merges=`` for a prepare function when given; else nothing, so its default applies."""
        return {"bpe_merges": self.bpe_merges} if self.bpe_merges else {}


def _ddtp_pair(o: DataOptions) -> tuple[str, str]:
    pair = tuple(o.pair.split("-"))
    if len(pair) != 2 or not all(pair) or "en" not in pair or pair[0] == pair[1]:
        raise LightformerError(f"--pair {o.pair!r}: expected LANG-en or en-LANG, e.g. de-en")
    return pair


def _corpus(o: DataOptions):
    from lightformer.datasets import corpus

    if not o.corpus:
        raise LightformerError("dataset 'text' needs --corpus SPEC (a YAML/JSON corpus spec; see docs/workflow.md, 'Your own "
                               "corpus')")
    return corpus.load(o.corpus)


def _published(name: str, o: DataOptions):
    from lightformer.datasets.sources import get_dataset

    if o.corpus:
        raise LightformerError(f"--corpus applies to dataset 'text' (your own corpus), not {name!r}")
    return get_dataset(name)


def _counts(out: Path, counts: dict) -> list[str]:
    lines = [f"{out}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items() if k != "drift")]
    if counts.get("drift") and any(counts["drift"].values()):
        lines.append(f"drift from the published split sizes: {counts['drift']} (recorded in meta.json)")
    return lines


# --- Debian's description translations ----------------------------------------------------------

def _fetch_ddtp(name: str, o: DataOptions) -> list[str]:
    from lightformer.datasets import ddtp

    raw, pair = raw_dir(Path(o.root), "ddtp"), _ddtp_pair(o)
    source = o.source or (f"{o.mirror.rstrip('/')}/ddtp" if o.mirror else APT_LISTS)
    if source.startswith(("http://", "https://")):  # a Debian archive root, e.g. https://deb.debian.org/debian
        manifest = ddtp.fetch_ddtp_http(source, raw, pair, o.suite, retrust=o.retrust)
    else:
        manifest = ddtp.fetch_ddtp(Path(source), raw, pair, o.suite, retrust=o.retrust)
    return [f"{raw / n}: verified (suite {manifest['suite']}, Release {manifest.get('release_date') or '?'})"
            for n in manifest["files"]]


def _verify_ddtp(name: str, o: DataOptions) -> list[str]:
    from lightformer.datasets import ddtp

    raw = raw_dir(Path(o.root), "ddtp")
    return [f"{raw / n}: verified" for n in ddtp.verify_ddtp(raw)["files"]]


def _mirror_ddtp(name: str, o: DataOptions, to: Path) -> list[str]:
    from lightformer.datasets import ddtp
    from lightformer.datasets.download import contained

    target, raw = to / "ddtp", raw_dir(Path(o.root), "ddtp")
    target.mkdir(parents=True, exist_ok=True)
    names = ddtp.verify_ddtp(raw)["files"]
    for n in names:
        shutil.copyfile(contained(raw, n, f"{raw}/manifest.json"), contained(target, n, f"{raw}/manifest.json"))
    return [f"{target / n}: copied" for n in names]


def _prepare_ddtp(name: str, o: DataOptions, out: Path) -> dict:
    from lightformer.datasets import ddtp

    return ddtp.prepare_ddtp(raw_dir(Path(o.root), "ddtp"), out, _ddtp_pair(o), **o.merges())


# --- your own corpus ----------------------------------------------------------------------------

def _fetch_corpus(name: str, o: DataOptions) -> list[str]:
    from lightformer.datasets import corpus

    spec, root = _corpus(o), Path(o.root)
    return ([f"{p}: verified" for p in corpus.fetch_corpus(spec, root, o.mirror, retrust=o.retrust)] +
            [f"{root / spec.name}: {spec.kind} corpus read and checked (every file, every line)"])


def _verify_corpus(name: str, o: DataOptions) -> list[str]:
    from lightformer.datasets import corpus

    return corpus.verify_corpus(_corpus(o), Path(o.root))


def _mirror_corpus(name: str, o: DataOptions, to: Path) -> list[str]:
    from lightformer.datasets import corpus

    return [f"{p}: copied" for p in corpus.mirror_corpus(_corpus(o), Path(o.root), to)]


def _prepare_corpus(name: str, o: DataOptions, out: Path) -> dict:
    from lightformer.datasets import corpus

    return corpus.prepare_corpus(_corpus(o), Path(o.root), **o.merges(), workers=o.workers, out=out)


# --- the published datasets (lightformer.datasets.sources) --------------------------------------

def _fetch_published(name: str, o: DataOptions) -> list[str]:
    from lightformer.datasets import download

    ds, root = _published(name, o), Path(o.root)
    if o.revision:
        if ds.hub is None:
            raise LightformerError(f"--revision applies to Hub datasets; {ds.name} is not one")
        ds = dataclasses.replace(ds, hub=dataclasses.replace(ds.hub, revision=o.revision))
    if o.embedded:
        mirror = o.mirror or os.environ.get(download.MIRROR_ENV)
        if not mirror:
            raise LightformerError("--embedded needs --mirror (the directory `lightformer data fixtures` wrote)")
        if ds.hub is None:  # Hub fixtures carry their pins in the mirror's hub.json
            ds = download.embedded_pins(ds, mirror)
    lines = [f"{p}: verified" for p in download.fetch(ds, root, o.mirror, embedded=o.embedded, retrust=o.retrust)]
    if o.embedded:  # later verifies use the recorded (fixture) checksums, not the published ones
        raw = raw_dir(root, ds.name)
        download.write_manifest(raw, download.read_manifest(raw) | {"embedded": True})
    return lines


def _verify_published(name: str, o: DataOptions) -> list[str]:
    from lightformer.datasets import download

    return download.verify(_published(name, o), Path(o.root))


def _mirror_published(name: str, o: DataOptions, to: Path) -> list[str]:
    from lightformer.datasets import download

    return [f"{p}: copied" for p in download.mirror_to(_published(name, o), Path(o.root), to)]


def _raw_checked(name: str, o: DataOptions):
    """(the dataset, its verified raw directory, the published split sizes to compare with or None)."""
    from lightformer.datasets import download

    ds, root = _published(name, o), Path(o.root)
    raw = raw_dir(root, ds.name)
    download.verify(ds, root)
    expected = ds.expected if o.expected and not download.read_manifest(raw).get("embedded") else None
    return ds, raw, expected


def _prepare_iwslt14(name: str, o: DataOptions, out: Path) -> dict:
    from lightformer.datasets.iwslt14 import prepare_iwslt14

    ds, raw, expected = _raw_checked(name, o)
    return prepare_iwslt14(raw / ds.files[0].name, out, **o.merges(), expected=expected)


def _prepare_wmt14(name: str, o: DataOptions, out: Path) -> dict:
    from lightformer.datasets.wmt14 import prepare_wmt14

    _, raw, expected = _raw_checked(name, o)
    return prepare_wmt14(raw, out, **o.merges(), valid_from=o.valid_from, workers=o.workers, expected=expected,
                         source="hub" if name == "wmt14_hub" else "statmt")


def _prepare_cnndm(name: str, o: DataOptions, out: Path) -> dict:
    from lightformer.datasets.cnndm import prepare_cnndm

    _, raw, expected = _raw_checked(name, o)
    return prepare_cnndm(raw, out, **o.merges(), src_max_tokens=o.src_max_tokens, tgt_max_tokens=o.tgt_max_tokens,
                         workers=o.workers, expected=expected)


def _prepare_glue(name: str, o: DataOptions, out: Path) -> dict:
    from lightformer.datasets.glue import prepare_glue

    _, raw, expected = _raw_checked(name, o)
    return prepare_glue(raw, out, expected=expected)


# --- one table: each kind of dataset and how it goes through the four steps ---------------------

@dataclass(frozen=True)
class Kind:
    """A kind of dataset: its directory under the data root and its four steps. ``prepare`` builds
    into a fresh directory (None: nothing to prepare, e.g. a pretrained model); ``recipe`` names
    the prepare function whose keyword defaults are the dataset's recipe (BPE merges, lengths),
    written there once: the workflow passes only what a config sets."""
    folder: object
    fetch: object
    verify: object
    mirror: object
    prepare: object = None
    recipe: str | None = None


def _published_kind(prepare=None, recipe: str | None = None) -> Kind:
    return Kind(lambda name, o: _published(name, o).name, _fetch_published, _verify_published, _mirror_published,
                prepare, recipe)


KINDS = {
    "iwslt14": _published_kind(_prepare_iwslt14, "lightformer.datasets.iwslt14:prepare_iwslt14"),
    "wmt14": _published_kind(_prepare_wmt14, "lightformer.datasets.wmt14:prepare_wmt14"),
    "wmt14_hub": _published_kind(_prepare_wmt14, "lightformer.datasets.wmt14:prepare_wmt14"),
    "cnndm": _published_kind(_prepare_cnndm, "lightformer.datasets.cnndm:prepare_cnndm"),
    "glue": _published_kind(_prepare_glue),
    "bert_base_uncased": _published_kind(),
    "ddtp": Kind(lambda name, o: "ddtp", _fetch_ddtp, _verify_ddtp, _mirror_ddtp, _prepare_ddtp,
                 "lightformer.datasets.ddtp:prepare_ddtp"),
    "text": Kind(lambda name, o: _corpus(o).name, _fetch_corpus, _verify_corpus, _mirror_corpus, _prepare_corpus,
                 "lightformer.datasets.corpus:prepare_corpus"),
}
# dataset kind -> its prepare function (the ones the workflow's tasks can use)
PREPARERS = {name: kind.recipe for name, kind in KINDS.items() if kind.recipe}


def kind_of(name: str) -> Kind:
    if name not in KINDS:
        raise LightformerError(f"unknown dataset {name!r}; allowed: {', '.join(KINDS)}")
    return KINDS[name]


def recipe_default(kind: str, option: str):
    """A dataset kind's own default for a prepare option (e.g. bpe_merges: 40,000 for wmt14), or None."""
    import importlib
    import inspect

    if kind not in PREPARERS:
        return None
    module, func = PREPARERS[kind].split(":")
    param = inspect.signature(getattr(importlib.import_module(module), func)).parameters.get(option)
    return None if param is None or param.default is inspect.Parameter.empty else param.default


# --- the four steps ----------------------------------------------------------------------------

def fetch(name: str, o: DataOptions) -> list[str]:
    """Download (or copy from a mirror) and verify the raw files; record first-use checksums; one
    fetch or prepare at a time per dataset directory."""
    kind = kind_of(name)
    with one_writer(Path(o.root) / kind.folder(name, o), "data fetch"):
        return kind.fetch(name, o)


def verify(name: str, o: DataOptions) -> list[str]:
    """Re-check fetched files against their pinned or recorded checksums."""
    return kind_of(name).verify(name, o)


def mirror(name: str, o: DataOptions, to: str | Path) -> list[str]:
    """Copy verified raw files into a mirror directory for offline nodes."""
    return kind_of(name).mirror(name, o, Path(to))


def prepare(name: str, o: DataOptions) -> list[str]:
    """Tokenise, clean, learn and apply BPE, binarise: the dataset's fairseq recipe. The new prepared
    directory is built beside the old one and swapped in whole, under the data directory's writer
    lock: an interrupted prepare leaves the old directory intact (or none), never a mix."""
    kind = kind_of(name)
    if kind.prepare is None:
        raise LightformerError(f"preparation of {name!r} is not implemented (it is used as fetched)")
    out = prepared_dir(Path(o.root), kind.folder(name, o))
    with one_writer(out.parent, "data prepare"), \
            atomic_dir(out, "prepared data", force=True, legacy="meta.json") as tmp:
        counts = kind.prepare(name, o, tmp)
    return _counts(out, counts)
