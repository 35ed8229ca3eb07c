"""``fourd``: the project's command line (console script declared in pyproject.toml).

    fourd course --scale tiny            run the notebook series, summary in runs/<stamp>-tiny/
    fourd run 03 -p scale small          run one notebook (a path, or a name prefix) with parameters
    fourd tables [ID]                    list the transcribed paper tables, or print one
    fourd infer dynatok DIR --checkpoint C --out O   a trained method on your data (fourd complete: DynaTok's)
    fourd train dynatok --scale full --data DIR --name RUN   train a notebook's run (torchrun-ready)

Methods come from the registry fourdlib.models.METHODS.

Each subcommand is one ``add_<name>(subparsers)`` function that adds its parser and
sets ``func``; add a new command by writing such a function and listing it in
COMMANDS. Heavy imports (papermill, torch) happen inside the commands, so
``fourd --help`` is instant.
"""
from __future__ import annotations

import argparse
import sys


def _parameter_args(p: argparse.ArgumentParser):
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="inject a parameter (repeatable); VALUE is read as int/float/bool/None if it "
                        "looks like one, else as a string")


def _run_args(p: argparse.ArgumentParser):
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/<timestamp>-<name> next to "
                                                "notebooks/)")
    p.add_argument("--notebooks", metavar="DIR", help="notebooks folder (default: the checkout's "
                                                      "notebooks/)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="wall-clock limit per notebook (default by scale: smoke 600, tiny 3600, "
                        "small 14400, full none; 0 = none)")
    p.add_argument("--cell-timeout", type=float, metavar="SECONDS", help="limit per cell (default none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    p.add_argument("--force", action="store_true", help="replace what an earlier fourd run wrote in --out "
                                                        "(only the files it recorded; other files are kept)")


SCALES = ("smoke", "tiny", "small", "full")


def _parameters(args) -> dict:
    """-p NAME VALUE pairs, read as values; a scale no notebook knows is refused before any run."""
    from .course import CourseError, parse_value

    params = {k: parse_value(v) for k, v in args.parameter}
    if "scale" in params and params["scale"] not in SCALES:
        raise CourseError(f"-p scale {params['scale']!r} is not a scale; choose from {', '.join(SCALES)}")
    return params


def _finish(result) -> int:
    """Print the summary and failures; the exit status is 1 if any notebook did not pass."""
    from .course import summary_text

    print()
    print(summary_text(result.summary))
    print(f"\nsummary: {result.run_dir / 'summary.csv'}\nopen:    {result.index}")
    for r in result.failures:
        print()
        print(r.failure_details())
    return 0 if result.ok else 1


# ----------------------------------------------------------------------------- course

def add_course(sub):
    p = sub.add_parser("course", help="run the notebook series headless with papermill",
                       description="Run notebooks/NN_*.ipynb in order with papermill; write executed "
                                   "notebooks, HTML views, summary.csv and index.html into a run folder. "
                                   "Exit status 1 if a notebook fails (the message names it and the cell).")
    p.add_argument("--scale", choices=SCALES,
                   help="scale passed to every notebook (default: each notebook's own)")
    p.add_argument("--device", help="device passed to every notebook, e.g. cpu, cuda")
    p.add_argument("--seed", type=int, help="seed passed to every notebook")
    p.add_argument("--only", action="append", default=[], metavar="PATTERN",
                   help="run only notebooks whose name contains PATTERN (or matches it as a glob); "
                        "repeatable")
    p.add_argument("--keep-going", action="store_true", help="run the rest after a failure")
    _parameter_args(p)
    _run_args(p)
    p.set_defaults(func=cmd_course)


def cmd_course(args) -> int:
    from .course import run_course

    result = run_course(scale=args.scale, device=args.device, seed=args.seed, only=args.only,
                        out=args.out, notebooks=args.notebooks, timeout=args.timeout,
                        cell_timeout=args.cell_timeout, keep_going=args.keep_going,
                        extra=_parameters(args), progress=not args.no_progress, force=args.force)
    return _finish(result)


# ----------------------------------------------------------------------------- run

def add_run(sub):
    p = sub.add_parser("run", help="run one notebook with parameters",
                       description="Run one notebook with papermill like `fourd course` does, e.g. "
                                   "`fourd run 03 -p scale small -p device cuda`.")
    p.add_argument("notebook", help="a notebook file, or the start of a name in notebooks/ (e.g. 03)")
    _parameter_args(p)
    _run_args(p)
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    from .course import run_one

    result = run_one(args.notebook, _parameters(args), out=args.out,
                     notebooks=args.notebooks, timeout=args.timeout, cell_timeout=args.cell_timeout,
                     progress=not args.no_progress, force=args.force)
    return _finish(result)


# ----------------------------------------------------------------------------- tables

def add_tables(sub):
    p = sub.add_parser("tables", help="list the papers' transcribed tables, or print one",
                       description="Without ID: every transcribed table. With ID: that table as the "
                                   "paper prints it.")
    p.add_argument("id", nargs="?", help="table id, e.g. dynatok/object_level")
    p.add_argument("--paper", help="only this paper's tables (dynatok, native4d_vae, com4d, any4d, c4g)")
    p.add_argument("--html", metavar="FILE", help="also write the table as HTML")
    p.set_defaults(func=cmd_tables)


def cmd_tables(args) -> int:
    import pandas as pd

    from . import repro

    with pd.option_context("display.width", 200, "display.max_colwidth", 60, "display.max_columns", 30):
        if args.id is None:
            print(repro.list_tables(args.paper)[["id", "kind", "methods", "caption"]].to_string(index=False))
            return 0
        try:
            table = repro.get_table(args.id)
        except KeyError as e:
            print(f"fourd tables: error: {e.args[0]}", file=sys.stderr)
            return 2
        frame = table.to_frame()
        print(f"{table.id}: {table.caption}\nsource: {table.source}\n")
        print(frame.to_string(na_rep="–"))
        if table.notes:
            print(f"\nnotes: {table.notes}")
    if args.html:
        with open(args.html, "w", encoding="utf-8") as f:
            f.write(repro.style(frame).to_html())
    return 0


# ----------------------------------------------------------------------------- results

def add_results(sub):
    p = sub.add_parser("results", help="the committed results behind the README's numbers",
                       description="Without NAME: list the committed results (results/<method>/*.record.json). "
                                   "With NAME: print it as the README shows it. --check / --update compare or "
                                   "rewrite a document's <!-- result: NAME --> blocks.")
    p.add_argument("name", nargs="?", help="e.g. dynatok/tiny_creatures")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--check", metavar="FILE", help="exit 1 if a result block of FILE differs from its record")
    g.add_argument("--update", metavar="FILE", help="rewrite FILE's result blocks from the records")
    p.set_defaults(func=cmd_results)


def cmd_results(args) -> int:
    from pathlib import Path

    from .io import atomic_write
    from .repro import results

    if args.check or args.update:
        path = Path(args.check or args.update)
        text = path.read_text(encoding="utf-8")
        if args.check:
            problems = results.check_text(text)
            for p in problems:
                print(f"{path}: {p}", file=sys.stderr)
            return 1 if problems else 0
        new = results.update_text(text)
        if new != text:
            with atomic_write(path, "w", encoding="utf-8") as f:
                f.write(new)
        print(f"{path}: {'updated' if new != text else 'already up to date'}")
        return 0
    if args.name is None:
        print("\n".join(results.result_names()) or "no committed results")
        return 0
    try:
        print(results.render(args.name), end="")
    except (FileNotFoundError, ValueError) as e:
        print(f"fourd results: error: {e}", file=sys.stderr)
        return 2
    return 0


# ----------------------------------------------------------------------------- infer / complete

def add_infer(sub):
    from .models import METHODS

    p = sub.add_parser("infer", help="run a trained method on your own data",
                       description="fourd infer METHOD ARGS...: the method's own command line "
                                   "(`fourd infer METHOD --help` lists its options).")
    p.add_argument("method", choices=sorted(METHODS), help="one of: " + ", ".join(sorted(METHODS)))
    p.add_argument("args", nargs=argparse.REMAINDER, help="the method's arguments")
    p.set_defaults(func=cmd_infer)


def cmd_infer(args) -> int:
    import importlib

    from .models import METHODS

    infer = importlib.import_module(f"{METHODS[args.method]}.infer")
    return infer.main(args.args, prog=f"fourd infer {args.method}")


def add_complete(sub):
    # listed for `fourd --help`; main() hands `fourd complete ...` to DynaTok's parser before parsing
    sub.add_parser("complete", help="complete partial point clouds with DynaTok (= fourd infer dynatok)",
                   add_help=False)


# ----------------------------------------------------------------------------- train

def _assignment(text: str):
    """FIELD=VALUE -> (FIELD, value read as int/float/bool/None if it looks like one)."""
    from .course import parse_value

    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    return name, parse_value(value)


def add_train(sub):
    from .models import METHODS

    p = sub.add_parser("train", help="train a notebook's run ahead of time (works under torchrun)",
                       description="Train the run a notebook would train, under the same name and identity "
                                   "(method, config, steps, seed, data), so that the notebook then loads it "
                                   "instead of training. For several GPUs: torchrun --standalone "
                                   "--nproc_per_node=8 $(which fourd) train dynatok --scale full --data DIR "
                                   "--device cuda. The checkpoint goes to the cache ($FOURD_CACHE, default "
                                   "~/.cache/fourdlib).")
    p.add_argument("method", choices=sorted(METHODS), help="one of: " + ", ".join(sorted(METHODS)))
    p.add_argument("--scale", default="tiny", choices=["smoke", "tiny", "small", "full"], help="config row")
    p.add_argument("--data", metavar="DIR", help="dataset folder (default: the course's synthetic --dataset)")
    p.add_argument("--dataset", help="the method's course data set (its course.DATASETS, e.g. dynatok's "
                                      "creatures) when neither --data nor --run is given")
    p.add_argument("--split", default="train")
    p.add_argument("--run", metavar="KEY", help="a course run by its key in the method's course.RUNS (e.g. "
                                              "dynatok static_temporal, c4g scenes_queries; an unknown key "
                                              "lists them): data, steps, config changes and the name "
                                              "<scale>_<KEY> come from there, exactly as the notebooks ask for it")
    p.add_argument("--name", help="run name: the one the notebook prints (e.g. tiny_static_temporal); "
                                  "required without --run")
    p.add_argument("--set", type=_assignment, action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field (repeatable), e.g. --set temporal=false for DynaTok's "
                        "per-frame ablation, --set num_tokens=8")
    p.add_argument("--data-option", type=_assignment, action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option (repeatable), e.g. foreground_only=true")
    p.add_argument("--steps", type=int, help="default: the config's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--ckpt-every", type=int, metavar="N",
                   help="steps between resume checkpoints (default: a tenth of the run, at least 100)")
    p.add_argument("--restart", action="store_true",
                   help="discard an interrupted run of this name trained with other settings (default: refuse)")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    import dataclasses

    from .models import get_method
    from .train import CheckpointError, RunMismatchError
    from .train.runs import load_or_train

    method = get_method(args.method)
    try:
        if args.run is not None:
            if method.run_spec is None:
                raise ValueError(f"{method.name} has no course runs; give --name and the settings instead")
            given = [flag for flag, v in (("--name", args.name), ("--set", args.set), ("--steps", args.steps),
                                           ("--data", args.data), ("--data-option", args.data_option)) if v]
            if given:  # the run's identity is the table's: anything else would be another run under its name
                raise ValueError(f"--run takes its settings from the course table; drop {', '.join(given)}")
            cfg, args.dataset, args.steps, args.name = method.run_spec(args.run, args.scale)
        elif args.name is None:
            raise ValueError("give --name (the run name the notebook prints) or --run KEY")
        else:
            cfg = dataclasses.replace(method.configs[args.scale], **dict(args.set))
        for flag, value in (("--steps", args.steps), ("--ckpt-every", args.ckpt_every)):
            if value is not None and value < 1:
                raise ValueError(f"{flag} must be a positive number of steps, got {value}")
        if args.data is None and args.dataset is None:
            raise ValueError("give --data DIR, --dataset NAME (one of the method's course data sets) or --run KEY")
        folder = args.data or method.course_data(args.dataset, args.scale)
        _, history, info = load_or_train(method, cfg, folder, args.name, steps=args.steps, split=args.split,
                                         seed=args.seed, device=args.device, restart=args.restart,
                                         ckpt_every=args.ckpt_every,
                                         **dict(args.data_option))
    except TypeError as e:  # dataclasses.replace with a field the config does not have
        print(f"fourd train: error: --set: {e}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, CheckpointError, RunMismatchError) as e:
        print(f"fourd train: error: {e}", file=sys.stderr)
        return 2
    if info.get("path"):
        print(f"{args.name}: {info['source']} -> {info['path']}")
    return 0


COMMANDS = [add_course, add_run, add_tables, add_results, add_infer, add_complete, add_train]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fourd", description="fourdlib: the 4D-reconstruction "
                                     "notebook course. `fourd COMMAND --help` for a command's options.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["complete"]:  # the alias hands every argument, --help included, to the method's parser
        from .models.dynatok import infer

        return infer.main(argv[1:], prog="fourd complete")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from .course import CourseError

    try:
        return args.func(args)
    except CourseError as e:
        print(f"fourd {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
