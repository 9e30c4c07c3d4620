"""``lightformer <verb>``: parse, build one config, call one library function, write atomically.

One module per domain (model, train, decode, speed, glue, data, report), each with
``register(subparsers)`` and its handlers; a handler parses, calls the library and prints. A verb
that may run on a GPU says so (``gpu=True``), so a local multi-GPU node gives it a device lock.

Bad input (a value out of range, an unknown name, a foreign file) is one line on stderr and
exit status 2, with nothing written.
"""
from __future__ import annotations

import argparse
import os
import sys

from lightformer.cli import data, decode, glue, model, report, speed, train
from lightformer.cli.common import EXIT_USAGE
from lightformer.errors import LightformerError

DOMAINS = (model, train, decode, speed, glue, data, report)


class Parser(argparse.ArgumentParser):
    """Usage errors as one line (the verb, the option, what is allowed) and exit 2, like every
    other refusal; ``--help`` still shows the whole usage. Subcommands inherit it."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (--help lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    from lightformer.version import __version__

    p = Parser(prog="lightformer", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"lightformer {__version__}")
    sub = p.add_subparsers(dest="verb", required=True)
    for domain in DOMAINS:
        domain.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from lightformer import io

    io.INVOKED[:] = ["lightformer", *(sys.argv[1:] if argv is None else argv)]
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "gpu", False):
            from lightformer.gpu import claim_gpu

            claim_gpu()  # before anything initialises CUDA
        return args.func(args) or 0
    except LightformerError as e:
        print(f"lightformer {args.verb}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # disk full, file too large, permission: one line naming the file (writes are atomic)
        if os.environ.get("LIGHTFORMER_DEBUG"):
            raise
        where = f" ({e.filename})" if e.filename else ""
        print(f"lightformer {args.verb}: error: {e.strerror or e}{where}; every output is written beside its "
              f"target and renamed when whole, so nothing half-written was left (LIGHTFORMER_DEBUG=1 shows the "
              f"traceback)", file=sys.stderr)
        return EXIT_USAGE
