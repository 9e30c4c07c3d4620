"""DDTP: Translation files in apt's formats (lz4, xz, bz2, plain) -> aligned, deduplicated,
deterministically split pairs -> a prepared directory; first-use checksums and refusals."""
import bz2
import hashlib
import json
import lzma

import lz4.frame
import pytest

from lightformer.datasets import ddtp
from lightformer.data.indexed import ParallelData
from lightformer.errors import LightformerError
from tests.data.test_download import server  # noqa: F401  (the loopback HTTP server fixture)
from tests.integrity.helpers import lightformer, refused

EN = """Package: alpha
Description-md5: {m1}
Description-en: fast text search tool
 Alpha searches text files quickly.
 It reads many formats.
 .
 It is written in C.

Package: beta
Description-md5: {m2}
Description-en: small image viewer
 Beta shows images.
 .
 It has no menus.
 .
 It starts fast.

Package: gamma
Description-md5: {m3}
Description-en: fast text search tool

Package: delta
Description-md5: {m4}
Description-en: only in English
"""
DE = """Package: alpha
Description-md5: {m1}
Description-de: schnelles Textsuchwerkzeug
 Alpha durchsucht Textdateien schnell.
 Es liest viele Formate.
 .
 Es ist in C geschrieben.

Package: beta
Description-md5: {m2}
Description-de: kleiner Bildbetrachter
 Beta zeigt Bilder. Es hat keine Menüs.

Package: gamma
Description-md5: {m3}
Description-de: schnelles Textsuchwerkzeug
"""
MD5 = {f"m{i}": f"{i:032x}" for i in range(1, 5)}


def write(path, text, suffix):
    data = text.encode("utf-8")
    data = {".lz4": lz4.frame.compress, ".xz": lzma.compress, ".bz2": bz2.compress, "": lambda b: b}[suffix](data)
    path.write_bytes(data)
    return path


def apt_lists(tmp_path, suffix=".lz4", en=EN, de=DE, name="lists"):
    """A directory laid out as apt's lists (or a mirror's ddtp/), written again if it exists."""
    lists = tmp_path / name
    lists.mkdir(parents=True, exist_ok=True)
    for lang, text in (("en", en), ("de", de)):
        write(lists / (ddtp.translation_name("bookworm", lang) + suffix), text.format(**MD5), suffix)
    (lists / "deb.debian.org_debian_dists_bookworm_InRelease").write_text("Origin: Debian\nDate: Sat, 11 Jul 2026\n")
    return lists


@pytest.mark.parametrize("suffix", [".lz4", ".xz", ".bz2", ""])
def test_every_apt_format_reads_to_the_same_aligned_pairs(tmp_path, suffix):
    lists = apt_lists(tmp_path, suffix)
    recs = {lang: ddtp.parse(ddtp.read_text(ddtp.find_translation(lists, "bookworm", lang)), lang)
            for lang in ("de", "en")}
    assert recs["en"][MD5["m1"]] == ("fast text search tool",
                                     ["Alpha searches text files quickly. It reads many formats.", "It is written in C."])
    pairs = ddtp.align(recs["de"], recs["en"])
    # alpha: short + 2 paragraphs; beta: short only (1 vs 3 paragraphs); gamma: a duplicate of alpha's
    # short pair; delta: no German
    assert pairs == [("schnelles Textsuchwerkzeug", "fast text search tool"),
                     ("Alpha durchsucht Textdateien schnell. Es liest viele Formate.",
                      "Alpha searches text files quickly. It reads many formats."),
                     ("Es ist in C geschrieben.", "It is written in C."),
                     ("kleiner Bildbetrachter", "small image viewer")]


def test_split_is_a_function_of_the_english_side():
    pairs = [(f"de {i}", f"en {i}") for i in range(3000)]
    a = ddtp.split_pairs(pairs, 1)
    b = ddtp.split_pairs(list(reversed(pairs)), 1)
    assert {k: sorted(v[1]) for k, v in a.items()} == {k: sorted(v[1]) for k, v in b.items()}
    assert 60 < len(a["test"][0]) < 180 and 60 < len(a["valid"][0]) < 180  # 4% each of 3000


def test_fetch_records_first_use_and_refuses_changed_bytes(tmp_path):
    root = tmp_path / "data"
    r = lightformer("data", "fetch", "ddtp", "--root", root, "--mirror", tmp_path / "m")  # no such mirror
    assert r.returncode == 2
    apt_lists(tmp_path / "m", name="ddtp")
    r = lightformer("data", "fetch", "ddtp", "--root", root, "--mirror", tmp_path / "m")
    assert r.returncode == 0, r.stderr.decode()
    manifest = json.loads((root / "ddtp/raw/manifest.json").read_text())
    assert manifest["suite"] == "bookworm" and manifest["release_date"] == "Sat, 11 Jul 2026"
    assert {f["lang"] for f in manifest["files"].values()} == {"de", "en"}
    apt_lists(tmp_path / "m", en=EN.replace("small", "tiny"), name="ddtp")  # the suite moved on: same names
    refused("data", "fetch", "ddtp", "--root", root, "--mirror", tmp_path / "m", expect="recorded",
            watch=(root,))
    refused("data", "fetch", "ddtp", "--root", root, "--pair", "de-fr", expect="--pair")


def test_prepare_writes_a_parallel_directory(tmp_path):
    # enough distinct pairs for every split to be non-empty after the hash split
    en = "".join(f"Package: p{i}\nDescription-md5: {i:032x}\nDescription-en: tool number {i} for files\n\n"
                 for i in range(400))
    de = "".join(f"Package: p{i}\nDescription-md5: {i:032x}\nDescription-de: Werkzeug Nummer {i} für Dateien\n\n"
                 for i in range(400))
    lists = apt_lists(tmp_path, en=en, de=de)
    raw, out = tmp_path / "raw", tmp_path / "prepared"
    ddtp.fetch_ddtp(lists, raw, ("de", "en"), "bookworm")
    counts = ddtp.prepare_ddtp(raw, out, ("de", "en"), bpe_merges=50, progress=False)
    assert counts["aligned_pairs"] == 400 and counts["train"] + counts["valid"] + counts["test"] == 400
    data = ParallelData(out)
    src, tgt = data.split("test")
    assert len(src) == counts["test"] > 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["dataset"] == "ddtp" and meta["records"] == {"de": 400, "en": 400}
    (raw / next(iter(json.loads((raw / "manifest.json").read_text())["files"]))).write_bytes(b"x")
    with pytest.raises(LightformerError, match="changed"):
        ddtp.prepare_ddtp(raw, out, ("de", "en"))


def test_an_archive_url_is_read_as_apt_reads_it_checked_against_the_release_file(tmp_path, server):  # noqa: F811
    """For users elsewhere: https://deb.debian.org/debian-like roots, here on the loopback server."""
    files = {"de": lzma.compress(DE.format(**MD5).encode()), "en": bz2.compress(EN.format(**MD5).encode())}
    paths = {"de": "main/i18n/Translation-de.xz", "en": "main/i18n/Translation-en.bz2"}

    def release(files):
        return ("Origin: Debian\nCodename: bookworm\nDate: Sat, 09 Nov 2024 10:22:51 UTC\nMD5Sum:\n"
                f" {'0' * 32} 1 main/i18n/Translation-de.xz\nSHA256:\n" + "".join(
                    f" {hashlib.sha256(files[lang]).hexdigest()} {len(files[lang])} {paths[lang]}\n"
                    for lang in files)).encode()

    server.files["/debian/dists/bookworm/Release"] = release(files)
    for lang, data in files.items():
        server.files[f"/debian/dists/bookworm/{paths[lang]}"] = data
    base, root = f"http://127.0.0.1:{server.server_port}/debian", tmp_path / "data"
    r = lightformer("data", "fetch", "ddtp", "--root", root, "--source", base)
    assert r.returncode == 0, r.stderr.decode()
    manifest = json.loads((root / "ddtp/raw/manifest.json").read_text())
    assert manifest["release_date"] == "Sat, 09 Nov 2024 10:22:51 UTC" and len(manifest["release"]["sha256"]) == 64
    names = sorted(manifest["files"])
    assert names == [f"127.0.0.1:{server.server_port}_debian_dists_bookworm_main_i18n_Translation-de.xz",
                     f"127.0.0.1:{server.server_port}_debian_dists_bookworm_main_i18n_Translation-en.bz2"]
    recs = {lang: ddtp.parse(ddtp.read_text(root / "ddtp/raw" / n), lang) for lang, n in zip(("de", "en"), names)}
    assert ("kleiner Bildbetrachter", "small image viewer") in ddtp.align(recs["de"], recs["en"])
    # a Translation file that does not match the Release: refused, nothing kept under its name
    server.files["/debian/dists/bookworm/main/i18n/Translation-en.bz2"] = bz2.compress(b"Package: x\n")
    refused("data", "fetch", "ddtp", "--root", tmp_path / "other", "--source", base, expect="does not match")
    assert not list((tmp_path / "other/ddtp/raw").glob("*Translation-en*"))
    # the suite moves on (a new Release): refused against the first-use record
    server.files["/debian/dists/bookworm/Release"] = release(files) + b"\n"
    refused("data", "fetch", "ddtp", "--root", root, "--source", base, expect="the suite moved on")
