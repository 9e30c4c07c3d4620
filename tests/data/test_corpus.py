"""Your own corpus (dataset ``text``): every layout from local paths and from a loopback HTTP
server, pinned and first-use checksums, mirrors, the recipe's options, and bad files refused with
file and line before anything is recorded or trained."""
import gzip
import hashlib
import json

import pytest
import yaml

from lightformer.cli import main
from lightformer.datasets import corpus as custom
from lightformer.datasets.download import read_manifest
from lightformer.datasets.fixtures import custom_corpus_files
from lightformer.data.indexed import ParallelData
from lightformer.errors import LightformerError
from tests.data.test_download import server  # noqa: F401  (the loopback HTTP server fixture)

FILES = custom_corpus_files()


@pytest.fixture
def corpus_dir(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name, data in FILES.items():
        (folder / name).write_bytes(data)
    return folder


def spec_file(tmp_path, spec):
    path = tmp_path / "corpus.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def lines(data: bytes) -> list[str]:
    return data.decode().splitlines()


def test_parallel_files_from_a_folder_through_fetch_verify_prepare(tmp_path, corpus_dir, capsys):
    spec = spec_file(tmp_path, {"name": "mine_de_en", "pair": "de-en", "dir": "mine", "lowercase": True})
    root = str(tmp_path / "data")
    assert main(["data", "fetch", "text", "--corpus", spec, "--root", root]) == 0
    assert "(trust on first use)" in capsys.readouterr().out
    assert main(["data", "verify", "text", "--corpus", spec, "--root", root]) == 0
    assert main(["data", "prepare", "text", "--corpus", spec, "--root", root, "--bpe-merges", "100"]) == 0
    out = tmp_path / "data/mine_de_en/prepared"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["custom_corpus"]["options"]["lowercase"] is True and meta["src"] == "de" and meta["tgt"] == "en"
    assert meta["sentences"]["test"] == 40  # test is never length-filtered
    src, tgt = ParallelData(out).split("test")
    assert len(src) == len(tgt) == 40
    text = (out / "test.en").read_text()
    assert text == text.lower() and "@@" in (out / "train.de").read_text()
    first = lines(FILES["test.en"])[0].lower().replace("!", " !").replace(".", " .").replace("?", " ?")
    assert (out / "test.en").read_text().splitlines()[0].replace("@@ ", "") == first


def test_tsv_and_gzip_layouts_give_the_same_pairs_as_parallel_files(tmp_path, corpus_dir):
    (corpus_dir / "valid.tsv.gz").write_bytes(gzip.compress(FILES["valid.tsv"]))
    spec = {"name": "tsv", "pair": "de-en", "tokenizer": "none",
            "files": {"train": {"tsv": str(corpus_dir / "train.tsv")},
                      "valid": {"tsv": str(corpus_dir / "valid.tsv.gz")},
                      "test": {"en": str(corpus_dir / "test.en"), "de": str(corpus_dir / "test.de")}}}
    c = custom.from_spec(spec)
    custom.fetch_corpus(c, tmp_path / "data", progress=False)
    texts = custom.read_corpus(c, tmp_path / "data/tsv/raw")
    assert texts["valid"] == (lines(FILES["valid.de"]), lines(FILES["valid.en"]))
    assert texts["test"] == (lines(FILES["test.de"]), lines(FILES["test.en"]))  # roles in any order


def test_urls_pinned_and_first_use_checksums_and_a_mirror(tmp_path, server):  # noqa: F811
    base = f"http://127.0.0.1:{server.server_port}"
    for name, data in FILES.items():
        server.files[f"/corpus/{name}"] = data
    pin = hashlib.sha256(FILES["train.de"]).hexdigest()
    spec = {"name": "web", "pair": "de-en", "files": {
        "train": {"de": {"url": f"{base}/corpus/train.de", "sha256": pin}, "en": f"{base}/corpus/train.en"},
        "valid": {"tsv": f"{base}/corpus/valid.tsv"}, "test": {"tsv": f"{base}/corpus/test.tsv"}}}
    c = custom.from_spec(spec)
    custom.fetch_corpus(c, tmp_path / "data", progress=False)
    recorded = read_manifest(tmp_path / "data/web/raw")["files"]
    assert recorded["train.de"]["verified_against"] == "pinned"
    assert recorded["train.en"]["verified_against"].startswith("recorded now")
    # a mirror for an offline node, then a fetch from it into another root
    custom.mirror_corpus(c, tmp_path / "data", tmp_path / "mirror")
    server.files.clear()
    custom.fetch_corpus(c, tmp_path / "other", mirror=str(tmp_path / "mirror"), progress=False)
    assert (tmp_path / "other/web/raw/train.en").read_bytes() == FILES["train.en"]
    # the pinned file changes upstream: refused, nothing kept
    server.files["/corpus/train.de"] = FILES["train.de"] + "Mehr.\n".encode()
    server.files["/corpus/train.en"] = FILES["train.en"]
    with pytest.raises(LightformerError, match="checksum mismatch for train.de"):
        custom.fetch_corpus(c, tmp_path / "third", progress=False)
    assert not (tmp_path / "third/web/raw/train.de").exists()


def test_summarization_jsonl_with_named_fields(tmp_path, corpus_dir):
    spec = spec_file(tmp_path, {"name": "docs", "kind": "summarization", "dir": "mine",
                                "fields": {"source": "text", "target": "summary"}, "src_max_tokens": 30})
    root = str(tmp_path / "data")
    assert main(["data", "fetch", "text", "--corpus", spec, "--root", root]) == 0
    assert main(["data", "prepare", "text", "--corpus", spec, "--root", root, "--bpe-merges", "80"]) == 0
    out = tmp_path / "data/docs/prepared"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["joined_dictionary"] and meta["src_max_tokens"] == 30 and meta["sentences"]["train"] == 300
    assert all(line.count(" ") < 30 + line.count("@@") for line in (out / "train.article").read_text().splitlines())
    assert " <q> " in (out / "train.summary").read_text()
    refs = [json.loads(x) for x in (out / "test.ref.jsonl").read_text().splitlines()]
    assert refs[0] == json.loads(lines(FILES["test.jsonl"])[0])["summary"]


def test_bad_files_are_refused_with_file_and_line_and_nothing_is_recorded(tmp_path, corpus_dir):
    (corpus_dir / "train.en").write_bytes(b"".join(x + b"\n" for x in FILES["train.en"].splitlines()[:-1]))
    (corpus_dir / "valid.de").write_bytes(FILES["valid.de"] + b"kaputt \xff\xfe zeile\n")
    (corpus_dir / "valid.en").write_bytes(FILES["valid.en"] + b"broken line\n")
    (corpus_dir / "test.tsv").write_bytes(b"a\tb\nonly one field\nx\ty\tz\n")
    spec = {"name": "bad", "pair": "de-en", "files": {
        "train": {"de": str(corpus_dir / "train.de"), "en": str(corpus_dir / "train.en")},
        "valid": {"de": str(corpus_dir / "valid.de"), "en": str(corpus_dir / "valid.en")},
        "test": {"tsv": str(corpus_dir / "test.tsv")}}}
    with pytest.raises(LightformerError) as e:
        custom.fetch_corpus(custom.from_spec(spec), tmp_path / "data", progress=False)
    msg = str(e.value)
    assert "train.de has 600 lines but train.en has 599: not parallel (line 600 of train.de" in msg
    assert "valid.de:41: not UTF-8" in msg and "byte 7 of the line" in msg
    assert "test.tsv:2: 1 tab-separated fields" in msg and "test.tsv:3: 3 tab-separated fields" in msg
    assert "Nothing was recorded" in msg and read_manifest(tmp_path / "data/bad/raw")["files"] == {}
    # summaries: bad JSON, a missing field, a non-string field, an empty split
    (corpus_dir / "valid.jsonl").write_bytes(b'{"text": "a", "summary": "b"}\n{"text": "a"}\n[1]\n{oops\n'
                                             b'{"text": 3, "summary": "c"}\n')
    (corpus_dir / "test.jsonl").write_bytes(b"\n")
    spec = {"name": "bad_docs", "kind": "summarization", "dir": str(corpus_dir),
            "fields": {"source": "text", "target": "summary"}}
    with pytest.raises(LightformerError) as e:
        custom.fetch_corpus(custom.from_spec(spec), tmp_path / "data", progress=False)
    msg = str(e.value)
    assert "valid.jsonl:2: no field 'summary' (has: text)" in msg
    assert "valid.jsonl:3: a JSON list, expected an object" in msg and "valid.jsonl:4: not JSON" in msg
    assert "valid.jsonl:5: field 'text' is a JSON int, expected a string" in msg
    assert "split 'test' is empty (test.jsonl)" in msg


def test_a_bom_is_dropped_and_control_characters_are_refused_with_their_line(tmp_path, corpus_dir):
    (corpus_dir / "train.de").write_bytes(b"\xef\xbb\xbf" + FILES["train.de"])
    c = custom.from_spec({"name": "bom", "pair": "de-en", "dir": str(corpus_dir)})
    custom.fetch_corpus(c, tmp_path / "data", progress=False)
    splits = custom.read_corpus(c, tmp_path / "data/bom/raw")
    assert not splits["train"][0][0].startswith("\ufeff")
    (corpus_dir / "valid.en").write_bytes(FILES["valid.en"].replace(b"\n", b"\x00", 1))
    with pytest.raises(LightformerError, match=r"valid.en:1: control character U\+0000"):
        custom.fetch_corpus(custom.from_spec({"name": "nul", "pair": "de-en", "dir": str(corpus_dir)}),
                            tmp_path / "data", progress=False)


@pytest.mark.parametrize("spec, why", [
    ({"name": "x", "pair": "de-en", "dir": "d", "colour": 1}, r"unknown keys \['colour'\]"),
    ({"name": "iwslt14", "pair": "de-en", "dir": "d"}, "built-in dataset"),
    ({"name": "Bad-Name", "pair": "de-en", "dir": "d"}, "lowercase letters"),
    ({"name": "x", "pair": "german", "dir": "d"}, "expected SRC-TGT"),
    ({"name": "x", "pair": "de-en"}, "either dir: .* or files:"),
    ({"name": "x", "pair": "de-en", "files": {"train": {"tsv": "a"}, "test": {"tsv": "b"}}}, "exactly the splits"),
    ({"name": "x", "pair": "de-en", "files": {s: {"de": "a"} for s in ("train", "valid", "test")}},
     r"files.train has \['de'\]; expected \{de, en\} or \{tsv\}"),
    ({"name": "x", "pair": "de-en", "files": {s: {"tsv": {"url": "http://h/a", "sha256": "abc"}}
                                              for s in ("train", "valid", "test")}}, "64 lowercase hex"),
    ({"name": "x", "pair": "de-en", "dir": "http://host/corpus/"}, "cannot be listed"),
    ({"name": "x", "pair": "de-en", "dir": "d", "tokenizer": "spacy"}, "allowed: moses, none"),
    ({"name": "x", "pair": "de-en", "dir": "d", "lowercase": "yes"}, "lowercase 'yes' should be a bool"),
    ({"name": "x\n", "pair": "de-en", "dir": "d"}, "lowercase letters"),
    ({"name": "x", "kind": "summarization", "dir": "d", "tgt_max_tokens": 0}, "tgt_max_tokens 0 must be at least 1"),
    ({"name": "x", "kind": "summarization", "dir": "d", "src_max_tokens": -1}, "src_max_tokens -1 must be at least 1"),
    ({"name": "x", "pair": "de-en", "dir": "d", "min_len": 9, "max_len": 3}, "no sentence pair could pass"),
])
def test_spec_errors_name_what_is_wrong(tmp_path, spec, why):
    (tmp_path / "d").mkdir()
    with pytest.raises(LightformerError, match=why):
        custom.from_spec(spec, base=tmp_path)


def test_a_folder_missing_a_split_and_a_changed_source_are_refused(tmp_path, corpus_dir):
    (corpus_dir / "valid.de").unlink()
    (corpus_dir / "valid.tsv").unlink()
    with pytest.raises(LightformerError, match=r"no valid split \(looked for valid.de\+valid.en, validation.de\+"
                                               r"validation.en, dev.de\+dev.en, valid.tsv, validation.tsv, dev.tsv"):
        custom.from_spec({"name": "x", "pair": "de-en", "dir": str(corpus_dir)})
    (corpus_dir / "validation.de").write_bytes(FILES["valid.de"])  # Hugging Face's name for it
    assert custom.from_spec({"name": "x", "pair": "de-en", "dir": str(corpus_dir)}).files
    (corpus_dir / "validation.de").unlink()
    (corpus_dir / "dev.de").write_bytes(FILES["valid.de"])  # dev.* is read as valid
    c = custom.from_spec({"name": "x", "pair": "de-en", "dir": str(corpus_dir)})
    custom.fetch_corpus(c, tmp_path / "data", progress=False)
    (corpus_dir / "train.en").write_bytes(FILES["train.en"].replace(b"house", b"home"))
    with pytest.raises(LightformerError, match="differs from what was fetched first"):
        custom.fetch_corpus(c, tmp_path / "data", progress=False)
    custom.fetch_corpus(c, tmp_path / "data", retrust=True, progress=False)
    assert b"home" in (tmp_path / "data/x/raw/train.en").read_bytes()


def test_cli_needs_a_spec_for_text_and_refuses_one_elsewhere(tmp_path, capsys):
    assert main(["data", "fetch", "text", "--root", str(tmp_path)]) == 2
    assert "needs --corpus SPEC" in capsys.readouterr().err
    assert main(["data", "fetch", "iwslt14", "--root", str(tmp_path), "--corpus", "{}"]) == 2
    assert "--corpus applies to dataset 'text'" in capsys.readouterr().err
