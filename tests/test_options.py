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
