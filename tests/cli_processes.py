"""Run the `litebert-*` console scripts as separate processes, many at a time.

Each command runs in its own process, forked from one parent that has imported the scripts already, and ends as the
console script does, through `sys.exit(main())`: its exit status and its stderr are its own. Only importing torch and
transformers (several seconds per process on a small machine) is shared.
"""

import json
import os
import subprocess
import sys

PROGRESS_BARS_OFF = {"HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                     "TQDM_DISABLE": "1"}

FORKING_PARENT = r"""
import gc, importlib, json, os, sys

commands = json.load(sys.stdin)
scripts = {name: importlib.import_module(f"litebert.cli.{name}") for name in {name for name, _ in commands}}
gc.freeze()  # a child's garbage collection then leaves the inherited objects alone: it exits in a fraction of a second
results = []
for name, argv in commands:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the script's process: stderr into the pipe, stdout discarded
        os.close(read_end)
        os.dup2(write_end, 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        sys.argv = [f"litebert-{name}", *argv]
        sys.exit(scripts[name].main())
    os.close(write_end)
    with os.fdopen(read_end, encoding="utf-8", errors="replace") as stream:
        stderr = stream.read()
    results.append({"status": os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), "stderr": stderr})
print(json.dumps(results))
"""


def run_scripts(commands: list[tuple[str, list[str]]]) -> list[dict]:
    """[(script name, e.g. "glue", argv)] -> [{"status": exit status, "stderr": text}], in order."""
    completed = subprocess.run([sys.executable, "-c", FORKING_PARENT], input=json.dumps(commands),
                               capture_output=True, text=True, env={**os.environ, **PROGRESS_BARS_OFF}, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.splitlines()[-1])
