"""The code blocks of README.md and docs/*.md run as written.

```python blocks: the blocks of one file run in order, in one fresh interpreter (as a reader runs them one after the
other, so later blocks see the names of earlier ones), in an empty temporary directory, offline. Hub ids that the
blocks load (`your-name/...`, placeholders for the reader's own repository) are served from a Hub cache laid out in
that directory, holding a tiny LiteBERT classifier with a real WordPiece tokenizer: these machines have no network.

```bash blocks: continuation lines are joined, comments dropped, and `;`, `&&`, `||` and `|` separate commands. A
command that runs a LiteBERT script (`litebert-NAME`, or `-m litebert.cli.NAME` after python, torchrun or accelerate
launch) or a benchmark (`python benchmarks/NAME.py`) may use only flags that the script's --help lists; `make TARGET`
must name a Makefile target. The quick commands also run, in a temporary directory: `litebert-convert` (its source
folder laid out as a tiny BERT with a real tokenizer), `litebert-publish ... --dry-run` and `litebert-export` (their
folder laid out as the tiny classifier). Training runs, uploads, installs and shell plumbing (pip, hf, mkdir, ln,
loops) are not run.

Fenced blocks without a language (file trees, sample output) are not code.
"""

import configparser
import contextlib
import importlib
import io
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_config_kwargs

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
PLACEHOLDER_HUB_ID = re.compile(r"""["'](your-name/[\w.-]+)["']""")
SEPARATORS = {";", "&&", "||", "|", "&"}

# Runs the blocks of one file in one namespace; each block is compiled under its file and line, so that a traceback
# points into the document.
RUNNER = """
import json, sys
namespace = {"__name__": "__main__"}
for origin, source in json.load(open(sys.argv[1], encoding="utf-8")):
    print(f"--- {origin}", flush=True)
    exec(compile(source, origin, "exec"), namespace)
"""


def code_blocks(path: Path, language: str) -> list[tuple[int, str]]:
    """(line number of the block's first code line, code) for every ```language block of `path`."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, match.start(2)) + 1, match.group(2)) for match in FENCE.finditer(text)
            if match.group(1) == language]


def documents_with(language: str) -> list[Path]:
    return [path for path in DOCS if code_blocks(path, language)]


def console_scripts() -> dict[str, str]:
    """litebert-NAME -> "module:function", from setup.cfg."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    entries = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(tuple(part.strip() for part in entry.split("=")) for entry in entries)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, wordpiece_tokenizer) -> Path:
    """A tiny LiteBERT classifier saved as a script leaves it: safetensors, config with auto_map, code, tokenizer."""
    from litebert import LiteBertConfig, LiteBertForSequenceClassification

    config = LiteBertConfig(**tiny_config_kwargs(vocab_size=wordpiece_tokenizer.vocab_size, num_hidden_layers=2,
                                                 num_attention_heads=2, max_position_embeddings=128,
                                                 pad_token_id=wordpiece_tokenizer.pad_token_id))
    folder = tmp_path_factory.mktemp("classifier")
    LiteBertForSequenceClassification(config).save_pretrained(folder)
    wordpiece_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory, wordpiece_tokenizer) -> Path:
    """A tiny transformers BERT checkpoint with its tokenizer, as `litebert-convert` reads one."""
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(vocab_size=wordpiece_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=37, max_position_embeddings=128)
    folder = tmp_path_factory.mktemp("bert")
    BertForMaskedLM(config).save_pretrained(folder)
    wordpiece_tokenizer.save_pretrained(folder)
    return folder


def seed_hub_cache(cache: Path, repo_ids: set[str], model_folder: Path) -> None:
    """Lay `model_folder` out as the cached main revision of each repository, as a download leaves it."""
    revision = "0" * 40
    for repo_id in repo_ids:
        repository = cache / f"models--{repo_id.replace('/', '--')}"
        (repository / "refs").mkdir(parents=True)
        (repository / "refs" / "main").write_text(revision)
        shutil.copytree(model_folder, repository / "snapshots" / revision)


@pytest.mark.parametrize("document", documents_with("python"), ids=lambda path: path.name)
def test_python_blocks_run_in_order_as_written(document, classifier, tmp_path):
    blocks = code_blocks(document, "python")
    seed_hub_cache(tmp_path / "hub", {hub_id for _, code in blocks for hub_id in PLACEHOLDER_HUB_ID.findall(code)},
                   classifier)
    script = tmp_path / "blocks.json"
    script.write_text(json.dumps([(f"{document.name}:{line}", code) for line, code in blocks]), encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"),
                   "HF_HOME": str(tmp_path / "hf-home"), "MPLBACKEND": "Agg", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run([sys.executable, "-c", RUNNER, str(script)], cwd=work, env=environment,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{document.name}: a block failed\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    assert result.stdout.count("--- ") == len(blocks)


def bash_commands(block: str) -> list[list[str]]:
    """The commands of a bash block as token lists."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command = []
        for token in lexer:
            if token in SEPARATORS:
                commands.append(command)
                command = []
            else:
                command.append(token)
        commands.append(command)
    return [command for command in commands if command]


def script_and_arguments(command: list[str]) -> tuple[str, list[str]] | None:
    """("litebert-NAME" or "benchmarks/NAME.py", its arguments) when `command` runs one, else None."""
    if command[0].startswith("litebert-"):
        return command[0], command[1:]
    if "-m" in command and command.index("-m") + 1 < len(command):
        module = command[command.index("-m") + 1]
        if module.startswith("litebert.cli."):
            return f"litebert-{module.rsplit('.', 1)[1]}", command[command.index("-m") + 2:]
    if command[0] in ("python", "python3") and len(command) > 1 and command[1].startswith("benchmarks/"):
        return command[1], command[2:]
    return None


_HELP = {}


def help_text(script: str, monkeypatch) -> str:
    """What `script --help` prints, computed in this process (the console script's main, or the benchmark file)."""
    if script not in _HELP:
        output = io.StringIO()
        with contextlib.redirect_stdout(output), pytest.raises(SystemExit), monkeypatch.context() as patch:
            if script.startswith("litebert-"):
                assert script in console_scripts(), f"{script} is not a console script of setup.cfg"
                module, function = console_scripts()[script].split(":")
                getattr(importlib.import_module(module), function)(["--help"])
            else:
                patch.setattr(sys, "argv", [script, "--help"])
                patch.syspath_prepend(str((ROOT / script).parent))  # as `python benchmarks/NAME.py` has it
                runpy.run_path(str(ROOT / script), run_name="__main__")
        _HELP[script] = output.getvalue()
    return _HELP[script]


def unknown_flags(arguments: list[str], help_output: str) -> list[str]:
    known = set(re.findall(r"(?<![\w-])--[\w-]+", help_output))
    return [argument.split("=")[0] for argument in arguments
            if argument.startswith("--") and argument.split("=")[0] not in known]


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


def run_quick_command(script: str, arguments: list[str], classifier: Path, tiny_bert: Path) -> bool:
    """Run `litebert-convert`, `litebert-publish --dry-run` and `litebert-export` in the current directory, their
    input folder laid out first; True when the command was one of these."""
    if script == "litebert-convert":
        shutil.copytree(tiny_bert, arguments[0])
        from litebert.cli import convert

        convert.main(arguments)
        return True
    if script == "litebert-publish" and "--dry-run" in arguments:
        shutil.copytree(classifier, arguments[0])
        from litebert.cli import publish

        publish.main(arguments)
        return True
    if script == "litebert-export":
        shutil.copytree(classifier, arguments[0])
        from litebert.cli import export

        export.main(arguments)
        return True
    return False


# What the rule runs: a change that stops running these would leave the commands unchecked.
EXPECTED_RUNS = {"README.md": ["litebert-convert", "litebert-publish"], "deployment.md": ["litebert-export"]}


@pytest.mark.parametrize("document", documents_with("bash"), ids=lambda path: path.name)
def test_bash_commands_use_existing_flags_and_the_quick_ones_run(document, classifier, tiny_bert, tmp_path,
                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    commands = [command for _, block in code_blocks(document, "bash") for command in bash_commands(block)]
    assert commands
    ran = []
    for command in commands:
        if command[0] == "make":
            assert set(command[1:]) <= makefile_targets(), f"{document.name}: {shlex.join(command)}"
        found = script_and_arguments(command)
        if found is None:
            continue
        script, arguments = found
        assert not unknown_flags(arguments, help_text(script, monkeypatch)), \
            f"{document.name}: {shlex.join(command)} uses flags that {script} --help does not list"
        if run_quick_command(script, arguments, classifier, tiny_bert):
            ran.append(script)
    assert sorted(ran) == EXPECTED_RUNS.get(document.name, [])


def test_the_flag_check_names_a_misspelt_flag(monkeypatch):
    command = bash_commands("litebert-glue --task_name rte --max_seq_lenght 128 \\\n    --output_dir=out  # a typo\n")
    assert command == [["litebert-glue", "--task_name", "rte", "--max_seq_lenght", "128", "--output_dir=out"]]
    script, arguments = script_and_arguments(command[0])
    assert unknown_flags(arguments, help_text(script, monkeypatch)) == ["--max_seq_lenght"]
