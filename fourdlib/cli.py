"""``fourd``: the project's command line (console script declared in pyproject.toml).

    fourd course --scale tiny            run the notebook series, summary in runs/<stamp>-tiny/
    fourd run 03 -p scale small          run one notebook (a path, or a name prefix) with parameters
    fourd tables [ID]                    list the transcribed paper tables, or print one
    fourd complete DIR --checkpoint C --out O   complete partial point clouds with DynaTok
    fourd train dynatok --scale full --data DIR --name RUN   train a notebook's run (torchrun-ready)

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
    p.add_argument("--scale", choices=["smoke", "tiny", "small", "full"],
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
    from .course import parse_value, run_course

    result = run_course(scale=args.scale, device=args.device, seed=args.seed, only=args.only,
                        out=args.out, notebooks=args.notebooks, timeout=args.timeout,
                        cell_timeout=args.cell_timeout, keep_going=args.keep_going,
                        extra={k: parse_value(v) for k, v in args.parameter},
                        progress=not args.no_progress)
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
    from .course import parse_value, run_one

    result = run_one(args.notebook, {k: parse_value(v) for k, v in args.parameter}, out=args.out,
                     notebooks=args.notebooks, timeout=args.timeout, cell_timeout=args.cell_timeout,
                     progress=not args.no_progress)
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


# ----------------------------------------------------------------------------- complete

def add_complete(sub):
    p = sub.add_parser("complete", help="complete a sequence of partial point clouds with DynaTok",
                       description="Read partial point clouds (a Sequence4D .npz, or a folder of per-frame "
                                   ".npy / .ply files sorted by name), complete every frame with a trained "
                                   "DynaTok checkpoint, and write OUT/completed.npz (a Sequence4D whose "
                                   "surface_points are the prediction), OUT/frames/frame_NNNN.ply and "
                                   "OUT/view.html (input and completion side by side, k3d).")
    p.add_argument("input", metavar="INPUT", help="a Sequence4D .npz, or a folder of frames (at least 2)")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="written by dynatok.save_model")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--points", type=int, metavar="N", help="points per output frame (default: the config's)")
    p.add_argument("--steps", type=int, metavar="K", help="ODE steps (default: the config's)")
    p.add_argument("--method", choices=["euler", "midpoint", "heun", "rk4"], help="ODE solver")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window", type=int, metavar="W", help="frames encoded together (default: the config's)")
    p.add_argument("--config", choices=["smoke", "tiny", "small", "full"],
                   help="for a checkpoint written without its model config (by fourdlib.train.train)")
    p.add_argument("--no-html", action="store_true", help="do not write the k3d view OUT/view.html")
    p.set_defaults(func=cmd_complete)


def cmd_complete(args) -> int:
    import torch

    from .data.sequence import FormatError
    from .models.dynatok import CONFIGS
    from .models.dynatok_infer import complete_sequence, write_completion
    from .train.checkpoint import CheckpointError

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        seq = complete_sequence(args.input, args.checkpoint, args.points, args.steps, args.method,
                                device=device, seed=args.seed, window=args.window,
                                config=CONFIGS[args.config] if args.config else None, progress=True)
        paths = write_completion(seq, args.out, html=not args.no_html)
    except (ValueError, FormatError, CheckpointError, FileNotFoundError) as e:
        print(f"fourd complete: error: {e}", file=sys.stderr)
        return 2
    T, P = seq.surface_points.shape[:2]
    print(f"completed {T} frames x {P} points -> {paths['npz']}, {len(paths['ply'])} .ply files in "
          f"{paths['ply'][0].parent}" + (f", view: {paths['html']}" if paths["html"] else ""))
    return 0


# ----------------------------------------------------------------------------- train

def add_train(sub):
    p = sub.add_parser("train", help="train a notebook's DynaTok run ahead of time (works under torchrun)",
                       description="Train the run a notebook would train, under the same name and identity "
                                   "(config, steps, seed, data), so that the notebook then loads it instead "
                                   "of training. For several GPUs: torchrun --standalone --nproc_per_node=8 "
                                   "$(which fourd) train dynatok --scale full --data DIR --device cuda. "
                                   "The checkpoint goes to the cache ($FOURD_CACHE, default ~/.cache/fourdlib).")
    p.add_argument("method", choices=["dynatok"])
    p.add_argument("--scale", default="tiny", choices=["smoke", "tiny", "small", "full"], help="config row")
    p.add_argument("--data", metavar="DIR", help="dataset folder (default: the course's synthetic --dataset)")
    p.add_argument("--dataset", default="static", help="course data set when --data is not given "
                                                       "(static, creatures, scenes)")
    p.add_argument("--split", default="train")
    p.add_argument("--name", required=True, help="run name: the one the notebook prints (e.g. tiny_static_temporal)")
    p.add_argument("--per-frame", action="store_true", help="the per-frame ablation (temporal=False)")
    p.add_argument("--num-tokens", type=int, metavar="M", help="override the config's M (token ablation)")
    p.add_argument("--foreground-only", action="store_true", help="scenes without background (scene table)")
    p.add_argument("--steps", type=int, help="default: the config's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    import dataclasses

    from .models.dynatok import CONFIGS
    from .models.dynatok_train import course_data, load_or_train

    cfg = CONFIGS[args.scale]
    if args.per_frame:
        cfg = dataclasses.replace(cfg, temporal=False)
    if args.num_tokens:
        cfg = dataclasses.replace(cfg, num_tokens=args.num_tokens)
    folder = args.data or course_data(args.dataset, args.scale)
    options = {"foreground_only": True} if args.foreground_only else {}
    try:
        _, history, info = load_or_train(cfg, folder, args.name, steps=args.steps, split=args.split,
                                         seed=args.seed, device=args.device, **options)
    except (ValueError, FileNotFoundError) as e:
        print(f"fourd train: error: {e}", file=sys.stderr)
        return 2
    if info.get("path"):
        print(f"{args.name}: {info['source']} -> {info['path']}")
    return 0


COMMANDS = [add_course, add_run, add_tables, add_complete, add_train]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fourd", description="fourdlib: the 4D-reconstruction "
                                     "notebook course. `fourd COMMAND --help` for a command's options.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
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
