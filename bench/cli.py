"""``python -m bench``: generate the data, run the stages side by side, print and save results."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import chart, peerenv, report, stages, voyado
from bench.core import BENCH_DIR, FLOOR, LIMIT, OURS, PEER, ROOT, SOURCE, Context
from bench.datagen import DATA_DIR, generate

ROLES = (OURS, PEER, LIMIT, FLOOR, SOURCE)
STAGES = ("load", "pg", "map", "tap", "e2e", "memory", "incr", "push", "loyaltylion", "voyado")
STAGE_PEERS = {
    "load": (peerenv.TARGET_DUCKDB, peerenv.SINGER_SDK),
    "pg": (peerenv.TARGET_POSTGRES,),
    "map": (peerenv.MELTANO_MAP,),
    "tap": (peerenv.SINGER_SDK,),
    "e2e": (peerenv.SINGER_SDK, peerenv.MELTANO_MAP),
    "memory": (),
    "incr": (),
    "push": (),
    "loyaltylion": (peerenv.SINGER_SDK,),
    "voyado": (),
}
KEY_PACKAGES = (
    "target-duckdb",
    "meltanolabs-target-postgres",
    "psycopg",
    "psycopg2-binary",
    "meltano-map-transform",
    "singer-sdk",
    "duckdb",
    "duckdb-engine",
    "sqlalchemy",
    "simpleeval",
    "jsonschema",
    "requests",
)


def _size(text: str) -> int:
    """Accept 1000000, 1_000_000, 100k, 1M, 5m."""
    raw = text.strip().lower().replace("_", "")
    mult = {"k": 1_000, "m": 1_000_000}.get(raw[-1:], 1)
    try:
        value = int(float(raw[:-1] if mult > 1 else raw) * mult)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not a size: {text!r} (use e.g. 200000, 100k, 1M)"
        ) from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"size must be at least 1, got {text!r}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Options; `make bench BENCH_ARGS="..."` passes them through."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "--size", type=_size, default=None, help="records per stage (default 1M; 50k with --quick)"
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="STAGE",
        help=f"run only these stages ({', '.join(STAGES)}); repeat or comma-separate",
    )
    p.add_argument("--quick", action="store_true", help="small sizes and subsets, for a smoke run")
    p.add_argument("--repeat", type=int, default=3, help="median of this many runs for runs < 15 s")
    p.add_argument(
        "--memory-sizes",
        default=None,
        help="comma list for the memory stage (default 100k,1M,5M; 20k,50k with --quick)",
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--roles",
        default=",".join(ROLES),
        help="measure only these roles (ours, peer, limit, floor, source); others show as skipped",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DATA_DIR,
        help="where generated data sets are cached and scratch runs go (default bench/.data)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="results JSON (default bench/results/<date>.json)"
    )
    p.add_argument(
        "--note",
        default="",
        help="kept in the results JSON: what the numbers need beside them (e.g. a busy host)",
    )
    args = p.parse_args(argv)
    only = [s.strip() for item in args.only for s in item.split(",") if s.strip()]
    unknown = [s for s in only if s not in STAGES]
    if unknown:
        p.error(f"unknown stage {unknown[0]!r}; stages are {', '.join(STAGES)}")
    args.only = only or list(STAGES)
    args.data_dir = args.data_dir.resolve()  # runs start in their own scratch folder
    if args.size is None:
        args.size = 50_000 if args.quick else 1_000_000
    default_mem = "20k,50k" if args.quick else "100k,1M,5M"
    args.memory_sizes = [
        _size(s) for s in (args.memory_sizes or default_mem).split(",") if s.strip()
    ]
    args.roles = tuple(r.strip() for r in args.roles.split(",") if r.strip())
    bad = [r for r in args.roles if r not in ROLES]
    if bad:
        p.error(f"unknown role {bad[0]!r}; roles are {', '.join(ROLES)}")
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def _machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _git_rev() -> str:
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or "unknown"


def _default_out(args: argparse.Namespace, started: datetime) -> Path:
    day = started.strftime("%Y-%m-%d")
    default = args.size == 1_000_000 and not args.quick and args.only == list(STAGES)
    if default:
        return BENCH_DIR / "results" / f"{day}.json"
    tag = "quick" if args.quick else f"size{args.size}"
    if args.only != list(STAGES):
        tag += "-" + "-".join(args.only)
    return BENCH_DIR / "results" / f"{day}-{tag}.json"


def main(argv: list[str] | None = None) -> int:
    """Run the bench; exit 0 when it ran (missed targets are reported, not an error)."""
    args = parse_args(argv)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    work = args.data_dir / f"work-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        size=args.size,
        quick=args.quick,
        repeat=args.repeat,
        seed=args.seed,
        work=work,
        data_dir=args.data_dir,
        roles=args.roles,
        memory_sizes=args.memory_sizes,
    )
    print(f"[bench] stages {', '.join(args.only)}; N={args.size:,}; work dir {work}", flush=True)

    needed = (
        {env.name: env for s in args.only for env in STAGE_PEERS[s]} if PEER in args.roles else {}
    )
    for env in needed.values():
        ctx.peer_status[env.name] = peerenv.ensure(env)
    versions = {
        name: {k: v for k, v in peerenv.installed_versions(env).items() if k in KEY_PACKAGES}
        for name, env in needed.items()
        if ctx.peer_status[name][0]
    }
    t_gen = time.monotonic()
    generate(args.size, args.seed, args.data_dir)
    print(
        f"[bench] data set of {args.size:,} records ready in {time.monotonic() - t_gen:.1f} s",
        flush=True,
    )
    try:
        for name in args.only:
            try:
                getattr(voyado if name == "voyado" else stages, f"stage_{name}")(ctx)
            except Exception as exc:  # one broken stage must not hide the others' results
                print(f"[bench] stage {name} aborted: {type(exc).__name__}: {exc}", flush=True)
                ctx.add(
                    stages.Row(
                        name,
                        f"(stage {name})",
                        "ours",
                        status="failed",
                        reason=f"{type(exc).__name__}: {exc}"[:300],
                    )
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    targets = report.evaluate_targets(ctx)
    result = {
        "date": started.isoformat(timespec="seconds"),
        "git": _git_rev(),
        "note": args.note,
        "machine": _machine(),
        "args": {
            "size": args.size,
            "only": args.only,
            "quick": args.quick,
            "repeat": args.repeat,
            "memory_sizes": args.memory_sizes,
            "seed": args.seed,
        },
        "method": (
            "whole process, stdin from file, stdout to /dev/null (tap: to a file, counted); "
            "wall = median of up to --repeat runs for runs < 15 s, else one run; peak RSS = "
            "largest single process (wait4 ru_maxrss), tree = peak summed RSS of the process tree"
        ),
        "peer_versions": versions,
        "peer_install": {k: v[1] for k, v in ctx.peer_status.items()},
        "rows": [r.as_dict() for r in ctx.rows],
        "targets": targets,
        "elapsed_s": round(time.monotonic() - t0, 1),
    }
    out = args.out or _default_out(args, started)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    picture = chart.write_chart(out)
    print()
    print(report.table(ctx))
    print()
    print("Targets (ratios from this run):")
    print(report.targets_text(targets))
    print(f"\n[bench] results: {out}  ({result['elapsed_s']:.0f} s in all)")
    print(f"[bench] chart: {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
