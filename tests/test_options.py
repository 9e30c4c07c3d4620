"""The one config loader: preset, then file, then key=value, typed by the field; unknown keys
named with their closest match; the same loader behind training, model, compression and GLUE
options."""
import pytest

from lightformer.config import ModelConfig
from lightformer.errors import LightformerError
from lightformer.glue.train import GlueConfig
from lightformer.options import build, parse_pairs, parse_typed
from lightformer.train.recipes import TrainConfig, load_train_config


@pytest.mark.parametrize("annotation, text, value", [
    ("bool", "on", True), ("bool", "False", False), ("int", "12", 12), ("float", "1e-3", 1e-3),
    ("float", "3", 3.0), ("str", "none", "none"), ("str | None", "none", None), ("str | None", "@@ ", "@@ "),
    ("int | None", "null", None), ("int | dict", "{all: 8}", {"all": 8}), ("tuple", "[0.9, 0.98]", [0.9, 0.98]),
    ("dict", "{dropout: 0.1}", {"dropout": 0.1}), ("list[str] | None", "[body, ffn]", ["body", "ffn"]),
])
def test_values_are_typed_by_their_field(annotation, text, value):
    assert parse_typed("k", text, annotation) == value


@pytest.mark.parametrize("annotation, text, message", [
    ("bool", "maybe", "k expects true/false"), ("int", "1.5", "k expects int"), ("float", "fast", "k expects float"),
    ("dict", "[1, 2]", "k expects dict"), ("tuple", "3", "k expects tuple"),
])
def test_a_value_of_the_wrong_type_is_refused(annotation, text, message):
    with pytest.raises(LightformerError, match=message):
        parse_typed("k", text, annotation)


def test_preset_then_file_then_pairs_later_wins_and_model_options_merge(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("lr: 0.001\nmax_tokens: 2048\nmodel: {dropout: 0.2}\n")
    cfg = build(TrainConfig, {"lr": 5e-4, "max_tokens": 4096, "model": {"share_all_embeddings": True}}, str(f),
                ["max_tokens=1024", "model.dropout=0.3", "eval_bleu=no"], what="config key", nested={"model": ModelConfig})
    assert (cfg.lr, cfg.max_tokens, cfg.eval_bleu) == (0.001, 1024, False)
    assert cfg.model == {"share_all_embeddings": True, "dropout": 0.3}  # merged key by key, typed by ModelConfig


@pytest.mark.parametrize("pairs, message", [
    (["max_updatez=3"], "unknown config key 'max_updatez'; did you mean 'max_updates'"),
    (["model.dropuot=0.1"], "unknown model option 'dropuot'; did you mean 'dropout'"),
    (["model.dropout=lots"], "model.dropout expects float"),
    (["lr"], "'lr' is not key=value"),
])
def test_training_options_are_checked_where_they_are_given(pairs, message):
    with pytest.raises(LightformerError, match=message):
        load_train_config("synthetic", None, pairs)


def test_an_unknown_key_in_a_file_is_refused_too(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("warmup: 10\n")
    with pytest.raises(LightformerError, match="unknown config key 'warmup'; did you mean 'warmup_updates'"):
        load_train_config(None, str(f))


def test_the_same_loader_types_glue_and_model_options():
    assert build(GlueConfig, pairs=["lr=3e-5", "epochs=2", "bf16=false"], what="GLUE option") == \
        GlueConfig(lr=3e-5, epochs=2, bf16=False)
    with pytest.raises(LightformerError, match="unknown GLUE option 'epoch'; did you mean 'epochs'"):
        build(GlueConfig, pairs=["epoch=2"], what="GLUE option")
    assert parse_pairs(ModelConfig, ["share_all_embeddings=true", "encoder_layers=3"], "model option") == \
        {"share_all_embeddings": True, "encoder_layers": 3}


# --- command-line options generated from the dataclasses ------------------------------------------
import argparse  # noqa: E402
import dataclasses  # noqa: E402

from lightformer.cli import build_parser  # noqa: E402
from lightformer.compress.spec import CompressionSpec  # noqa: E402
from lightformer.datasets.pipeline import DataOptions  # noqa: E402
from lightformer.decode.beam import SearchConfig  # noqa: E402
from lightformer.options import add_options, command_flags, flag_of, from_args  # noqa: E402
from lightformer.speed.bench import SpeedConfig  # noqa: E402
from lightformer.train.bench import TrainBenchConfig  # noqa: E402

# the dataclass behind each command's options
COMMANDS = {SearchConfig: ["generate", "c", "--data", "d", "--out", "o"], SpeedConfig: ["speed"],
            CompressionSpec: ["compress", "c", "--out", "o"], DataOptions: ["data", "prepare", "iwslt14"],
            TrainBenchConfig: ["bench", "train"]}


def _options(cls):
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


@pytest.mark.parametrize("cls", COMMANDS, ids=lambda c: c.__name__)
def test_every_option_field_is_a_flag_of_its_command_with_the_libraries_default(cls):
    args = build_parser().parse_args(COMMANDS[cls])
    built = from_args(cls, args) if cls is not CompressionSpec else from_args(cls, args, ratio=2.0)
    defaults = cls() if cls is not CompressionSpec else cls(ratio=2.0)
    assert built == defaults  # nothing given: every default is the dataclass's own
    for f in _options(cls):
        assert f.metadata["help"], f"{cls.__name__}.{f.name} has no help"
        assert not hasattr(args, f.name)  # unset options are left for the dataclass


def test_a_flag_sets_its_field_typed_and_a_switch_flips_its_default():
    args = build_parser().parse_args(["speed", "--beam", "2", "--lenpen", "0.6", "--free-length", "--no-fast-path",
                                      "--engine", "eager", "compiled", "--threads", "1"])
    cfg = from_args(SpeedConfig, args)
    assert (cfg.beam, cfg.lenpen, cfg.fixed_length, cfg.fast, cfg.engines, cfg.threads) == \
        (2, 0.6, False, False, ("eager", "compiled"), 1)
    spec = from_args(CompressionSpec, build_parser().parse_args(
        ["compress", "c", "--out", "o", "--ratio", "3.8", "--roles", "body", "src_embed", "--share-qkv"]))
    assert spec.roles[-1] == "src_embed" and spec.share_qkv and spec.ratio == 3.8


@pytest.mark.parametrize("cls", COMMANDS, ids=lambda c: c.__name__)
def test_a_value_out_of_range_is_refused_by_the_parser_and_the_dataclass_alike(cls, capsys):
    checked = [f for f in _options(cls) if f.metadata.get("check")]
    assert checked or cls is DataOptions
    for f in checked:
        bad = "nan" if f.metadata["check"] == "finite" else "-1"
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args([*COMMANDS[cls], flag_of(f), bad])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"argument {flag_of(f)}: {bad} is invalid: expected" in err
        extra = {"ratio": 2.0} if cls is CompressionSpec and f.name != "ratio" else {}
        with pytest.raises(LightformerError, match=rf"{f.name}={bad} is (invalid|out of range)"):
            cls(**{f.name: int(bad) if bad == "-1" else float(bad)} | extra)


def test_add_options_reads_only_option_fields_and_choices():
    p = argparse.ArgumentParser()
    add_options(p, CompressionSpec)
    flags = {a.dest: a for a in p._actions}
    assert "rank" not in flags  # a plain field is the library's alone (rank has its own parser)
    assert flags["init"].choices and "svd" in flags["init"].choices and flags["share_roles"].nargs == "+"


def test_command_flags_pass_only_what_is_set():
    assert command_flags({"beam": 4, "cuda_graph": True, "int8": False, "detok": None, "engine": ["eager", "compiled"],
                          "calib_max_tokens": 2048}) == \
        ["--beam", "4", "--cuda-graph", "--engine", "eager", "compiled", "--calib-max-tokens", "2048"]
