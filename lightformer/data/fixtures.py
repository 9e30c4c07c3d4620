"""The embedded tiny datasets: byte-for-byte deterministic archives in the real raw formats, so
the smoke run and the tests exercise the same fetch -> verify -> prepare code as the real data.

The text is a learnable toy language pair (German-like words translated word by word into
English, with a little reordering): a tiny model reaches a clearly non-trivial BLEU in a minute.
"""
from __future__ import annotations

import gzip
import io
import random
import tarfile
from pathlib import Path

from lightformer.data.iwslt14 import TEST_SETS

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


def write_mirror(root: str | Path) -> dict[str, Path]:
    """The embedded datasets laid out as a mirror (``<root>/<dataset>/<file>``), each dataset with
    a SHA256SUMS that `lightformer data fetch --embedded` verifies against instead of the
    published checksums (which belong to the real files)."""
    import hashlib

    root = Path(root)
    written = {}
    for dataset, files in (("iwslt14", {"de-en.tgz": iwslt14_archive()}), ("wmt14", wmt14_archives())):
        d = root / dataset
        d.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (d / name).write_bytes(data)
        (d / "SHA256SUMS").write_text("".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                                              for name, data in sorted(files.items())))
        written[dataset] = d / "SHA256SUMS"
    return written
