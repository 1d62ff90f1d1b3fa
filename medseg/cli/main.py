"""Entry point of the ``medseg`` command: global options, logging, error handling, command discovery."""
from __future__ import annotations

import atexit
import importlib
import logging
import os
import pkgutil
import sys
import threading

import typer
from typer.core import TyperGroup

import medseg
from medseg.cli._help import show_flags_as_flags
from medseg.core.errors import MedsegError

_STATE = {"debug": False}


class MedsegGroup(TyperGroup):
    """The command group: a :class:`MedsegError` from any command becomes one red line and exit code 2.

    Handling it here (not only in :func:`run`) makes ``medseg``, ``python -m medseg`` and typer's
    ``CliRunner`` behave the same. With ``--debug`` the error propagates with its traceback.
    """

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except MedsegError as exc:
            if _STATE["debug"]:
                raise
            typer.secho(f"error: {exc}", err=True, fg="red")
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=MedsegGroup,
    name="medseg",
    help="3D medical image segmentation: predict, evaluate, train, fine-tune.\n\n"
    "Example: medseg predict scan.nii.gz -o seg.nii.gz",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"medseg {medseg.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show info-level log messages."),
    debug: bool = typer.Option(False, "--debug", help="Show debug logs and full tracebacks on errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """medseg: segment, evaluate and train on medical images."""
    _STATE["debug"] = debug
    setup_logging(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)


def setup_logging(level: int) -> None:
    """Route medseg's log records through rich, on stderr."""
    from rich.console import Console
    from rich.logging import RichHandler

    logger = logging.getLogger("medseg")
    logger.handlers.clear()
    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def _register_commands() -> None:
    import medseg.cli as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "main":
            continue
        module = importlib.import_module(f"medseg.cli.{info.name}")
        module.register(app)


_register_commands()
show_flags_as_flags()


def run() -> None:
    """Console-script entry: run the app, turning :class:`MedsegError` into one line and exit code 2."""
    try:
        code = app(standalone_mode=False)  # returns the exit code of a typer.Exit raised inside a command
        sys.exit(code if isinstance(code, int) else 0)
    except MedsegError as exc:  # raised before any command runs (e.g. while parsing)
        if _STATE["debug"]:
            raise
        typer.secho(f"error: {exc}", err=True, fg="red")
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # usage errors: click's, or the copy of click vendored in recent typer
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        raise


def entry() -> None:
    """``medseg`` and ``python -m medseg``: :func:`run`, then a prompt exit.

    When a command returns, everything it wrote is on disk (atomic renames) and only the interpreter's
    teardown is left: freeing torch's and OpenVINO's modules and arrays took 0.6 s of a 14 s nnU-Net folder
    prediction on the 2-core VM. So the process joins its threads, runs the atexit handlers (logging,
    temporary folders, multiprocessing), flushes its streams and ends with ``os._exit``. :func:`run` (used
    in-process, e.g. by tests) keeps raising ``SystemExit``; an unexpected exception still ends with its
    traceback through the normal exit, and so does every run under a profiler or tracer (``python -m
    cProfile -m medseg ...``, coverage), which writes its results during the normal teardown.
    """
    try:
        run()
        code: object = 0
    except SystemExit as exc:
        if sys.getprofile() is not None or sys.gettrace() is not None:
            raise   # a profiler or coverage tracer writes its results in the normal teardown
        code = exc.code
    prompt_exit(code)


def prompt_exit(code: object) -> None:
    """End the process with ``code`` (as ``sys.exit`` reads it) without the interpreter's teardown."""
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    shutdown = getattr(threading, "_shutdown", None)   # what the interpreter does first: stop executors' workers
    if shutdown is not None:                           # and join non-daemon threads
        shutdown()
    atexit._run_exitfuncs()   # CPython's own exit step (logging.shutdown, weakref finalizers, multiprocessing)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe or stream: nothing more can reach it
            pass
    os._exit(code)


if __name__ == "__main__":
    entry()
