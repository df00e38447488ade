"""The real ``tagscope`` command line as the tests run it: a home's environment, one invocation in
this process or in a new interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from . import ROOT

PROJECT_MODULES = r"(core|mkt|indexer|tagger|web|tagscope|migrations)(\.|$)"


def tagscope_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TAGSCOPE_") or k in ("TAGSCOPE_REQUIRE_SERVICES", "TAGSCOPE_RUNTIME_CACHE")}
    # OCR (on by default) off unless a test asks for it (--ocr, TAGSCOPE_OCR): it would cost most of every run's time
    env.update(TAGSCOPE_HOME=str(home), TAGSCOPE_LOADER_WORKERS="1", TAGSCOPE_OCR="0", HF_HUB_OFFLINE="1",
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_cli(*args: str, home: Path, check: bool = True, timeout: float = 600, cwd: Path = ROOT, process: bool = False,
            **env: str) -> subprocess.CompletedProcess:
    """Run the real ``tagscope`` command line on ``home`` with ``env`` (in ``cwd``, the repository by
    default): in this process through click's runner, which saves the seconds each new interpreter
    spends importing torch and loading the model; with ``process=True`` in a subprocess (``timeout``
    applies), for what only a process shows: start-up, imports, signals, a crash."""
    if process:
        env.setdefault("PYTHONPATH", str(ROOT))  # the package, whatever the working directory
        proc = subprocess.run([sys.executable, "-m", "tagscope", *args], cwd=cwd, env=tagscope_env(home, **env),
                              capture_output=True, text=True, timeout=timeout)
    else:
        proc = _run_cli_here(args, cwd, tagscope_env(home, **env))
    if check and proc.returncode != 0:
        raise AssertionError(f"tagscope {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _run_cli_here(args: tuple[str, ...], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """One CLI invocation in this process with exactly ``env`` (other TAGSCOPE_ variables unset), in
    ``cwd``, its log lines on its own stderr as a fresh process would write them."""
    import logging
    import traceback
    import warnings

    from click.testing import CliRunner

    from tagscope.cli import cli

    overrides: dict[str, str | None] = {k: None for k in os.environ if k not in env}
    overrides.update(env)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers = []  # so the command's logging.basicConfig writes to the stderr captured below
    before = os.getcwd()
    os.chdir(cwd)
    try:
        with warnings.catch_warnings():
            # As a process shows them (a line on stderr), not as the errors pytest makes of them;
            # but deprecated APIs that the project's own code calls still fail the test.
            warnings.simplefilter("default")
            warnings.filterwarnings("error", category=DeprecationWarning, module=PROJECT_MODULES)
            warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
                warnings.formatwarning(message, category, filename, lineno, line))
            result = CliRunner().invoke(cli, list(args), env=overrides, prog_name="tagscope")
    finally:
        os.chdir(before)
        root.handlers, root.level = handlers, level
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))  # as an interpreter would print it
    return subprocess.CompletedProcess(["tagscope", *args], result.exit_code, result.stdout, stderr)
