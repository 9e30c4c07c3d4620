"""WMT'14 through the real path: embedded archives in a mirror, --embedded pins, fairseq's
--icml17 preparation steps on known sentences."""
import pytest

import lightformer as lf
from lightformer.cli import main
from lightformer.datasets.archives import seg_lines
from lightformer.data.indexed import ParallelData
from lightformer.datasets.sources import WMT14
from lightformer.datasets.text import remove_non_printing, tokenize


def test_embedded_wmt14_fetch_verify_prepare(tmp_path):
    mirror, root = tmp_path / "mirror", tmp_path / "data"
    assert main(["data", "fixtures", "--out", str(mirror)]) == 0
    assert main(["data", "fetch", "wmt14", "--root", str(root), "--mirror", str(mirror), "--embedded"]) == 0
    assert main(["data", "verify", "wmt14", "--root", str(root)]) == 0
    assert main(["data", "prepare", "wmt14", "--root", str(root), "--bpe-merges", "300"]) == 0
    data = ParallelData(root / "wmt14/prepared")
    # built with 600+2 europarl, 300 commoncrawl, 200 news-commentary pairs, newstest2013 120, newstest2014 100
    assert {k: len(data.split(k)[0]) for k in ("train", "valid", "test")} == {"train": 1102, "valid": 120, "test": 100}
    assert data.src_dict.symbols == data.tgt_dict.symbols  # one joined dictionary
    assert "state @-@ of @-@ the @-@ art" in (root / "wmt14/prepared/train.en").read_text().replace("@@ ", "")
    assert main(["data", "prepare", "wmt14", "--root", str(root), "--bpe-merges", "300", "--valid-from", "train"]) == 0
    assert len(ParallelData(root / "wmt14/prepared").split("valid")[0]) == 11  # every 100th of 1,102 lines


def test_embedded_pins_catch_a_tampered_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    main(["data", "fixtures", "--out", str(mirror)])
    dev = mirror / "wmt14/dev.tgz"
    dev.write_bytes(dev.read_bytes()[:-2] + b"xx")
    assert main(["data", "fetch", "wmt14", "--root", str(tmp_path / "d"), "--mirror", str(mirror), "--embedded"]) == 2
    assert not (tmp_path / "d/wmt14/raw/dev.tgz").exists()


def test_published_pins_refuse_the_fixture(tmp_path):
    """Without --embedded the published statmt.org checksums apply, and the fixture is not those files."""
    mirror = tmp_path / "mirror"
    main(["data", "fixtures", "--out", str(mirror)])
    assert main(["data", "fetch", "wmt14", "--root", str(tmp_path / "d"), "--mirror", str(mirror)]) == 2
    assert WMT14.files[0].sha256 == "0224c7c710c8a063dfd893b0cc0830202d61f4c75c17eb8e31836103d27d96e7"
    assert WMT14.files[0].size == 657_632_379


def test_recipe_steps_on_known_sentences():
    # tokenizer.perl -a: hyphens split into @-@; normalize-punctuation turns typographic quotes into "
    # (English only: normalize-punctuation.perl moves a period inside the closing quote)
    assert tokenize(["A state-of-the-art \u201cmodel\u201d."], "en") == ["A state @-@ of @-@ the @-@ art &quot; model . &quot;"]
    assert tokenize(["Ein \u201eneues\u201c Modell."], "de") == ["Ein &quot; neues &quot; Modell ."]
    assert remove_non_printing("soft\u00adhyphen\u200bzero") == "soft hyphen zero"  # \\p{C} -> space
    # test side: not normalised, not cleaned; ’ -> '
    assert seg_lines(['<seg id="7">It\u2019s  here</seg>']) == ["It's  here"]
    assert tokenize(["It's"], "en", normalize=False) == ["It &apos;s"]


def test_bad_valid_option():
    from lightformer.datasets.wmt14 import prepare_wmt14

    with pytest.raises(lf.LightformerError, match="valid_from"):
        prepare_wmt14(None, None, valid_from="newstest2012")
