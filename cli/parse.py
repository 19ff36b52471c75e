"""`provenance parse PROMPT.json`: the record for a graph, with no image and no ComfyUI."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..metadata.parser.parse import WorkflowParser
from ..metadata.save import hash_record
from . import models
from .read import summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", metavar="PROMPT.json", help="an API-format prompt (or a /prompt request body)")
    parser.add_argument("--workflow", metavar="UI.json", help="the UI workflow, kept in the record")
    parser.add_argument("--save-node", metavar="ID", help="the save node's id (default: every output)")
    parser.add_argument("--json", action="store_true", help="print the whole record as JSON")
    models.add_arguments(parser)


def _load(path: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as err:
        raise SystemExit(f"{path}: cannot read {what}: {err}") from err
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: {what} must be a JSON object")
    return data


def api_prompt(data: dict[str, Any], path: str) -> dict[str, Any]:
    """The API graph, unwrapped from a /prompt request body when needed."""
    if isinstance(data.get("prompt"), dict):
        data = data["prompt"]
    if "nodes" in data and "links" in data:
        raise SystemExit(
            f"{path}: this is a UI workflow; export it with 'Export (API)' in ComfyUI, or pass it with --workflow"
        )
    if not all(isinstance(v, dict) and "class_type" in v for v in data.values()):
        raise SystemExit(f"{path}: not an API prompt (expected {{node_id: {{class_type, inputs}}}})")
    return data


def run(args: argparse.Namespace) -> int:
    prompt = api_prompt(_load(args.prompt, "the prompt"), args.prompt)
    workflow = _load(args.workflow, "the workflow") if args.workflow else None
    record = WorkflowParser().parse(prompt, args.save_node, workflow)
    hasher = models.hasher_from(args)
    if hasher is not None:
        hash_record(record, hasher)
    if args.json:
        json.dump(record.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(f"{args.prompt}\n{summary(record)}")
    return 0
