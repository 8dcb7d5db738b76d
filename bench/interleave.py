"""``python -m bench.interleave``: two versions of our code side by side, runs interleaved.

On a shared host the load changes from one minute to the next, so a stage's rows measured one
after the other (``python -m bench`` repeats each row in a row) can differ by 2x for no reason
of their own. This runs a few candidates in turn, round after round, on one input, and reports
per round the ratio to the reference measured next to it, and the median of those ratios; and
each process's CPU time (user + system), which the load distorts far less than wall time.

- ``tap``: the FlexPOS emulator in its own process (as in ``python -m bench``); candidates
  ``pager`` (offset pager, the reference), ``keyset`` (the pager making the tap's requests)
  and ``tap`` (tap-flexpos); ``--journals`` (default 100k, the bench's default size).
- ``load``: a Singer file into a fresh DuckDB file; candidates ``read_json`` (DuckDB's own
  reader, the reference), ``target`` (target-loyalty-store) and ``batch`` (the same target
  given the SCHEMA and one BATCH message naming ``records.jsonl``); ``--input`` a
  ``stream.jsonl`` of ``bench/.data`` (its ``records.jsonl`` is what ``read_json`` reads).

``--old DIR`` adds ``tap@old`` / ``target@old``: the same executable run on the source tree
in DIR (e.g. ``git worktree add DIR <commit>``) through PYTHONPATH, every package of it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.core import ROOT
from bench.datagen import DataSet
from bench.stages import PEERS_SCRIPTS, _batch_input, _journals_catalog, _tap_config

PACKAGE_ROOTS = ("", "taps", "targets", "transforms")  # pyproject's packages.find


def _pythonpath(tree: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(str(tree / sub) for sub in PACKAGE_ROOTS)}


def _run(cmd: list[str], stdin: Path | None, stdout: Path, env: dict[str, str]) -> dict:
    """One process: wall, CPU of it and its children, exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with (
        Path(stdin or os.devnull).open("rb") as fin,
        stdout.open("wb") as fout,
    ):
        proc = subprocess.run(
            cmd, stdin=fin, stdout=fout, stderr=subprocess.PIPE, env=env, cwd=tempfile.gettempdir()
        )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if proc.returncode:
        print(proc.stderr.decode(errors="replace")[-2000:], file=sys.stderr)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 2), "rc": proc.returncode}


def _tap_commands(args: argparse.Namespace, env: dict[str, str], work: Path) -> dict:
    exe = str(Path(sys.executable).with_name("tap-flexpos"))
    tap = [exe, "--config", str(_tap_config(env, work)), "--catalog"]
    tap.append(str(_journals_catalog(work / "catalog.json")))
    pager = [sys.executable, str(PEERS_SCRIPTS / "flexpos_pager.py")]
    base = {**os.environ, **env}
    commands = {
        "pager": (pager, base, None),
        "keyset": ([*pager, "--keyset"], base, None),
        "tap": (tap, base, None),
    }
    if args.old:
        commands["tap@old"] = (tap, {**base, **_pythonpath(args.old)}, None)
    return commands


def _load_commands(args: argparse.Namespace, work: Path) -> dict:
    records = args.input.with_name("records.jsonl")
    peer = [sys.executable, str(PEERS_SCRIPTS / "duckdb_read_json.py"), str(records)]
    config = work / "target.json"
    db = work / "store.duckdb"
    config.write_text(json.dumps({"database": str(db), "staging_dir": str(work / "staging")}))
    target = [str(Path(sys.executable).with_name("target-loyalty-store")), "--config", str(config)]
    batch = _batch_input(work / "batch.jsonl", DataSet(0, args.input, records))
    commands = {
        "read_json": ([*peer, str(db)], dict(os.environ), None),
        "target": (target, os.environ, args.input),
        "batch": (target, os.environ, batch),
    }
    if args.old:
        old = {**os.environ, **_pythonpath(args.old)}
        commands["target@old"] = (target, old, args.input)
        commands["batch@old"] = (target, old, batch)
    return commands


def _rounds(args: argparse.Namespace, commands: dict, work: Path) -> dict:
    runs: dict[str, list[dict]] = {name: [] for name in args.candidates}
    for round_no in range(args.rounds):
        for name in args.candidates:
            cmd, env, stdin = commands[name]
            for stale in work.glob("store.duckdb*"):  # every load starts from a new file
                if stale.is_dir():
                    shutil.rmtree(stale)
                else:
                    stale.unlink()
            result = _run(cmd, stdin, work / "out", dict(env))
            result["load_avg"] = round(os.getloadavg()[0], 1)
            runs[name].append(result)
            print(f"round {round_no + 1} {name}: {result}", file=sys.stderr, flush=True)
    return runs


def summarise(runs: dict[str, list[dict]], reference: str) -> dict:
    """Per candidate: median wall and CPU; against the reference, the rate ratio per round
    (reference wall / candidate wall, >1 = faster) and its median."""
    out: dict[str, dict] = {}
    for name, rows in runs.items():
        entry = {
            "wall_median_s": statistics.median(r["wall_s"] for r in rows),
            "cpu_median_s": statistics.median(r["cpu_s"] for r in rows),
        }
        if name != reference:
            ratios = [
                round(ref["wall_s"] / row["wall_s"], 3)
                for ref, row in zip(runs[reference], rows, strict=True)
            ]
            cpu = [
                round(ref["cpu_s"] / row["cpu_s"], 3)
                for ref, row in zip(runs[reference], rows, strict=True)
            ]
            entry[f"rate_vs_{reference}_per_round"] = ratios
            entry[f"rate_vs_{reference}_median"] = statistics.median(ratios)
            entry[f"cpu_ratio_vs_{reference}_median"] = statistics.median(cpu)
        out[name] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the rounds; print the summary; write the JSON."""
    p = argparse.ArgumentParser(prog="python -m bench.interleave", description=__doc__)
    p.add_argument("stage", choices=("tap", "load"))
    p.add_argument("--candidates", help="comma list, the reference first")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--journals", type=int, default=100_000)
    p.add_argument("--input", type=Path, help="load: a bench/.data/<set>/stream.jsonl")
    p.add_argument("--old", type=Path, help="a source tree to compare (adds <name>@old)")
    p.add_argument("--out", type=Path, required=True, help="results JSON")
    args = p.parse_args(argv)
    default = {"tap": "pager,keyset,tap", "load": "read_json,target"}[args.stage]
    args.candidates = (args.candidates or default).split(",")
    if args.stage == "load" and (args.input is None or not args.input.is_file()):
        p.error("load needs --input <bench/.data/.../stream.jsonl>")
    with tempfile.TemporaryDirectory(prefix="bench-interleave-") as tmp:
        work = Path(tmp)
        if args.stage == "tap":
            from bench.emulator import running

            with running(args.journals) as env:
                runs = _rounds(args, _tap_commands(args, env, work), work)
        else:
            runs = _rounds(args, _load_commands(args, work), work)
    summary = summarise(runs, args.candidates[0])
    result = {
        "stage": args.stage,
        "argv": sys.argv[1:] if argv is None else argv,
        "git": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
        "cpus": os.cpu_count(),
        "runs": runs,
        "summary": summary,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
