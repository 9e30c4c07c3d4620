"""Hostile but fair input, as regression tests: each case is exit 2, one line on stderr, no
traceback, and nothing written or changed (file hashes compared before and after)."""
import json
import shutil

import pytest
from safetensors import safe_open
from safetensors.torch import save_file

import lightformer as lf
from lightformer.data.indexed import ParallelData
from lightformer.data.synthetic import write_synthetic
from tests.integrity.helpers import lightformer, refused


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    data = write_synthetic(root / "data", "copy", train=200, valid=20, test=20)
    vocab = len(ParallelData(data).src_dict)
    model = lf.build_model("transformer_tiny", vocab, vocab, seed=1)
    lf.save_checkpoint(model, root / "dense.safetensors")
    light = lf.compress(model, rank=4)
    lf.save_checkpoint(light, root / "light.safetensors")
    return root, data


def _edit_header(src, dst, edit):
    with safe_open(str(src), framework="pt") as f:
        header = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    header["lightformer"] = edit(header["lightformer"])
    save_file(tensors, str(dst), metadata=header)


def _meta_edit(change):
    def edit(text):
        meta = json.loads(text)
        change(meta)
        return json.dumps(meta)
    return edit


EDITS = {
    "width": (_meta_edit(lambda m: m["model"].update(embed_dim=64)), "the architecture makes it 64x64"),
    "vocab": (_meta_edit(lambda m: m["model"].update(src_vocab=99)), "the architecture makes it 99x32"),
    "dense_vocab": (_meta_edit(lambda m: m.update(compression=None) or m["model"].update(src_vocab=99)),
                    "does not match its own architecture"),
    "rank": (_meta_edit(lambda m: m["compression"]["groups"][0].update(rank=5)), "does not match its own metadata"),
    "rank_out_of_range": (_meta_edit(lambda m: m["compression"]["groups"][0].update(rank=10_000)), "allowed 1.."),
    "json": (lambda text: text[:-5], "not valid JSON"),
    "missing_key": (_meta_edit(lambda m: m.pop("model")), "lacks 'model'"),
    "missing_field": (_meta_edit(lambda m: m["model"].pop("src_vocab")), "lacks 'src_vocab'"),
    "wrong_type": (_meta_edit(lambda m: m["model"].update(dropout="high")), "dropout='high' is not a valid float"),
    "bool_as_int": (_meta_edit(lambda m: m["model"].update(encoder_layers=True)), "encoder_layers=True"),
    "group_type": (_meta_edit(lambda m: m["compression"]["groups"][0].update(members="x")), "members='x'"),
    "unknown_module": (_meta_edit(lambda m: m["compression"]["groups"][0].update(members=["encoder.nope"])),
                       "plan does not fit"),
}


@pytest.mark.parametrize("case", sorted(EDITS))
def test_edited_checkpoint_metadata_is_refused_before_building(work, tmp_path, case):
    root, _ = work
    edit, expect = EDITS[case]
    bad = tmp_path / "bad.safetensors"
    _edit_header(root / "light.safetensors", bad, edit)
    refused("params", bad, watch=(tmp_path,), expect=expect)
    refused("compress", bad, "--rank", "2", "--out", tmp_path / "out.safetensors", watch=(tmp_path,), expect=expect)


def test_a_flipped_weight_byte_fails_params_verify(work, tmp_path):
    root, _ = work
    data = bytearray((root / "dense.safetensors").read_bytes())
    data[-10] ^= 0x01  # inside the last tensor's bytes
    bad = tmp_path / "flipped.safetensors"
    bad.write_bytes(bytes(data))
    assert lightformer("params", root / "dense.safetensors", "--verify").returncode == 0
    refused("params", bad, "--verify", watch=(tmp_path,), expect="do not match the content digest")


def test_a_directory_given_as_a_checkpoint_says_what_it_is(work, tmp_path):
    (tmp_path / "run").mkdir()
    shutil.copy(work[0] / "dense.safetensors", tmp_path / "run/model.safetensors")
    refused("params", tmp_path / "run", watch=(tmp_path,), expect="is a directory, not a model file; did you mean")


@pytest.mark.parametrize("override,expect", [
    ("lr=-1", "lr=-1.0 is invalid: expected > 0"), ("lr=nan", "lr=nan is invalid"), ("lr=0", "lr=0.0 is invalid"),
    ("max_updates=-5", "max_updates=-5 is invalid: expected >= 0"), ("label_smoothing=1.5", "label_smoothing"),
    ("update_freq=0", "update_freq=0"), ("warmup_updates=-1", "warmup_updates=-1")])
def test_nonsense_training_numbers_are_refused_before_any_run_exists(work, tmp_path, override, expect):
    _, data = work
    refused("train", "--recipe", "synthetic", f"data={data}", f"save_dir={tmp_path / 'run'}", override,
            watch=(tmp_path, data), expect=expect)
    assert not (tmp_path / "run").exists()


def test_nproc_per_node_zero_is_refused(work, tmp_path):
    refused("train", "--nproc-per-node", "0", "--recipe", "synthetic", f"data={work[1]}", f"save_dir={tmp_path / 'r'}",
            watch=(tmp_path,), expect="argument --nproc-per-node: 0 is invalid")


def test_yaml_syntax_errors_name_file_and_line(work, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 0.1\nmodel: {dropout: 0.1\nseed: 1\n")
    refused("train", "--config", bad, f"data={work[1]}", f"save_dir={tmp_path / 'r'}", watch=(tmp_path,),
            expect=f"config file {bad}:")
    line = refused("compress", work[0] / "dense.safetensors", "--spec", bad, "--out", tmp_path / "o.safetensors",
                   watch=(tmp_path,), expect=f"spec file {bad}:")
    assert "YAML syntax error" in line


def test_prepared_directory_without_dictionary_or_with_bad_meta(work, tmp_path):
    _, data = work
    broken = tmp_path / "nodict"
    shutil.copytree(data, broken)
    (broken / "dict.tgt.txt").unlink()
    refused("train", "--recipe", "synthetic", f"data={broken}", f"save_dir={tmp_path / 'r'}", watch=(tmp_path,),
            expect="has no dictionary dict.tgt.txt")
    (broken / "meta.json").write_text("{not json")
    refused("train", "--recipe", "synthetic", f"data={broken}", f"save_dir={tmp_path / 'r'}", watch=(tmp_path,),
            expect="meta.json is malformed")


def test_compress_never_overwrites_its_input(work, tmp_path):
    root, _ = work
    dense = tmp_path / "dense.safetensors"
    shutil.copy(root / "dense.safetensors", dense)
    refused("compress", dense, "--rank", "2", "--out", dense, watch=(tmp_path,), expect="would overwrite the input")
    out = tmp_path / "light.safetensors"
    refused("compress", dense, "--rank", "2", "--out", out, "--report", out, watch=(tmp_path,), expect="same file")
    (tmp_path / "adir").mkdir()
    refused("compress", dense, "--rank", "2", "--out", tmp_path / "adir", watch=(tmp_path,),
            expect="is an existing directory")


@pytest.mark.parametrize("flag,value,expect", [("--max-len-b", "-5", "--max-len-b: -5 is invalid"), ("--lenpen", "nan", "--lenpen: nan is invalid"),
                                               ("--batch-size", "0", "--batch-size: 0 is invalid"), ("--beam", "0", "--beam: 0 is invalid")])
def test_nonsense_decoding_options_are_refused(work, tmp_path, flag, value, expect):
    root, data = work
    refused("generate", root / "dense.safetensors", "--data", data, flag, value, "--out", tmp_path / "h.txt",
            watch=(tmp_path,), expect=expect)


def test_translate_input_lines_are_checked(work, tmp_path):
    root, data = work
    vocab = len(ParallelData(data).src_dict)
    model = lf.build_model("transformer_tiny", vocab, vocab, seed=1, max_source_positions=8)
    lf.save_checkpoint(model, tmp_path / "short.safetensors")
    long_line = tmp_path / "long.txt"
    long_line.write_text("1 2 3\n" + " ".join(["4"] * 20) + "\n")
    refused("translate", tmp_path / "short.safetensors", "--data", data, "--input", long_line, watch=(tmp_path,),
            expect=f"{long_line}:2: 21 tokens")
    r = lightformer("translate", tmp_path / "short.safetensors", "--data", data, "--input", long_line, "--truncate")
    assert r.returncode == 0 and len(r.stdout.decode().splitlines()) == 2
    refused("translate", root / "dense.safetensors", "--data", data, stdin=b"1 2\n3 \xff\xfe 4\n", watch=(tmp_path,),
            expect="stdin:2: not UTF-8")


@pytest.mark.parametrize("record,expect", [('["a"]', "expected an object"), ('{"task": ""}', "task=''"),
                                           ('{"model": "a\\u0000b"}', "model="), ('{"seed": -1}', "seed=-1"),
                                           ('{"seed": true}', "seed=True")])
def test_a_bad_run_record_is_refused_before_anything_runs(work, tmp_path, record, expect):
    root, _ = work
    refused("params", root / "dense.safetensors", "--json", "--record", record, watch=(tmp_path,), expect=expect)


def test_params_record_needs_one_checkpoint_and_json(work, tmp_path):
    root, _ = work
    refused("params", root / "dense.safetensors", "--record", '{"task": "t", "model": "m"}', watch=(tmp_path,),
            expect="give one checkpoint and --json")
