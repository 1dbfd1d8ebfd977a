import logging

import pytest
from transformers import AutoConfig

from litebert import PRESETS, LiteBertConfig


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("hidden_size", -8, "positive integer"),
        ("vocab_size", 0, "positive integer"),
        ("embedding_size", 0, "positive integer"),
        ("num_hidden_layers", 0, "positive integer"),
        ("intermediate_size", -1, "positive integer"),
        ("max_position_embeddings", 0, "positive integer"),
        ("inner_group_num", 0, "positive integer"),
        ("num_attention_heads", 5, "divisor of hidden_size=768"),
        ("num_hidden_groups", 5, "divisor of num_hidden_layers=12"),
        ("sharing", "layers", "one of ('all', 'attention', 'ffn', 'none')"),
        ("position_embedding_type", "rotary", "one of ('absolute', 'tupe')"),
        ("relative_attention_num_buckets", 7, "even number >= 4"),
        ("relative_attention_num_buckets", 32, "unless position_embedding_type='tupe'"),
        ("hidden_dropout_prob", 1.5, "probability"),
        ("attention_probs_dropout_prob", -0.1, "probability"),
        ("hidden_act", "swishy", "one of"),
        ("layer_norm_eps", 0.0, "positive number"),
        ("initializer_range", -0.02, "positive number"),
        ("pad_token_id", 30000, "vocab_size=30000"),
        ("chunk_size_feed_forward", -2, ">= 0"),
    ],
)
def test_invalid_field_names_field_value_and_allowed(field, value, allowed):
    with pytest.raises(ValueError) as error:
        LiteBertConfig(**{field: value})
    message = str(error.value)
    assert f"{field}={value!r}" in message
    assert allowed in message


def test_defaults_are_albert_base_and_log_no_warnings(caplog):
    with caplog.at_level(logging.WARNING):
        config = LiteBertConfig()
    assert caplog.records == []
    assert (config.embedding_size, config.hidden_size, config.num_hidden_layers) == (128, 768, 12)
    assert config.sharing == "all" and config.hidden_dropout_prob == 0.0 and config.attention_probs_dropout_prob == 0.0


def test_presets_have_published_shapes_and_accept_overrides():
    large = LiteBertConfig.from_preset("albert-large")
    assert (large.hidden_size, large.num_hidden_layers, large.num_attention_heads, large.intermediate_size) == (
        1024,
        24,
        16,
        4096,
    )
    xxlarge = LiteBertConfig.from_preset("albert-xxlarge", sharing="ffn")
    assert (xxlarge.hidden_size, xxlarge.intermediate_size, xxlarge.num_attention_heads) == (4096, 16384, 64)
    assert xxlarge.sharing == "ffn"
    bert = LiteBertConfig.from_preset("bert-base")
    assert bert.embedding_size == bert.hidden_size == 768 and bert.sharing == "none"
    assert set(PRESETS) >= {"albert-base", "albert-large", "albert-xlarge", "albert-xxlarge", "bert-base", "bert-large"}


def test_tupe_r_distance_must_exceed_the_exact_buckets():
    with pytest.raises(ValueError, match="relative_attention_max_distance=8 is invalid.*= 8"):
        LiteBertConfig(position_embedding_type="tupe", relative_attention_num_buckets=32,
                       relative_attention_max_distance=8)


def test_tupe_presets():
    tupe = LiteBertConfig.from_preset("tupe-base")
    assert tupe.position_embedding_type == "tupe" and tupe.tupe_untie_cls and tupe.relative_attention_num_buckets == 0
    assert tupe.hidden_size == 768 and tupe.embedding_size == 128 and tupe.sharing == "all"
    tupe_r = LiteBertConfig.from_preset("tupe-r-base")
    assert (tupe_r.relative_attention_num_buckets, tupe_r.relative_attention_max_distance) == (32, 128)


def test_unknown_preset_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="preset='albert-huge'.*albert-base, albert-large"):
        LiteBertConfig.from_preset("albert-huge")


def test_preset_override_is_validated():
    with pytest.raises(ValueError, match="num_attention_heads=7"):
        LiteBertConfig.from_preset("albert-base", num_attention_heads=7)


def test_config_round_trip_through_autoconfig(tmp_path):
    config = LiteBertConfig(sharing="attention", num_hidden_groups=3, inner_group_num=2, embedding_size=64)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, LiteBertConfig)
    saved, original = loaded.to_dict(), config.to_dict()
    saved.pop("_name_or_path"), original.pop("_name_or_path")
    assert saved == original


def test_invalid_saved_config_is_refused_on_load(tmp_path):
    LiteBertConfig(sharing="ffn").save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    assert '"sharing": "ffn"' in path.read_text()
    path.write_text(path.read_text().replace('"sharing": "ffn"', '"sharing": "every"'))
    with pytest.raises(ValueError, match="sharing='every'"):
        AutoConfig.from_pretrained(tmp_path)
