"""The `madc` command line: one subcommand per tool, each a thin shell over its module.

Exit codes (all subcommands): 0 success, 1 a check/test failed (refuted, fuzz failure),
2 a usage error or a bad spec (rendered as `path:line:col: error[...]`), 3 an internal error.
Tool modules are imported lazily so `madc check` never pays for torch or triton.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback


def _cmd_check(args: argparse.Namespace) -> int:
    from madc.check import main_check

    return main_check(args.files, json_out=args.json, strict=args.strict,
                      stdout=sys.stdout, stderr=sys.stderr)


def _cmd_compile(args: argparse.Namespace) -> int:
    from madc.compile import main_compile

    return main_compile(args)


def _cmd_fuzz(args: argparse.Namespace) -> int:
    from madc.fuzz import main_fuzz

    return main_fuzz(args)


def _cmd_train(args: argparse.Namespace) -> int:
    from madc.train.cli import main_train

    return main_train(args)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from madc.train.cli import main_sweep

    return main_sweep(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    from madc.bench import main_bench

    return main_bench(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from madc.demo import main_demo

    return main_demo(args)


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="madc", description="A compiler for scan operators (.scan -> verified kernels).")
    parser.add_argument("--version", action="version", version=f"madc {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("check", help="parse, type-check and prove a spec scannable")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="machine-readable verdicts")
    p.add_argument("--strict", action="store_true", help="an unproven check fails")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("compile", help="emit the Python/Triton package for a spec")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--out", required=True, metavar="DIR")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE",
                   help="override a dim's default (repeatable)")
    p.add_argument("--backend", default="all",
                   choices=["all", "reference", "chunked", "triton"])
    p.add_argument("--allow-promotion", action="store_true",
                   help="compile a non-closed transition class as dense")
    p.set_defaults(func=_cmd_compile)

    # The heavy tools (torch) describe their own flags; import them only when chosen.
    p = sub.add_parser("fuzz", help="differential-test generated kernels (or the front end)")
    p.set_defaults(func=_cmd_fuzz, lazy=("madc.fuzz", "add_fuzz_arguments"))
    p = sub.add_parser("train", help="train a model built from a spec on a synthetic task")
    p.set_defaults(func=_cmd_train, lazy=("madc.train.cli", "add_train_arguments"))
    p = sub.add_parser("sweep", help="train several specs with one budget; leaderboard")
    p.set_defaults(func=_cmd_sweep, lazy=("madc.train.cli", "add_sweep_arguments"))

    p = sub.add_parser("bench", help="time generated kernels against anchors and rooflines")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--shape", default="", metavar="B=8,T=4096,...",
                   help="batch B, length T and dim overrides")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--out", default="runs/bench", metavar="DIR")
    p.add_argument("--backend", default="triton", choices=["triton", "chunked", "reference"])
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("demo", help="the main job on built-in defaults (what `make run` runs)")
    p.add_argument("--out", default="runs/demo", metavar="DIR")
    p.add_argument("--skip-train", action="store_true")
    p.set_defaults(func=_cmd_demo)
    return parser


def _version() -> str:
    from madc import __version__

    return __version__


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    chosen = subparsers.choices.get(argv[0]) if argv else None
    lazy = chosen.get_default("lazy") if chosen is not None else None
    if lazy is not None:
        import importlib

        module, adder = lazy
        getattr(importlib.import_module(module), adder)(chosen)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `madc` console script."""
    args = _parse(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("madc: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no bare traceback
        from madc.errors import CompileError

        if isinstance(exc, CompileError):
            print(exc.render(), file=sys.stderr)
            return 2
        if os.environ.get("MADC_DEBUG"):
            traceback.print_exc()
        print(f"madc: internal error: {type(exc).__name__}: {exc}\n"
              "  (set MADC_DEBUG=1 for the traceback; please report it)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
