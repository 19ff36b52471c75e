"""`provenance batch TEMPLATE --server URL`: run a batch template on ComfyUI and write its manifest.json.

The template (YAML or JSON) names a workflow (API, or UI converted with the server's
/object_info), a prompt and negative with {Name} placeholders, variations, mode
(combinatorial/random), seed_mode (fixed/progressive/random), base_seed, num_images and
overrides; the README's "Batches and manifests" section is the reference. Each job is queued,
awaited and its files downloaded into --out (default ./batch-<timestamp>), and manifest.json is
rewritten atomically after every image. Progress goes to stderr.

  --resume   finish a batch in --out that stopped (a server that went away): only the jobs
             no image of its manifest was made from are queued.
  --dry-run  print the jobs (index, seed, prompt, negative, variations) and queue nothing.
Exit status: 0 every job done, 1 the server failed (a batch that stopped: its manifest holds
what was done), 2 the template, --out or --resume cannot be used.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..metadata.errors import MetadataError
from ..reproduce import batch
from ..reproduce.client import DEFAULT_URL, Client, ReproduceError
from ..reproduce.template import TemplateError
from .errors import CliError

UNUSABLE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("template", metavar="TEMPLATE", help="the batch template, .yaml/.yml or .json")
    parser.add_argument("--server", default=DEFAULT_URL, metavar="URL", help="ComfyUI's address (default: %(default)s)")
    parser.add_argument("--out", metavar="DIR", help="where the files and manifest.json go (default: ./batch-<time>)")
    parser.add_argument("--resume", action="store_true", help="finish the batch in --out, queuing only what is missing")
    parser.add_argument("--dry-run", action="store_true", help="print the jobs as JSON lines; queue nothing")
    parser.add_argument(
        "--timeout",
        type=float,
        default=batch.IMAGE_TIMEOUT_S,
        metavar="S",
        help="seconds one job may take on the server (default: %(default)g)",
    )


def run(args: argparse.Namespace) -> int:
    template = Path(args.template)
    if args.resume and not args.out:
        raise CliError("--resume needs --out DIR: the folder of the batch to finish", status=UNUSABLE)
    try:
        client = Client(args.server)
    except ReproduceError as err:
        raise CliError(f"--server: {err}", status=UNUSABLE) from err
    try:
        if args.dry_run:
            return dry_run(batch.plan(template, client))
        out = Path(args.out) if args.out else Path(f"batch-{time.strftime('%Y%m%d-%H%M%S')}")
        if args.resume:
            work = batch.resume(template, client, out, say, args.timeout)
        else:
            work = batch.start(batch.plan(template, client), client, out, say, args.timeout)
    except TemplateError as err:
        raise CliError(str(err), path=template, status=UNUSABLE) from err
    except batch.BatchRefused as err:
        raise CliError(str(err), status=UNUSABLE) from err
    except (MetadataError, ReproduceError) as err:  # the server, before the first job
        raise CliError(str(err)) from err
    try:
        work.run()
    except batch.BatchStopped as err:
        raise CliError(str(err)) from err
    say(f"done: {len(work.images)} image(s) in {out}; manifest {work.manifest_path}")
    return 0


def dry_run(plan: batch.Plan) -> int:
    for job in plan.jobs:
        line = {"index": job.index, "seed": job.seed, "prompt": job.prompt, "negative": job.negative}
        line["applied_variations"] = job.applied
        print(json.dumps(line, ensure_ascii=False))
    say(f"{len(plan.jobs)} job(s); nothing queued (--dry-run)")
    return 0


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
