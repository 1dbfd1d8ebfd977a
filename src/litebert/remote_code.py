"""Load a saved LiteBERT folder the way someone without the package does: stock transformers, `trust_remote_code`.

The folder's code runs only in a fresh interpreter: in a temporary directory, offline, with its own Hugging Face
home (so a fresh modules cache and no stored login) and without the environment's tokens, so that code from an
untrusted folder cannot reach the Hub with the caller's credentials. It still runs with the caller's permissions."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

# Runs in a fresh interpreter in which `import litebert` fails, so only the code saved in the folder can be used.
_LOADER = """
import sys
sys.modules["litebert"] = None
import torch, transformers
from safetensors.torch import load_file, save_file
folder, auto_class, io_path = sys.argv[1], sys.argv[2], sys.argv[3]
model = getattr(transformers, auto_class).from_pretrained(folder, trust_remote_code=True).eval()
inputs = load_file(io_path + "/inputs.safetensors")
with torch.no_grad():
    outputs = model(**inputs)
first = outputs[0] if not hasattr(outputs, "last_hidden_state") else outputs.last_hidden_state
save_file({"output": first.contiguous()}, io_path + "/outputs.safetensors")
print(type(model).__module__ + "." + type(model).__name__)
"""


def run_without_litebert(
    folder: str | Path, auto_class: str, inputs: dict[str, torch.Tensor]
) -> tuple[str, torch.Tensor]:
    """Load `folder` with `transformers.<auto_class>` in a process that cannot import litebert, run `inputs`.

    Returns the loaded class's qualified name and the model's first output (logits or last hidden state).
    Raises RuntimeError with the subprocess's error output when loading or running fails.
    """
    with tempfile.TemporaryDirectory() as io_path:
        save_file({name: tensor.contiguous() for name, tensor in inputs.items()}, f"{io_path}/inputs.safetensors")
        result = _run_isolated([_LOADER, str(Path(folder).resolve()), auto_class, io_path], io_path)
        if result.returncode != 0:
            raise RuntimeError(f"Loading {folder} with {auto_class} without litebert failed:\n{result.stderr[-4000:]}")
        return result.stdout.strip().splitlines()[-1], load_file(f"{io_path}/outputs.safetensors")["output"]


def _run_isolated(arguments: list[str], work_dir: str) -> subprocess.CompletedProcess:
    """`python -c` with `arguments` in `work_dir`, offline, with a Hugging Face home inside `work_dir` and without
    any TOKEN variable (HF_TOKEN, HUGGING_FACE_HUB_TOKEN, HF_TOKEN_PATH, ...)."""
    environment = {name: value for name, value in os.environ.items() if "TOKEN" not in name.split("_")}
    environment.update(HF_HOME=str(Path(work_dir) / "hf-home"), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-c", *arguments], capture_output=True, text=True, cwd=work_dir,
                          env=environment)


_FILL_MASK = """
import json, sys
sys.modules["litebert"] = None
from transformers import pipeline
folder, sentences = sys.argv[1], json.loads(sys.argv[2])
fill_mask = pipeline("fill-mask", model=folder, trust_remote_code=True, device="cpu", top_k=3)
print(json.dumps([[(p["token_str"], round(p["score"], 3)) for p in fill_mask(s)] for s in sentences]))
"""


def fill_mask_without_litebert(folder: str | Path, sentences: list[str]) -> list[list[tuple[str, float]]]:
    """Top-3 `pipeline("fill-mask")` predictions for each sentence, computed in a process that cannot import
    litebert (stock transformers with `trust_remote_code=True`)."""
    return json.loads(run_script_without_litebert(_FILL_MASK, "fill-mask", folder, json.dumps(sentences)))


_IMPORT_CHECK = """
import sys
sys.modules["litebert"] = None
from transformers import AutoConfig, AutoTokenizer
from transformers.dynamic_module_utils import get_class_from_dynamic_module
folder = sys.argv[1]
config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
for reference in config.auto_map.values():
    get_class_from_dynamic_module(reference, folder)
AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
print("ok")
"""


def check_loads_without_litebert(folder: str | Path) -> None:
    """Import every class the folder's auto_map names, and its tokenizer, in a process that cannot import litebert;
    raises RuntimeError with that process's error output when something is missing."""
    run_script_without_litebert(_IMPORT_CHECK, "importing the auto_map classes", folder)


def run_script_without_litebert(script: str, what: str, folder: str | Path, *arguments: str) -> str:
    """Run `script` on `folder` in an isolated interpreter (where it blocks `import litebert`); its last output
    line."""
    with tempfile.TemporaryDirectory() as work_dir:
        result = _run_isolated([script, str(Path(folder).resolve()), *arguments], work_dir)
    if result.returncode != 0:
        raise RuntimeError(f"{what} on {folder} without litebert failed:\n{result.stderr[-4000:]}")
    return result.stdout.strip().splitlines()[-1]
