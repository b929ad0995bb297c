"""The ``workflow-push`` console command: ``workflow-push watch ID --url URL --token T``."""

import argparse
import os
import sys
from collections.abc import Sequence

from workflow_push.client import Client
from workflow_push.errors import StreamRefused, WorkflowPushError
from workflow_push.options import TRANSPORTS, FollowOptions
from workflow_push.screen import printable, show_stream

DEFAULT_URL = "http://127.0.0.1:8037"


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workflow-push", description="A client of the workflow push service."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    watch = commands.add_parser(
        "watch",
        help="follow an execution live until it ends",
        description="Follow an execution live in the terminal: progress bar, node lines, "
        "logs and streamed output, until it ends. Exits 1 if it failed or was cancelled.",
    )
    watch.add_argument("execution_id")
    watch.add_argument(
        "--url",
        default=os.environ.get("WORKFLOW_PUSH_URL", DEFAULT_URL),
        help=f"the service's URL (default: $WORKFLOW_PUSH_URL or {DEFAULT_URL})",
    )
    watch.add_argument(
        "--token",
        default=os.environ.get("WORKFLOW_PUSH_TOKEN"),
        help="API token (default: $WORKFLOW_PUSH_TOKEN)",
    )
    watch.add_argument(
        "--from-start", action="store_true", help="replay every event, not just a snapshot"
    )
    watch.add_argument(
        "--transport",
        action="append",
        choices=TRANSPORTS,
        help="use this transport (repeatable, in order of preference; default: all, in "
        "this order: " + ", ".join(TRANSPORTS) + ")",
    )
    return parser


def watch(arguments: argparse.Namespace) -> int:
    if not arguments.token:
        raise SystemExit("workflow-push watch: give --token (or set WORKFLOW_PUSH_TOKEN).")
    options = FollowOptions(transports=tuple(arguments.transport or TRANSPORTS))
    last_seq = 0 if arguments.from_start else None
    with Client(arguments.url, token=arguments.token, follow_options=options) as client:
        last = show_stream(client.follow(arguments.execution_id, last_seq=last_seq), sys.stdout)
    if last.get("status") in {"failed", "cancelled"}:
        print(f"The execution {last['status']}.", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    try:
        return watch(arguments)
    except StreamRefused as exc:
        print(f"workflow-push: {printable(exc)}", file=sys.stderr)
        return 2
    except WorkflowPushError as exc:
        print(f"workflow-push: {printable(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
