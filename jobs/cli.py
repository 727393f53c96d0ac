"""`gliner-selftrain`: the command line (also `python -m jobs`); `run` is the console script.

Pipeline commands (run here, or on a cluster through `submit`):
    self-train, synth, label, train, evaluate    jobs/pipeline_cmds.py
    predict, export, lineage                     jobs/model_cmds.py
Cluster commands:
    submit, schedule, status, logs               jobs/cluster_cmds.py
    review push|pull                             jobs/review_cmd.py

Every pipeline command takes the same options (`jobs/options.py`): the YAML config (`--config`,
default: the built-in local profile), `--set section.key=value` overrides, `--storage`,
`--ray-address` and `--dry-run` (prints the resolved config). A `--model` is a folder, `champion`
(the default: the registry's), `models:/NAME@ALIAS`, `models:/NAME/VERSION` or a hub id
(pipelines/registry/model_source.py). Usage mistakes get Click's usage message, other user mistakes one
`error: …` line, both exit code 2; heavy imports happen inside the commands so `--help` is fast.
This module assembles the app from those modules and runs it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import typer

from jobs import cluster_cmds, model_cmds, pipeline_cmds
from jobs.review_cmd import review_app
from jobs.settings import UserError

app = typer.Typer(
    name="gliner-selftrain",
    help="Label a corpus with an LLM and GLiNER, fine-tune GLiNER on it with Ray, track it in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# `--help` lists the commands in this order; a cluster command's own options end at `--`
AFTER_DASH = {"allow_interspersed_args": False}
app.command("self-train")(pipeline_cmds.self_train)
for command in (pipeline_cmds.synth, pipeline_cmds.label, pipeline_cmds.train, pipeline_cmds.evaluate):
    app.command()(command)
for command in (model_cmds.predict, model_cmds.export, model_cmds.lineage):
    app.command()(command)
app.command(context_settings=AFTER_DASH)(cluster_cmds.submit)
app.command(context_settings=AFTER_DASH)(cluster_cmds.schedule)
app.command()(cluster_cmds.status)
app.command()(cluster_cmds.logs)
app.add_typer(review_app, name="review")


class _RayDataCpuSnapshot(logging.Filter):
    """Drops Ray Data's "The Ray cluster currently does not have any available CPUs. The Dataset job
    will hang…" warning. `Dataset.materialize()` (every `write_parquet`) checks
    `ray.available_resources()` again right after its stage has finished, while the cluster still
    counts that stage's actor pool and last tasks as busy: on a small cluster (2 CPUs: one labeling
    actor + one write task) the snapshot reads 0 and the warning fires although nothing waits."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "does not have any available CPUs" not in record.getMessage()


def quiet_known_noise() -> None:
    logging.getLogger("ray.data.dataset").addFilter(_RayDataCpuSnapshot())


def _usage_context(argv: Sequence[str]) -> typer.Context:
    """The context of the command named in `argv` (for its usage line), else the app's."""
    group = typer.main.get_command(app)
    root = typer.Context(group, info_name="gliner-selftrain")
    name = next((arg for arg in argv if not arg.startswith("-")), None)
    command = group.get_command(root, name) if name and hasattr(group, "get_command") else None
    return typer.Context(command, info_name=name, parent=root) if command else root


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app. Usage mistakes (a missing argument, an option without its value) get Click's usage
    message and exit code 2; other user mistakes one `error:` line and exit code 2."""
    quiet_known_noise()
    try:
        result = app(
            args=list(argv) if argv is not None else None, prog_name="gliner-selftrain", standalone_mode=False
        )
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as error:
        typer.echo(f"error: {error}", err=True)
        return 2
    except typer.TyperException as error:  # Click's exceptions (typer vendors Click): usage errors
        show = getattr(error, "show", None)
        if show is None:
            typer.echo(f"error: {error.format_message()}", err=True)
        else:
            if getattr(error, "ctx", False) is None:  # e.g. "--model" without a value: no usage line
                error.ctx = _usage_context(sys.argv[1:] if argv is None else list(argv))  # type: ignore[attr-defined]
            show()
        return error.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    # without standalone mode, `typer.Exit(code)` (and Ctrl-C, 130) comes back as the return value
    return result if isinstance(result, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
