"""Your own corpus as a dataset (kind ``text``): parallel plain text or a TSV for translation,
JSON lines for summarization, from local paths or http(s) URLs, through the same fetch, verify,
mirror and prepare steps as the published datasets (docs/reference.md §5).

A corpus is described by a small spec (YAML or JSON, or the workflow config's ``corpus:``)::

    name: acme_de_en          # directory under the data root: <root>/<name>/{raw,prepared}
    kind: translation         # or summarization
    pair: de-en               # source-target (translation)
    dir: /data/acme           # {train,valid,test}.{de,en} or {split}.tsv (summarization: {split}.jsonl)
    # or per split, each a path, a URL, or {url: ..., sha256: ...}:
    # files: {train: {de: a.de, en: a.en}, valid: {tsv: https://host/valid.tsv}, test: ...}

Every file is read and checked before anything is trained: undecodable bytes, ragged parallel
files, malformed TSV or JSON lines and missing fields are refused with file and line numbers.
"""
from __future__ import annotations

import dataclasses
import gzip
import json
import re
import sys
from pathlib import Path

from lightformer.data import prepared_dir, raw_dir
from lightformer.datasets.download import (
    fetch_file,
    forget_recorded,
    mirror_listing,
    mirror_to,
    read_manifest,
    retrusting,
    verify,
    write_manifest,
)
from lightformer.datasets.sources import DATASETS, Dataset, RemoteFile
from lightformer.errors import LightformerError
from lightformer.io import file_sha256

SPLITS = ("train", "valid", "test")
# the names a folder may give each split: fairseq's valid, the common dev, Hugging Face's validation
SPLIT_NAMES = {"train": ("train",), "valid": ("valid", "validation", "dev"), "test": ("test",)}
KINDS = ("translation", "summarization")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # C0 controls and DEL; tab, CR and LF allowed
NAME = re.compile(r"[a-z0-9_]+")  # fullmatch: "$" would let a trailing newline through
MAX_PROBLEMS = 20


@dataclasses.dataclass(frozen=True)
class CorpusFile:
    split: str
    role: str  # a language code (parallel text), "tsv" or "jsonl"
    source: str  # local path or http(s) URL
    sha256: str | None = None

    @property
    def name(self) -> str:
        """Its name under raw/ (and in a mirror): ``<split>.<role>``, keeping a .gz suffix."""
        return f"{self.split}.{self.role}" + (".gz" if self.source.endswith(".gz") else "")


@dataclasses.dataclass(frozen=True)
class Options:
    """The recipe: what the published datasets' preparation fixes, chosen per corpus."""
    tokenizer: str = "moses"  # moses (tokenizer.perl, escaping on) or none (split on whitespace)
    lowercase: bool = False
    min_len: int = 1  # length filter (clean-corpus-n.perl) of train and valid, in tokens before BPE
    max_len: int = 250
    ratio: float = 1.5
    joined_dictionary: bool = False  # one dictionary for both sides (share_all_embeddings needs it)
    src_max_tokens: int = 400  # summarization: truncation of the source and the target
    tgt_max_tokens: int = 100
    lang: str = "en"  # summarization: the tokenizer's language


@dataclasses.dataclass(frozen=True)
class Corpus:
    name: str
    kind: str
    src: str  # translation: languages; summarization: JSON fields
    tgt: str
    files: tuple[CorpusFile, ...]
    options: Options = Options()

    def dataset(self) -> Dataset:
        """As a Dataset of the download layer: the same fetch, checksum records and mirrors."""
        return Dataset(self.name, tuple(RemoteFile(f.name, f.source, f.sha256) for f in self.files),
                       notes=f"custom {self.kind} corpus")


def _file_ref(value, where: str) -> tuple[str, str | None]:
    if isinstance(value, str) and value:
        return value, None
    if isinstance(value, dict) and set(value) <= {"url", "path", "sha256"} and bool(value.get("url")) != bool(
            value.get("path")):
        sha = value.get("sha256")
        if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", str(sha)):
            raise LightformerError(f"{where}: sha256 {sha!r} is not 64 lowercase hex digits")
        return value.get("url") or value["path"], sha
    raise LightformerError(f"{where}: expected a path or URL, or {{url|path: ..., sha256: ...}}; got {value!r}")


def _resolve(source: str, base: Path | None) -> str:
    if source.startswith(("http://", "https://")) or base is None or Path(source).is_absolute():
        return source
    return str(base / source)


def _roles(kind: str, src: str, tgt: str) -> list[tuple[str, ...]]:
    """The file layouts a split may use, in the order ``dir:`` looks for them."""
    return [(src, tgt), ("tsv",)] if kind == "translation" else [("jsonl",)]


def _from_dir(directory: str, kind: str, src: str, tgt: str) -> dict:
    if directory.startswith(("http://", "https://")):
        raise LightformerError(f"dir: {directory!r} is a URL, which cannot be listed; name each file under files:")
    root = Path(directory)
    if not root.is_dir():
        raise LightformerError(f"dir: {directory!r} is not a directory")
    files = {}
    for split in SPLITS:
        stems = SPLIT_NAMES[split]
        for roles in _roles(kind, src, tgt):
            found = {}
            for role in roles:
                for stem in stems:
                    for suffix in ("", ".gz"):
                        if (root / f"{stem}.{role}{suffix}").is_file() and role not in found:
                            found[role] = str(root / f"{stem}.{role}{suffix}")
            if len(found) == len(roles):
                files[split] = found
                break
        if split not in files:
            want = ", ".join(f"{stem}.{'+'.join(roles)}" if len(roles) == 1 else
                             "+".join(f"{stem}.{r}" for r in roles) for roles in _roles(kind, src, tgt)
                             for stem in stems)
            raise LightformerError(f"dir: {directory!r} has no {split} split (looked for {want}, each also .gz)")
    return files


def from_spec(spec: dict, base: Path | None = None) -> Corpus:
    """A Corpus from its spec; relative paths are relative to ``base`` (the spec file's folder)."""
    if not isinstance(spec, dict):
        raise LightformerError(f"a corpus spec is a mapping, got {type(spec).__name__}")
    known = {"name", "kind", "pair", "fields", "dir", "files"} | {f.name for f in dataclasses.fields(Options)}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise LightformerError(f"corpus spec: unknown keys {unknown}; allowed: {sorted(known)}")
    name, kind = spec.get("name"), spec.get("kind", "translation")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise LightformerError(f"corpus spec: name {name!r} must be lowercase letters, digits and _ (a directory)")
    if name in DATASETS or name in ("ddtp", "text"):
        raise LightformerError(f"corpus spec: name {name!r} is a built-in dataset's; choose another")
    if kind not in KINDS:
        raise LightformerError(f"corpus spec: kind {kind!r}; allowed: {', '.join(KINDS)}")
    if kind == "translation":
        pair = str(spec.get("pair", "")).split("-")
        if len(pair) != 2 or not all(re.fullmatch(r"[a-z]{2,3}", p) for p in pair) or pair[0] == pair[1]:
            raise LightformerError(f"corpus spec: pair {spec.get('pair')!r}; expected SRC-TGT language codes, "
                                   f"e.g. de-en")
        src, tgt = pair
    else:
        fields = spec.get("fields") or {}
        src, tgt = fields.get("source", "article"), fields.get("target", "highlights")
    options = {k: spec[k] for k in spec if k in {f.name for f in dataclasses.fields(Options)}}
    for key, value in options.items():
        want = type(getattr(Options, key))
        ok = isinstance(value, want) and (want is bool or not isinstance(value, bool)) or (
            want is float and isinstance(value, int) and not isinstance(value, bool))
        if not ok:
            raise LightformerError(f"corpus spec: {key} {value!r} should be a {want.__name__}")
    opts = Options(**options)
    if opts.tokenizer not in ("moses", "none"):
        raise LightformerError(f"corpus spec: tokenizer {opts.tokenizer!r}; allowed: moses, none")
    for key in ("min_len", "max_len", "src_max_tokens", "tgt_max_tokens"):
        if getattr(opts, key) < 1:
            raise LightformerError(f"corpus spec: {key} {getattr(opts, key)} must be at least 1")
    if opts.min_len > opts.max_len or not opts.ratio >= 1:
        raise LightformerError(f"corpus spec: min_len {opts.min_len} > max_len {opts.max_len}, or ratio {opts.ratio} "
                               f"below 1: no sentence pair could pass the length filter")
    if ("dir" in spec) == ("files" in spec):
        raise LightformerError("corpus spec: give either dir: (a folder of split files) or files: (per split)")
    layout = _from_dir(_resolve(spec["dir"], base), kind, src, tgt) if "dir" in spec else spec["files"]
    if not isinstance(layout, dict) or set(layout) != set(SPLITS):
        got = sorted(layout) if isinstance(layout, dict) else layout
        raise LightformerError(f"corpus spec: files: needs exactly the splits {list(SPLITS)}, got {got}")
    files = []
    for split in SPLITS:
        entry = layout[split]
        roles = next((r for r in _roles(kind, src, tgt) if isinstance(entry, dict) and set(entry) == set(r)), None)
        if roles is None:
            allowed = " or ".join("{" + ", ".join(r) + "}" for r in _roles(kind, src, tgt))
            got = list(entry) if isinstance(entry, dict) else repr(entry)
            raise LightformerError(f"corpus spec: files.{split} has {got}; expected {allowed}")
        for role in roles:
            source, sha = _file_ref(entry[role], f"files.{split}.{role}")
            files.append(CorpusFile(split, role, _resolve(source, base), sha))
    return Corpus(name, kind, src, tgt, tuple(files), opts)


def load(spec: str) -> Corpus:
    """A corpus from a spec file (YAML or JSON) or inline JSON (as the workflow passes it)."""
    import yaml

    if spec.lstrip().startswith("{"):
        try:
            return from_spec(json.loads(spec))
        except json.JSONDecodeError as e:
            raise LightformerError(f"--corpus: inline JSON does not parse ({e})") from None
    path = Path(spec)
    if not path.is_file():
        raise LightformerError(f"--corpus {spec!r}: no such file (a YAML/JSON corpus spec, or inline JSON)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise LightformerError(f"{path}: not YAML/JSON ({e})") from None
    return from_spec(data, base=path.parent)


# -- reading and checking ---------------------------------------------------------------------------

def read_text_lines(path: Path, problems: list[str]) -> list[str] | None:
    """The file's lines (gzip by suffix; CRLF tolerated), or None after recording why not."""
    data = Path(path).read_bytes()
    if path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            problems.append(f"{path.name}: not a complete gzip file ({e})")
            return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line, column = data[: e.start].count(b"\n") + 1, e.start - data.rfind(b"\n", 0, e.start) - 1
        problems.append(f"{path.name}:{line}: not UTF-8 ({e.reason} at byte {column} of the line)")
        return None
    text = text.removeprefix("\ufeff")  # a byte-order mark is an encoding marker, not a word: dropped
    bad = CONTROL.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        problems.append(f"{path.name}:{line}: control character U+{ord(bad.group()):04X} (a NUL or other control "
                        f"character would silently join or split words); clean the file")
        return None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _tsv(path: Path, lines: list[str], problems: list[str]) -> tuple[list[str], list[str]]:
    src, tgt, bad = [], [], 0
    for n, line in enumerate(lines, 1):
        cols = line.split("\t")
        if len(cols) != 2:
            bad += 1
            if bad <= 5:
                problems.append(f"{path.name}:{n}: {len(cols)} tab-separated fields, expected 2 (source<TAB>target)")
            continue
        src.append(cols[0])
        tgt.append(cols[1])
    if bad > 5:
        problems.append(f"{path.name}: {bad - 5:,} more lines without exactly 2 fields")
    return src, tgt


def _jsonl(path: Path, lines: list[str], fields: tuple[str, str], problems: list[str]):
    src, tgt, bad = [], [], 0
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        why = None
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            record, why = None, f"not JSON ({e.msg}, column {e.colno})"
        if why is None and not isinstance(record, dict):
            why = f"a JSON {type(record).__name__}, expected an object"
        if why is None:
            missing = [f for f in fields if f not in record]
            wrong = [f for f in fields if f in record and not isinstance(record[f], str)]
            if missing:
                why = f"no field {', '.join(map(repr, missing))} (has: {', '.join(sorted(record)) or 'nothing'})"
            elif wrong:
                why = f"field {wrong[0]!r} is a JSON {type(record[wrong[0]]).__name__}, expected a string"
        if why:
            bad += 1
            if bad <= 5:
                problems.append(f"{path.name}:{n}: {why}")
            continue
        src.append(record[fields[0]])
        tgt.append(record[fields[1]])
    if bad > 5:
        problems.append(f"{path.name}: {bad - 5:,} more bad lines")
    return src, tgt


def read_corpus(corpus: Corpus, raw: Path) -> dict[str, tuple[list[str], list[str]]]:
    """(source, target) texts per split from the fetched files, or one error listing every problem
    found (file:line) so that a bad corpus is refused before any training."""
    problems: list[str] = []
    splits = {}
    for split in SPLITS:
        files = [f for f in corpus.files if f.split == split]
        texts = {f.role: read_text_lines(Path(raw) / f.name, problems) for f in files}
        if any(t is None for t in texts.values()):
            continue
        if corpus.kind == "summarization":
            src, tgt = _jsonl(Path(raw) / files[0].name, texts["jsonl"], (corpus.src, corpus.tgt), problems)
        elif "tsv" in texts:
            src, tgt = _tsv(Path(raw) / files[0].name, texts["tsv"], problems)
        else:
            src, tgt = texts[corpus.src], texts[corpus.tgt]
            if len(src) != len(tgt):
                longer, shorter = (corpus.src, corpus.tgt) if len(src) > len(tgt) else (corpus.tgt, corpus.src)
                n = min(len(src), len(tgt))
                problems.append(f"{split}.{corpus.src} has {len(src):,} lines but {split}.{corpus.tgt} has "
                                f"{len(tgt):,}: not parallel (line {n + 1:,} of {split}.{longer} has no partner "
                                f"in {split}.{shorter})")
                continue
        if not src:
            problems.append(f"split {split!r} is empty ({', '.join(f.name for f in files)})")
            continue
        splits[split] = (src, tgt)
    if problems:
        shown = problems[:MAX_PROBLEMS] + ([f"... {len(problems) - MAX_PROBLEMS} more"]
                                           if len(problems) > MAX_PROBLEMS else [])
        raise LightformerError(f"corpus {corpus.name!r} refused (files under {raw}):\n  " + "\n  ".join(shown))
    return splits


# -- fetch, verify, mirror ----------------------------------------------------------------------------

def _refuse_changed_sources(corpus: Corpus, raw: Path) -> None:
    """A spec now naming another file, or a local file edited since first use, is refused: the
    raw copy would silently stand in for it."""
    recorded = read_manifest(raw)["files"]
    for f in corpus.files:
        rec = recorded.get(f.name)
        if not rec:
            continue
        local = not f.source.startswith(("http://", "https://"))
        changed = rec.get("url") != f.source or (local and Path(f.source).is_file()
                                                  and file_sha256(f.source) != rec["sha256"])
        if changed:
            raise LightformerError(
                f"{f.name}: the spec's source {f.source} differs from what was fetched first "
                f"({rec.get('url')}, sha256 {rec['sha256'][:12]}...); fetch into a new data root or corpus name, or "
                f"pass --retrust to forget the old record")


def fetch_corpus(corpus: Corpus, root: Path, mirror: str | None = None, retrust: bool = False,
                 progress: bool = True) -> list[Path]:
    """Copy or download every file into ``<root>/<name>/raw`` (checksums pinned by the spec, else
    recorded on first use), then read them all so a bad file is refused here, not mid-training."""
    raw = raw_dir(root, corpus.name)
    raw.mkdir(parents=True, exist_ok=True)
    ds = corpus.dataset()
    if not retrust:
        return _fetch_checked(corpus, ds, raw, mirror, progress)
    with retrusting(ds, raw) as dropped:
        for name in dropped:
            print(f"{corpus.name}/{name}: recorded checksum set aside (--retrust); fetching anew", file=sys.stderr)
        return _fetch_checked(corpus, ds, raw, mirror, progress)


def _fetch_checked(corpus: Corpus, ds: Dataset, raw: Path, mirror: str | None, progress: bool) -> list[Path]:
    if not mirror:
        _refuse_changed_sources(corpus, raw)
    before = set(read_manifest(raw)["files"])
    listed = mirror_listing(corpus.name, mirror)
    try:
        paths = [fetch_file(corpus.name, f, raw, mirror, progress, listed=listed) for f in ds.files]
        read_corpus(corpus, raw)
    except LightformerError as e:  # a refused file must not stay recorded as the truth; earlier records stay
        forget_recorded(ds, raw, only=set(read_manifest(raw)["files"]) - before)
        raise LightformerError(f"{e}\nNothing was recorded: fix the files and fetch again") from None
    write_manifest(raw, read_manifest(raw) | {"dataset": corpus.name, "custom_corpus": spec_of(corpus)})
    return paths


def verify_corpus(corpus: Corpus, root: Path) -> list[str]:
    return verify(corpus.dataset(), root)


def mirror_corpus(corpus: Corpus, root: Path, target: Path) -> list[Path]:
    return mirror_to(corpus.dataset(), root, target)


def spec_of(corpus: Corpus) -> dict:
    """The corpus as recorded in manifests and meta.json (kind, sides, files, recipe)."""
    return {"name": corpus.name, "kind": corpus.kind, "source": corpus.src, "target": corpus.tgt,
            "files": {f.name: f.source for f in corpus.files}, "options": dataclasses.asdict(corpus.options)}


# -- prepare ------------------------------------------------------------------------------------------

def _tokenize(lines: list[str], lang: str, opts: Options, workers: int) -> list[str]:
    from lightformer.datasets.text import tokenize

    if opts.tokenizer == "moses":
        lines = tokenize(lines, lang, normalize=False, workers=workers, aggressive=False, escape=True)
    else:
        lines = [" ".join(x.split()) for x in lines]
    return [x.lower() for x in lines] if opts.lowercase else lines


def prepare_translation(corpus: Corpus, splits: dict, out: Path, bpe_merges: int, workers: int) -> dict:
    from lightformer.data.dictionary import Dictionary
    from lightformer.data.indexed import write_joined, write_parallel
    from lightformer.datasets.text import clean, learn_and_apply_bpe

    opts = corpus.options
    text = {}
    for split, (s, t) in splits.items():
        s, t = _tokenize(s, corpus.src, opts, workers), _tokenize(t, corpus.tgt, opts, workers)
        if split != "test":  # test is scored as given; train and valid are length-filtered
            s, t = clean(s, t, opts.min_len, opts.max_len, opts.ratio)
            if not s:
                raise LightformerError(f"corpus {corpus.name!r}: split {split!r} is empty after the length filter "
                                       f"({opts.min_len}-{opts.max_len} tokens, ratio <= {opts.ratio})")
        text[split] = (s, t)
    bpe, codes = learn_and_apply_bpe(*text["train"], {k: v for k, v in text.items() if k != "train"}, bpe_merges, out)
    meta = {"dataset": corpus.name, "recipe": "custom corpus: Moses tokens (or as given), length filter, joint BPE",
            "custom_corpus": spec_of(corpus), "bpe_merges": bpe_merges, "bpe_codes": codes.name,
            "raw_sentences": {k: len(v[0]) for k, v in splits.items()}}
    if opts.joined_dictionary:
        return write_joined(out, corpus.src, corpus.tgt, bpe, meta)
    write_parallel(out, corpus.src, corpus.tgt, Dictionary.build(bpe["train"][0]), Dictionary.build(bpe["train"][1]),
                   bpe, meta=meta)
    return {name: len(s) for name, (s, _) in bpe.items()}


def prepare_corpus(corpus: Corpus, root: Path, bpe_merges: int = 10_000, workers: int = 1,
                   out: Path | None = None) -> dict:
    """Verified raw files -> checked texts -> the recipe -> ``out`` (``<root>/<name>/prepared``)."""
    verify_corpus(corpus, root)
    raw, out = raw_dir(root, corpus.name), Path(out or prepared_dir(root, corpus.name))
    splits = read_corpus(corpus, raw)
    out.mkdir(parents=True, exist_ok=True)
    if corpus.kind == "translation":
        return prepare_translation(corpus, splits, out, bpe_merges, workers)
    from lightformer.datasets.cnndm import prepare_summaries

    opts = corpus.options
    meta = {"dataset": corpus.name, "recipe": "custom corpus: truncated Moses tokens, joint BPE",
            "custom_corpus": spec_of(corpus)}
    return prepare_summaries(splits, out, bpe_merges, opts.src_max_tokens, opts.tgt_max_tokens, workers, meta,
                             lang=opts.lang, lowercase=opts.lowercase)
