"""Our metrics equal the reference tools' own command-line output on the same files."""
import csv
import subprocess
import sys
from pathlib import Path

import pytest

import lightformer as lf
from lightformer.glue.metrics import glue_metrics
from lightformer.metrics.bleu import (
    compound_split,
    compound_split_bleu,
    sacre_bleu,
    tokenized_bleu,
)
from lightformer.metrics.rouge import rouge

HYPS = ["the cat is on the mat .", "hello there kenobi", "a well-known state-of-the-art model runs fast",
        "nothing matches here at all", "we test the bleu score with several sentences ."]
REFS = ["the cat sat on the mat .", "hello there general kenobi", "a well-known state-of-the-art system runs quickly",
        "completely different words", "we test the bleu score with many sentences ."]


def _write(tmp_path: Path):
    (tmp_path / "hyp.txt").write_text("\n".join(HYPS) + "\n")
    (tmp_path / "ref.txt").write_text("\n".join(REFS) + "\n")
    return tmp_path / "hyp.txt", tmp_path / "ref.txt"


def _sacrebleu_cli(*args) -> float:
    exe = Path(sys.executable).parent / "sacrebleu"
    out = subprocess.run([str(exe), *map(str, args), "-b", "-w", "6"], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def test_tokenized_bleu_equals_sacrebleu_cli(tmp_path):
    hyp, ref = _write(tmp_path)
    ours = tokenized_bleu(HYPS, REFS)
    assert ours["score"] == pytest.approx(_sacrebleu_cli(ref, "-i", hyp, "-tok", "none"), abs=1e-4)
    assert "tok:none" in ours["signature"] and "tokenized" in ours["label"]


def test_detokenized_sacrebleu_equals_cli_with_signature(tmp_path):
    hyp, ref = _write(tmp_path)
    ours = sacre_bleu(HYPS, REFS, test_set="wmt14/full", langpair="en-de")
    assert ours["score"] == pytest.approx(_sacrebleu_cli(ref, "-i", hyp), abs=1e-4)
    assert "tok:13a" in ours["signature"] and "test:wmt14/full" in ours["signature"]


def test_compound_split_rule():
    assert compound_split("a well-known state-of-the-art model") == \
        "a well ##AT##-##AT## known state ##AT##-##AT## of ##AT##-##AT## the ##AT##-##AT## art model"
    assert compound_split("a - b") == "a - b"  # spaced hyphens are not compounds
    assert compound_split("a-b-c") == "a ##AT##-##AT## b-c"  # Perl's non-overlapping /g, kept on purpose
    hyp, ref = ["state-of-the-art works"], ["state-of-the-art system"]
    assert compound_split_bleu(hyp, ref)["score"] > tokenized_bleu(hyp, ref)["score"]


def test_rouge_equals_rouge_score_cli(tmp_path):
    hyp, ref = _write(tmp_path)
    out = tmp_path / "rouge.csv"
    subprocess.run([sys.executable, "-m", "rouge_score.rouge", f"--target_filepattern={ref}",
                    f"--prediction_filepattern={hyp}", f"--output_filename={out}", "--use_stemmer=true",
                    "--aggregate=false", "--rouge_types=rouge1,rouge2,rougeL"], check=True, capture_output=True)
    rows = list(csv.DictReader(open(out)))
    ours = rouge(HYPS, REFS)["scores"]
    for t in ("rouge1", "rouge2", "rougeL"):
        cli_mean = 100 * sum(float(r[f"{t}-F"]) for r in rows) / len(rows)
        assert ours[t] == pytest.approx(cli_mean, abs=1e-3)


def test_rouge_lsum_uses_newline_sentences():
    hyp, ref = ["x y z\na b c"], ["a b c\nx y z"]  # same sentences, other order
    s = rouge(hyp, ref)["scores"]
    assert s["rougeLsum"] == pytest.approx(100.0)  # union LCS per reference sentence
    assert s["rougeL"] == pytest.approx(50.0)  # one LCS over the flat token sequence


def test_glue_metrics():
    assert glue_metrics("sst2", [1, 0, 1, 1], [1, 0, 0, 1])["scores"]["accuracy"] == 75.0
    mrpc = glue_metrics("mrpc", [1, 0, 1, 1], [1, 0, 0, 1])["scores"]
    assert mrpc["f1"] == pytest.approx(100 * 2 * 2 / (2 * 2 + 1 + 0))
    # Matthews: tp=2 tn=1 fp=1 fn=0 -> (2*1 - 1*0) / sqrt(3*2*2*1)
    assert glue_metrics("cola", [1, 0, 1, 1], [1, 0, 0, 1])["scores"]["matthews"] == pytest.approx(100 * 2 / 12 ** 0.5)
    sts = glue_metrics("stsb", [0.1, 0.4, 0.35, 0.8], [0, 0.5, 0.3, 1])["scores"]
    assert sts["spearman"] == pytest.approx(100.0)
    with pytest.raises(lf.LightformerError, match="hidden"):
        glue_metrics("rte", [0, 1], [-1, -1])
    with pytest.raises(lf.LightformerError, match="unknown"):
        glue_metrics("squad", [0], [0])


def test_compound_split_equals_fairseq_perl_one_liner():
    lines = HYPS + REFS + ["a-b-c x - y re-evaluate e-mail 3-4", "--a-- b-"]
    perl = subprocess.run(["perl", "-ple", r"s{(\S)-(\S)}{$1 ##AT##-##AT## $2}g"], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, check=True).stdout.splitlines()
    assert [compound_split(x) for x in lines] == perl
