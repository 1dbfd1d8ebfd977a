"""Arguments of the scripts: --config_overrides read as transformers' `PretrainedConfig.update_from_string` reads them,
and a single JSON file in place of the command line, as transformers' example scripts accept."""

import json

import pytest
from transformers import PretrainedConfig, TrainingArguments

from litebert import LiteBertConfig
from litebert.cli.common import parse_config_overrides
from litebert.cli.finetune import parse_arguments as parse_finetuning_arguments
from litebert.cli.glue import GlueArguments
from litebert.cli.pretrain import build_model
from litebert.cli.pretrain import parse_arguments as parse_pretraining_arguments

OVERRIDES = "hidden_size=64,sharing=ffn,tupe_untie_cls=no,hidden_dropout_prob=0,position_embedding_type=tupe"


def test_overrides_take_the_types_update_from_string_gives():
    preset = LiteBertConfig.from_preset("albert-base")
    reference = LiteBertConfig.from_preset("albert-base")
    PretrainedConfig.update_from_string(reference, OVERRIDES)
    parsed = parse_config_overrides(OVERRIDES, preset)
    assert parsed == {name: getattr(reference, name) for name in parsed}
    assert parsed == {"hidden_size": 64, "sharing": "ffn", "tupe_untie_cls": False, "hidden_dropout_prob": 0.0,
                      "position_embedding_type": "tupe"}
    assert type(parsed["hidden_dropout_prob"]) is float and type(parsed["tupe_untie_cls"]) is bool
    assert preset.hidden_size == 768  # the config read from is left as it was


@pytest.mark.parametrize("text,message", [
    ("hidden_size", "'hidden_size' is not of the form name=value"),
    ("hidden_size=64,,sharing=ffn", "'' is not of the form name=value"),
    ("hidden_size=1=2", "'hidden_size=1=2' is not of the form name=value"),
    ("hiden_size=64", "key hiden_size isn't in the original config dict"),
    ("tupe_untie_cls=maybe", "can't derive true or false from maybe"),
    ("num_hidden_layers=2.5", "invalid literal for int() with base 10: '2.5'"),
])
def test_a_bad_override_names_itself(text, message):
    with pytest.raises(SystemExit, match="--config_overrides") as raised:
        parse_config_overrides(text, LiteBertConfig())
    assert message in str(raised.value)


def test_the_built_model_is_validated_with_its_overrides(wordpiece_tokenizer):
    model_args, *_ = parse_pretraining_arguments(["--config_overrides", "hidden_size=30,num_attention_heads=4"])
    with pytest.raises(ValueError, match="num_attention_heads=4"):
        build_model(model_args, wordpiece_tokenizer)
    model_args.config_overrides = "hidden_size=32,num_attention_heads=4,num_hidden_layers=2,intermediate_size=64"
    config = build_model(model_args, wordpiece_tokenizer).config
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (32, 4, 2)
    assert config.vocab_size == len(wordpiece_tokenizer)


FINETUNING = (
    ["--model_name_or_path", "runs/m", "--task_name", "rte", "--output_dir", "out", "--learning_rate", "3e-5",
     "--max_seq_length", "96", "--do_train", "--num_train_epochs", "2"],
    {"model_name_or_path": "runs/m", "task_name": "rte", "output_dir": "out", "learning_rate": 3e-5,
     "max_seq_length": 96, "do_train": True, "num_train_epochs": 2},
)
PRETRAINING = (
    ["--preset", "tupe-base", "--config_overrides", "hidden_size=256", "--train_file", "a.txt", "b.txt", "--tnf",
     "--output_dir", "out", "--max_steps", "10", "--whole_word_masking", "false"],
    {"preset": "tupe-base", "config_overrides": "hidden_size=256", "train_file": ["a.txt", "b.txt"], "tnf": True,
     "output_dir": "out", "max_steps": 10, "whole_word_masking": False},
)


@pytest.mark.parametrize("parse,arguments", [
    (lambda argv: parse_finetuning_arguments(GlueArguments, argv), FINETUNING),
    (parse_pretraining_arguments, PRETRAINING),
])
def test_an_arguments_file_parses_as_the_command_line(tmp_path, parse, arguments):
    command_line, file_arguments = arguments
    path = tmp_path / "arguments.json"
    path.write_text(json.dumps(file_arguments))
    from_file, from_command_line = parse([str(path)]), parse(command_line)
    assert list(map(fields_of, from_file)) == list(map(fields_of, from_command_line))


def fields_of(arguments: object) -> dict:
    # TrainingArguments.to_dict leaves out the accelerator state it creates, which differs per instance
    return arguments.to_dict() if isinstance(arguments, TrainingArguments) else vars(arguments)
