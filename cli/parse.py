"""`provenance parse INPUT`: the record a ComfyUI graph describes, with no ComfyUI.

INPUT is an API-format prompt (or a /prompt request body) as JSON, or a PNG, JPEG or WEBP image
that ComfyUI saved: its embedded prompt is parsed afresh, and its workflow kept unless --workflow
names another. Which one it is is told by the content, not the file name.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..metadata.budget import Budget, open_regular
from ..metadata.errors import MetadataError, ReadError
from ..metadata.formats.base import sniffers
from ..metadata.limits import READ_GRAPH_MAX
from ..metadata.parser.parse import WorkflowParser
from ..metadata.read import extract
from ..metadata.record import Record
from ..metadata.save import hash_record
from . import models, objectinfo
from .errors import CliError, in_words
from .summary import summary

SNIFF_BYTES = 16  # what every format's sniff() needs, as metadata.read.extract reads it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_graph_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the whole record as JSON")
    models.add_arguments(parser)
    objectinfo.add_arguments(parser)


def add_graph_arguments(parser: argparse.ArgumentParser) -> None:
    """INPUT, --workflow and --save-node: the graph to parse (`load_graph`)."""
    parser.add_argument(
        "prompt", metavar="INPUT", help="an API-format prompt JSON (or a /prompt request body), or a ComfyUI image"
    )
    parser.add_argument("--workflow", metavar="UI.json", help="the UI workflow, kept in the record")
    parser.add_argument("--save-node", metavar="ID", help="the save node's id (default: every output)")


def decode(text: str | bytes, path: str, what: str = "") -> dict[str, Any]:
    """A JSON object from `text`, within the readers' limits for graphs; `what` names the part of the
    file it came from ("its ComfyUI prompt"), if not all of it."""
    if isinstance(text, bytes) and text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]  # a BOM from Windows editors is not a reason to refuse
    label = what or "JSON"
    if not text.strip():
        raise CliError(f"{what} is empty" if what else "empty, not JSON", path=path)
    try:
        data = Budget().graph(text, label)
    except ReadError as err:
        message = str(err)
        if not what:
            message = message.removeprefix("JSON is ").removeprefix("JSON ")
            if isinstance(text, bytes) and "UTF-8" in message:
                message = "not UTF-8 text, nor an image, video or audio file we read"
            elif message.startswith("nests"):
                message = f"JSON {message}"
        raise CliError(message, path=path) from err
    if not isinstance(data, dict):
        raise CliError(f"{what} is not a JSON object" if what else "not a JSON object", path=path)
    return data


def load_json(path: str) -> dict[str, Any]:
    try:
        raw = Budget(metadata_max=READ_GRAPH_MAX).read_file(Path(path), "the file")
    except ReadError as err:
        raise CliError(str(err).removeprefix("the file: "), path=path) from err
    if raw is None:
        raise CliError("cannot open: no such file or directory", path=path)
    return decode(raw, path)


def is_image(path: str) -> bool:
    try:
        with open_regular(Path(path)) as fp:
            head = fp.read(SNIFF_BYTES)
    except (OSError, ReadError):
        return False  # load_json() opens it again and says why it cannot
    return any(fmt.sniff(head) for fmt in sniffers())


def load_image(path: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(prompt, workflow) as ComfyUI embedded them in an image it saved."""
    try:
        comfy = extract(path).comfy
    except ReadError as err:
        raise CliError(in_words(err), path=path) from err
    if "prompt" not in comfy:
        raise CliError("carries no ComfyUI prompt (`provenance read` shows what it carries)", path=path)
    workflow = decode(comfy["workflow"], path, "its ComfyUI workflow") if "workflow" in comfy else None
    return decode(comfy["prompt"], path, "its ComfyUI prompt"), workflow


def api_prompt(data: dict[str, Any], path: str) -> dict[str, Any]:
    """The API graph, unwrapped from a /prompt request body when needed."""
    if isinstance(data.get("prompt"), dict):
        data = data["prompt"]
    if "nodes" in data and "links" in data:
        raise CliError(
            "this is a UI workflow; export it with 'Export (API)' in ComfyUI, or pass it with --workflow", path=path
        )
    if not all(isinstance(v, dict) and "class_type" in v for v in data.values()):
        raise CliError("not an API prompt (expected {node_id: {class_type, inputs}})", path=path)
    return data


def refuse_special(path: str) -> None:
    """A folder, FIFO or device is refused up front: opening one would fail late, block or never end."""
    target = Path(path)
    if target.exists() and not target.is_file():
        raise CliError("a folder" if target.is_dir() else "not a regular file (a device, pipe or socket)", path=path)


def load_graph(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(API prompt, UI workflow) that INPUT and --workflow name."""
    for path in (args.prompt, args.workflow):
        if path:
            refuse_special(path)
    if is_image(args.prompt):
        data, workflow = load_image(args.prompt)
    else:
        data, workflow = load_json(args.prompt), None
    prompt = api_prompt(data, args.prompt)
    if args.workflow:
        workflow = load_json(args.workflow)
    return prompt, workflow


def parsed(args: argparse.Namespace, prompt: dict[str, Any], workflow: dict[str, Any] | None) -> Record:
    """The record of the graph (with the schemas --object-info or --server name, when they are set)."""
    try:
        return WorkflowParser().parse(prompt, args.save_node, workflow)
    except MetadataError as err:  # a graph past the parser's stated limits
        raise CliError(str(err), path=args.prompt) from err


def run(args: argparse.Namespace) -> int:
    prompt, workflow = load_graph(args)
    with objectinfo.user_schemas(args):
        record = parsed(args, prompt, workflow)
    hasher = models.hasher_from(args)
    if hasher is not None:
        hash_record(record, hasher)
    if args.json:
        json.dump(record.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(f"{args.prompt}\n{summary(record)}")
    return 0
