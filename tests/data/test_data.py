import numpy as np
import pytest
import torch

import lightformer as lf
from lightformer.config import EOS, PAD
from lightformer.data.batching import collate, epoch_order, length_buckets
from lightformer.data.dictionary import Dictionary
from lightformer.data.indexed import IndexedTokens, ParallelData, write_split
from lightformer.data.synthetic import write_synthetic


def test_dictionary_follows_fairseq_order_and_padding(tmp_path):
    d = Dictionary.build(["b a c a", "b a"])
    assert d.symbols[:7] == ["<s>", "<pad>", "</s>", "<unk>", "a", "b", "c"]  # by count, ties by name
    assert len(d) == 8 and d.symbols[7] == "madeupword0000"  # padded to a multiple of 8
    d.save(tmp_path / "dict.txt")
    assert (tmp_path / "dict.txt").read_text().splitlines()[:3] == ["a 3", "b 2", "c 1"]
    back = Dictionary.load(tmp_path / "dict.txt")
    assert back.symbols == d.symbols
    ids = back.encode("a zz c")
    assert ids.tolist() == [4, 3, 6, EOS]
    assert back.decode([4, 5, EOS]) == "a b"
    assert Dictionary().decode([], None) == ""


def test_bpe_removal():
    d = Dictionary.build(["wor@@ ld hel@@ lo"])
    assert d.decode(d.encode("hel@@ lo wor@@ ld").tolist(), "@@ ") == "hello world"


def test_indexed_round_trip_and_corruption(tmp_path):
    sents = [torch.tensor([5, 6, EOS]), torch.tensor([7, EOS]), torch.tensor([EOS])]
    write_split(tmp_path / "x", sents)
    idx = IndexedTokens(tmp_path / "x")
    assert len(idx) == 3 and idx.sizes.tolist() == [3, 2, 1]
    assert [idx[i].tolist() for i in range(3)] == [s.tolist() for s in sents]
    (tmp_path / "x.bin").write_bytes((tmp_path / "x.bin").read_bytes()[:-4])
    with pytest.raises(lf.LightformerError, match="corrupt"):
        IndexedTokens(tmp_path / "x")
    with pytest.raises(lf.LightformerError, match="missing"):
        IndexedTokens(tmp_path / "nope")


def test_batches_never_exceed_max_tokens_and_cover_everything():
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(1, 60, 500), rng.integers(1, 60, 500)
    for max_tokens in (60, 128, 1000):
        batches = length_buckets(src, tgt, max_tokens)
        assert sorted(np.concatenate(batches).tolist()) == list(range(500))
        for b in batches:
            assert np.maximum(src[b], tgt[b]).max() * len(b) <= max_tokens
    with pytest.raises(lf.LightformerError, match="more than max_tokens"):
        length_buckets(src, tgt, 30)


def test_epoch_order_is_a_function_of_seed_and_epoch():
    assert epoch_order(50, 1, 3) == epoch_order(50, 1, 3)
    assert epoch_order(50, 1, 3) != epoch_order(50, 1, 4)
    assert sorted(epoch_order(50, 2, 1)) == list(range(50))


def test_collate_pads_like_fairseq():
    b = collate([torch.tensor([5, EOS]), torch.tensor([6, 7, EOS])], [torch.tensor([8, 9, EOS]), torch.tensor([4, EOS])])
    assert b["src_tokens"].tolist() == [[PAD, 5, EOS], [6, 7, EOS]]  # left padding
    assert b["target"].tolist() == [[8, 9, EOS], [4, EOS, PAD]]
    assert b["prev_output_tokens"].tolist() == [[EOS, 8, 9], [EOS, 4, PAD]]
    assert b["ntokens"] == 5


def test_synthetic_task_is_a_prepared_directory(tmp_path):
    root = write_synthetic(tmp_path / "syn", "reverse", train=30, valid=5, test=5)
    data = ParallelData(root)
    src, tgt = data.split("train")
    assert len(src) == 30
    assert data.tgt_dict.decode(tgt[0].tolist()) == " ".join(reversed(data.src_dict.decode(src[0].tolist()).split()))
    with pytest.raises(lf.LightformerError, match="not a prepared data directory"):
        ParallelData(tmp_path)


def test_synthetic_sentence_lengths_are_as_asked_and_impossible_ones_refused(tmp_path):
    from lightformer.data.indexed import ParallelData
    from lightformer.data.synthetic import write_synthetic

    root = write_synthetic(tmp_path / "s", train=200, valid=5, test=5, vocab=50, min_len=20, max_len=30)
    src, _ = ParallelData(root).split("train")
    assert 21 <= src.sizes.min() and src.sizes.max() <= 31  # with </s>
    with pytest.raises(lf.LightformerError, match="min_len <= max_len"):
        write_synthetic(tmp_path / "t", min_len=9, max_len=3)
