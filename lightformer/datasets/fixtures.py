"""The embedded tiny datasets: byte-for-byte deterministic archives in the real raw formats, so
the smoke run and the tests exercise the same fetch -> verify -> prepare code as the real data.

The text is a learnable toy language pair (German-like words translated word by word into
English, with a little reordering): a tiny model reaches a clearly non-trivial BLEU in a minute.
"""
from __future__ import annotations

import gzip
import io
import json
import random
import tarfile
from pathlib import Path

from lightformer.datasets.iwslt14 import TEST_SETS

LEXICON = {
    "der": "the", "die": "the", "das": "the", "den": "the", "ein": "a", "eine": "a", "hund": "dog", "katze": "cat",
    "mann": "man", "frau": "woman", "kind": "child", "haus": "house", "baum": "tree", "buch": "book",
    "auto": "car", "stadt": "city", "sieht": "sees", "liest": "reads", "kauft": "buys", "findet": "finds",
    "mag": "likes", "hat": "has", "baut": "builds", "malt": "paints", "groß": "big", "klein": "small",
    "alt": "old", "neu": "new", "rot": "red", "schnell": "fast", "heute": "today", "morgen": "tomorrow",
    "hier": "here", "dort": "there", "und": "and", "oder": "or", "nicht": "not", "sehr": "very",
    "gern": "gladly", "oft": "often", "nie": "never",
}
SUBJECTS = ["der mann", "die frau", "das kind", "der hund", "die katze", "ein mann", "eine frau"]
VERBS = ["sieht", "liest", "kauft", "findet", "mag", "hat", "baut", "malt"]
OBJECTS = ["das haus", "den baum", "ein buch", "das auto", "die stadt", "eine katze", "den hund"]
ADVERBS = ["heute", "morgen", "hier", "dort", "oft", "nie", "sehr gern"]


def sentence_pair(rng: random.Random) -> tuple[str, str]:
    """German-like clause and its English gloss; adverbs move to the end in English."""
    subj, verb, obj = rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS)
    adv = rng.choice(ADVERBS) if rng.random() < 0.6 else ""
    adj = rng.choice(["groß", "klein", "alt", "neu", "rot"]) if rng.random() < 0.3 else ""
    de = " ".join(x for x in [subj, verb, adv, obj, "und ist " + adj if adj else ""] if x)
    en_words = [LEXICON[w] for w in f"{subj} {verb} {obj}".split()]
    if adv:
        en_words += [LEXICON[w] for w in adv.split()]
    if adj:
        en_words += ["and", "is", LEXICON[adj]]
    de = de[0].upper() + de[1:] + rng.choice([".", ".", "!", "?"])
    en = " ".join(en_words)
    return de, en[0].upper() + en[1:] + de[-1]


def _add(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode("utf-8")
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0o644, 0, 0, "", ""
    tar.addfile(info, io.BytesIO(data))


def _xml(segments: list[str], lang: str, name: str) -> str:
    body = "".join(f'<seg id="{i}"> {s} </seg>\n' for i, s in enumerate(segments, 1))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<mteval>\n<srcset setid="{name}" srclang="{lang}">\n'
            f'<doc docid="1" genre="lectures">\n<talkid>1</talkid>\n{body}</doc>\n</srcset>\n</mteval>\n')


def iwslt14_archive(train: int = 1200, per_test_set: int = 20, seed: int = 14) -> bytes:
    """de-en.tgz as fairseq's mirror lays it out: train.tags with talk metadata lines, XML test sets."""
    rng = random.Random(seed)
    de_lines, en_lines = [], []
    talk = 0
    for i in range(train):
        if i % 40 == 0:  # each "talk" opens with metadata lines the recipe drops or unwraps
            talk += 1
            for tag, de_text, en_text in (("url", f"http://www.ted.com/talks/{talk}", f"http://www.ted.com/talks/{talk}"),
                                          ("keywords", "talks, science", "talks, science"),
                                          ("talkid", str(talk), str(talk))):
                de_lines.append(f"<{tag}>{de_text}</{tag}>")
                en_lines.append(f"<{tag}>{en_text}</{tag}>")
            de, en = sentence_pair(rng)
            de_lines.append(f"<title>{de}</title>")
            en_lines.append(f"<title>{en}</title>")
            continue
        de, en = sentence_pair(rng)
        if i % 97 == 0:  # characters Moses escapes (&amp; ...)
            de, en = de[:-1] + " & mehr" + de[-1], en[:-1] + " & more" + en[-1]
        de_lines.append(de)
        en_lines.append(en)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        _add(tar, "de-en/train.tags.de-en.de", "\n".join(de_lines) + "\n")
        _add(tar, "de-en/train.tags.de-en.en", "\n".join(en_lines) + "\n")
        for name in TEST_SETS:
            pairs = [sentence_pair(rng) for _ in range(per_test_set)]
            pairs[0] = (pairs[0][0], pairs[0][1].replace("The", "The dog\u2019s", 1))  # ’ -> ' in the recipe
            _add(tar, f"de-en/{name}.de-en.de.xml", _xml([p[0] for p in pairs], "de", name))
            _add(tar, f"de-en/{name}.de-en.en.xml", _xml([p[1] for p in pairs], "en", name))
    return buf.getvalue()


def _tgz(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name, text in members.items():
            _add(tar, name, text)
    return buf.getvalue()


def _sgm(segments: list[str], lang: str, kind: str) -> str:
    body = "".join(f'<seg id="{i}">{s}</seg>\n' for i, s in enumerate(segments, 1))
    return (f'<{kind}set setid="newstest2014" srclang="any" trglang="{lang}">\n'
            f'<doc sysid="ref" docid="1" genre="news" origlang="en">\n<p>\n{body}</p>\n</doc>\n</{kind}set>\n')


def wmt14_archives(seed: int = 2014) -> dict[str, bytes]:
    """The four statmt.org archives fairseq's --icml17 recipe reads, with their real member
    paths; English -> German over the same toy lexicon, plus the characters the recipe normalises."""
    rng = random.Random(seed)

    def pairs(n):
        out = []
        for _ in range(n):
            de, en = sentence_pair(rng)
            out.append((en, de))
        return out

    def corpus(prefix, n, extra=()):
        ps = pairs(n) + list(extra)
        return {f"{prefix}.en": "\n".join(p[0] for p in ps) + "\n", f"{prefix}.de": "\n".join(p[1] for p in ps) + "\n"}

    special = [("The state-of-the-art car is \u201cfast\u201d .", "Das state-of-the-art Auto ist \u201eschnell\u201c ."),
               ("The well-known\u00ad city .", "Die bekannte\u00ad Stadt .")]  # quotes, soft hyphen (\\p{C})
    test = pairs(100)
    return {
        "training-parallel-europarl-v7.tgz": _tgz(corpus("training/europarl-v7.de-en", 600, special)),
        "training-parallel-commoncrawl.tgz": _tgz(corpus("commoncrawl.de-en", 300)),
        "training-parallel-nc-v9.tgz": _tgz(corpus("training/news-commentary-v9.de-en", 200)),
        "dev.tgz": _tgz(corpus("dev/newstest2013", 120) | {
            "dev/newstest2014-deen-src.en.sgm": _sgm([p[0] for p in test], "en", "src"),
            "dev/newstest2014-deen-ref.de.sgm": _sgm([p[1] for p in test], "de", "ref")}),
    }


# --- Hub-shaped parquet (CNN/DailyMail 3.0.0, GLUE) -------------------------------------------

def _english(rng: random.Random) -> str:
    return sentence_pair(rng)[1]


def _parquet(columns: dict[str, list], types: dict[str, str] | None = None) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = types or {}
    table = pa.table({k: pa.array(v, type=getattr(pa, types.get(k, "string"))()) for k, v in columns.items()})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def cnndm_parquet(train: int = 900, valid: int = 100, test: int = 100, seed: int = 3) -> dict[str, bytes]:
    """abisee/cnn_dailymail 3.0.0's files (train in 3 shards; columns article, highlights, id):
    articles of 4-7 sentences whose highlights are the first two, newline-joined (lead-2, learnable)."""
    rng = random.Random(seed)

    def rows(n):
        cols = {"article": [], "highlights": [], "id": []}
        for _ in range(n):
            sents = [_english(rng) for _ in range(rng.randint(4, 7))]
            cols["article"].append("(CNN) -- " + " ".join(sents))
            cols["highlights"].append("\n".join(sents[:2]))
            cols["id"].append(f"{rng.getrandbits(160):040x}")
        return cols

    shards = [rows(train // 3 + (i < train % 3)) for i in range(3)]
    out = {f"3.0.0/train-{i:05d}-of-00003.parquet": _parquet(c) for i, c in enumerate(shards)}
    out["3.0.0/validation-00000-of-00001.parquet"] = _parquet(rows(valid))
    out["3.0.0/test-00000-of-00001.parquet"] = _parquet(rows(test))
    return out


def custom_corpus_files(sizes: dict[str, int] | None = None, seed: int = 7) -> dict[str, bytes]:
    """A corpus of one's own in every layout ``lightformer.datasets.corpus`` reads: parallel files
    ``<split>.de``/``<split>.en``, the same pairs as ``<split>.tsv``, and ``<split>.jsonl``
    documents (field ``text``) with newline-joined ``summary`` (their first two sentences)."""
    rng = random.Random(seed)
    out = {}
    for split, n in (sizes or {"train": 600, "valid": 40, "test": 40}).items():
        pairs = [sentence_pair(rng) for _ in range(n)]
        out[f"{split}.de"] = "".join(de + "\n" for de, _ in pairs).encode()
        out[f"{split}.en"] = "".join(en + "\n" for _, en in pairs).encode()
        out[f"{split}.tsv"] = "".join(f"{de}\t{en}\n" for de, en in pairs).encode()
        docs = []
        for _ in range(n // 2):
            sents = [_english(rng) for _ in range(rng.randint(3, 5))]
            docs.append(json.dumps({"id": len(docs), "text": " ".join(sents), "summary": "\n".join(sents[:2])}))
        out[f"{split}.jsonl"] = "".join(d + "\n" for d in docs).encode()
    return out


def _glue_example(task: str, rng: random.Random) -> tuple[list[str], float]:
    """Texts and label under a rule a tiny model can learn (accuracy clearly above chance)."""
    a, b = _english(rng), _english(rng)
    words = a.rstrip(".!?").split()
    if task == "cola":  # acceptable word order vs shuffled
        if rng.random() < 0.5:
            return [a], 1
        rng.shuffle(words)
        return [" ".join(words) + "."], 0
    if task == "sst2":  # sentiment word
        good = rng.random() < 0.5
        return [f"{a.rstrip('.!?')} and it is {rng.choice(['great', 'good', 'lovely'] if good else ['bad', 'awful', 'dull'])} ."], int(good)
    if task in ("mrpc", "qqp", "rte", "wnli", "qnli"):  # same content (1 = paraphrase / 0 = entailment)
        same = rng.random() < 0.5
        other = a if same else b
        if task == "qqp":
            a, other = a.rstrip(".!?") + " ?", other.rstrip(".!?") + " ?"
        positive = 1 if task in ("mrpc", "qqp") else 0
        return [a, other], positive if same else 1 - positive
    if task == "stsb":  # similarity = shared words
        other_words = b.rstrip(".!?").split()
        k = rng.randint(0, len(words))
        mixed = words[:k] + other_words[k:]
        return [a, " ".join(mixed) + "."], round(5.0 * k / max(len(words), 1), 2)
    if task == "mnli":  # 0 entailment (same), 1 neutral (other), 2 contradiction (negated)
        label = rng.randrange(3)
        hyp = {0: a, 1: b, 2: " ".join(words[:3] + ["not"] + words[3:]) + "."}[label]
        return [a, hyp], label
    raise KeyError(task)


def glue_parquet(train: int = 400, valid: int = 100, test: int = 50, seed: int = 5) -> dict[str, bytes]:
    """nyu-mll/glue's files per task (<task>/<split>-00000-of-00001.parquet; columns as the Hub's,
    plus idx); test labels are -1 as on the Hub; MNLI has matched and mismatched dev/test."""
    from lightformer.datasets.glue_tasks import TASKS

    out = {}
    for t, task in enumerate(TASKS):
        rng = random.Random(seed * 100 + t)
        names, label_type = list(TASKS[task].columns), TASKS[task].label_type
        splits = {"train": train, "validation": valid, "test": test}
        if task == "mnli":
            splits = {"train": train, "validation_matched": valid, "validation_mismatched": valid,
                      "test_matched": test, "test_mismatched": test}
        for split, n in splits.items():
            cols = {c: [] for c in names} | {"label": [], "idx": []}
            for i in range(n):
                texts, label = _glue_example(task, rng)
                for c, text in zip(names, texts):
                    cols[c].append(text)
                cols["label"].append(-1 if split.startswith("test") else label)
                cols["idx"].append(i)
            out[f"{task}/{split}-00000-of-00001.parquet"] = _parquet(cols, {"label": label_type, "idx": "int32"})
    return out


def wmt14_hub_parquet(seed: int = 2014) -> dict[str, bytes]:
    """wmt/wmt14 de-en as the Hub serves it (column translation {de, en}), from the same toy pairs
    as the statmt fixture: train, validation (newstest2013), test (newstest2014)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    out = {}
    for split, n in (("train", 1100), ("validation", 120), ("test", 100)):
        pairs = [sentence_pair(rng) for _ in range(n)]
        buf = io.BytesIO()
        pq.write_table(pa.table({"translation": [{"de": de, "en": en} for de, en in pairs]}), buf)
        out[f"de-en/{split}-00000-of-00001.parquet"] = buf.getvalue()
    return out


def hub_listing(repo: str, files: dict[str, bytes]) -> dict:
    """hub.json for a mirror: what the Hub API lists at a commit (the fixture's commit is a hash
    of its content, standing in for a git sha)."""
    import hashlib

    entries = [{"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for p, d in sorted(files.items())]
    commit = hashlib.sha1("".join(e["sha256"] for e in entries).encode()).hexdigest()
    return {"repo": repo, "revision": "main", "commit": commit, "files": entries}


def write_mirror(root: str | Path) -> dict[str, Path]:
    """The embedded datasets laid out as a mirror (``<root>/<dataset>/<file>``), each dataset with
    a SHA256SUMS that `lightformer data fetch --embedded` verifies against instead of the
    published checksums (which belong to the real files); Hub datasets with their hub.json."""
    import hashlib
    import json

    from lightformer.datasets.sources import CNNDM, GLUE, WMT14_HUB

    root = Path(root)
    written = {}
    for dataset, files in (("iwslt14", {"de-en.tgz": iwslt14_archive()}), ("wmt14", wmt14_archives()),
                           ("wmt14_hub", wmt14_hub_parquet()), ("cnndm", cnndm_parquet()), ("glue", glue_parquet())):
        d = root / dataset
        for name, data in files.items():
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            (d / name).write_bytes(data)
        (d / "SHA256SUMS").write_text("".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                                              for name, data in sorted(files.items())))
        hub = {"cnndm": CNNDM.hub, "glue": GLUE.hub, "wmt14_hub": WMT14_HUB.hub}.get(dataset)
        if hub is not None:
            (d / "hub.json").write_text(json.dumps(hub_listing(hub.repo, files), indent=2) + "\n")
        written[dataset] = d / "SHA256SUMS"
    return written
