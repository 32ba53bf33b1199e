"""`python -m bench`: run the benchmark scenarios, print a table, write a JSON file.

.venv/bin/python -m bench --quick              # a few minutes, scaled-down figures
.venv/bin/python -m bench                      # the full run of bench/RESULTS.md
.venv/bin/python -m bench --scenarios big,recovery --repeat 5
.venv/bin/python -m bench --peer kuberay       # ours and KubeRay's, alternated
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from . import report
from .env import KUBERAY, OURS, Bench, nodes_for
from .report import Results
from .scenarios import OPT_IN, SCENARIOS, Config, Scenarios

log = logging.getLogger("bench")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument(
        "--scenarios",
        default=",".join(s for s in SCENARIOS if s not in OPT_IN),
        help=f"comma-separated, run in this order: {','.join(SCENARIOS)} (default: all "
        f"but {','.join(OPT_IN)})",
    )
    p.add_argument("--quick", action="store_true", help="scaled down: a few minutes in all")
    p.add_argument("--repeat", type=int, help="repeats per figure (default 3, quick 1)")
    p.add_argument("--ceiling-pods", type=_ints, help="ceiling sizes (default 201,500,2000)")
    p.add_argument("--ceiling-concurrency", type=int, default=32)
    p.add_argument("--big-workers", type=int, help="scenarios 2 and 7 (default 200)")
    p.add_argument(
        "--recovery-kill-points",
        type=int,
        help="scenario 7: SIGKILL at this many points from 0 to all pods created (default 1: "
        "at half)",
    )
    p.add_argument("--many-clusters", type=int, help="scenario 3 (default 100)")
    p.add_argument("--many-namespaces", type=int, help="scenario 3 (default 10)")
    p.add_argument("--scale-step", type=int, help="scenario 4: +/- workers (default 100)")
    p.add_argument("--steady-seconds", type=float, help="scenario 5 window (default 300)")
    p.add_argument("--memory-pods", type=_ints, help="scenario 6 (default 1000,5000)")
    p.add_argument("--unrelated-pods", type=int, help="scenario 6 (default 10000)")
    p.add_argument("--resync-clusters", type=int, help="scenario 8 (default 1000)")
    p.add_argument("--rayjobs", type=int, help="scenario 9 (default 50)")
    p.add_argument("--thousand-clusters", type=int, help="scenario 10 (default 1000)")
    p.add_argument("--thousand-namespaces", type=int, help="scenario 10 (default 50)")
    p.add_argument("--pods-per-node", type=int, default=250, help="kwok node size")
    p.add_argument(
        "--operator-pythonpath",
        default="",
        help="run the operator with this PYTHONPATH (e.g. a patched copy of operator/)",
    )
    p.add_argument(
        "--operator-arg",
        action="append",
        default=[],
        help="extra `ray-operator run` argument (repeatable), e.g. --operator-arg=--workers=8",
    )
    p.add_argument(
        "--py-spy",
        default="",
        help="path of a py-spy binary: record every operator process (raw collapsed stacks)",
    )
    p.add_argument(
        "--peer",
        choices=["", KUBERAY],
        default="",
        help="also measure this operator: every repeat runs on a fresh control plane, "
        "ours and the peer alternated (ceiling included), each compared with its own "
        "run's ceiling",
    )
    p.add_argument(
        "--peer-arg",
        action="append",
        default=[],
        help="extra flag for the peer's operator (repeatable), e.g. "
        "--peer-arg=--enable-leader-election=false",
    )
    p.add_argument("--json", type=Path, help="results file (default bench/results-<time>.json)")
    p.add_argument(
        "--markdown",
        type=Path,
        metavar="JSON",
        help="print an existing results file as Markdown tables and exit",
    )
    p.add_argument("--keep", action="store_true", help="keep the control plane's directory")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    cfg = Config()
    if args.quick:
        cfg = Config(
            repeat=1,
            ceiling_pods=[201],
            many_clusters=30,
            many_namespaces=3,
            scale_step=50,
            steady_seconds=30.0,
            memory_ray_pods=[200, 600],
            unrelated_pods=1000,
            resync_clusters=100,
            resync_namespaces=2,
            rayjobs=10,
            thousand_clusters=100,
            thousand_namespaces=5,
        )
    overrides = {
        "repeat": args.repeat,
        "ceiling_pods": args.ceiling_pods,
        "big_workers": args.big_workers,
        "recovery_kill_points": args.recovery_kill_points,
        "many_clusters": args.many_clusters,
        "many_namespaces": args.many_namespaces,
        "scale_step": args.scale_step,
        "steady_seconds": args.steady_seconds,
        "memory_ray_pods": args.memory_pods,
        "unrelated_pods": args.unrelated_pods,
        "resync_clusters": args.resync_clusters,
        "rayjobs": args.rayjobs,
        "thousand_clusters": args.thousand_clusters,
        "thousand_namespaces": args.thousand_namespaces,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    cfg.ceiling_concurrency = args.ceiling_concurrency
    return cfg


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _alternated(rounds: int, operators: list[str]) -> list[str]:
    """ours, peer, peer, ours, ours, peer...: each operator runs first as often as
    second, so a load trend over the run favours neither."""
    out: list[str] = []
    for r in range(rounds):
        out += operators if r % 2 == 0 else operators[::-1]
    return out


def _run(
    which: str,
    cfg: Config,
    selected: list[str],
    nodes: int,
    args: argparse.Namespace,
    results: Results,
) -> BaseException | None:
    """The selected scenarios on a fresh control plane with one operator; returns the
    error that stopped it, if any (what was measured so far stays in `results`)."""
    workdir = Path(tempfile.mkdtemp(prefix="ray-operator-bench-"))
    bench = Bench(workdir, nodes, args.pods_per_node, operator=which)
    if args.operator_pythonpath:
        bench.operator_env["PYTHONPATH"] = os.path.abspath(args.operator_pythonpath)
    bench.operator_args = list(args.operator_arg)
    bench.peer_args = list(args.peer_arg)
    bench.py_spy = args.py_spy if which == OURS else ""
    results.add("0 run", "1-min load average at start", os.getloadavg()[0], "")
    failed: BaseException | None = None
    try:
        bench.start()
        bench.start_operator()
        scenarios = Scenarios(bench, cfg, results)
        for name in selected:
            log.info("== scenario %s (%s)", name, which)
            t = time.monotonic()
            SCENARIOS[name](scenarios)
            results.add_detail("durations", {name: round(time.monotonic() - t, 1)})
    except BaseException as err:  # still print and save what was measured
        failed = err
        log.exception("benchmark stopped")
        if bench.operator is not None:
            print(f"--- operator log tail ---\n{bench.operator.log_tail(40)}", file=sys.stderr)
    finally:
        bench.stop(keep=args.keep)
        if args.keep or bench.py_spy:  # the profiles are written there
            print(f"run directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results.add("0 run", "1-min load average at end", os.getloadavg()[0], "")
    return failed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown:
        print(report.markdown(json.loads(args.markdown.read_text())), end="")
        return 0
    # SIGTERM, or SIGINT even when started in the background (where it is ignored),
    # stops the run through the same cleanup as Ctrl-C: no process is left behind.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    selected = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in selected if s not in SCENARIOS]
    if unknown:
        print(f"unknown scenarios: {', '.join(unknown)}", file=sys.stderr)
        return 2
    cfg = make_config(args)
    if args.peer and "ceiling" not in selected and any(s in selected for s in ("big", "many")):
        selected = ["ceiling", *selected]  # percentages need their own run's ceiling
    if "ceiling" not in selected:
        cfg.ceiling_pods = []
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.json or Path(__file__).resolve().parent / f"results-{stamp}.json"
    given = argv if argv is not None else sys.argv[1:]
    meta = {
        "command": " ".join(["python -m bench", *(shlex.quote(a) for a in given)]),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scenarios": selected,
        "config": vars(cfg),
        "machine_at_start": report.machine(),
        "versions": report.versions(),
        "operator_pythonpath": args.operator_pythonpath,
        "operator_args": args.operator_arg,
    }
    nodes = nodes_for(cfg.peak_pods(selected), args.pods_per_node)
    meta["kwok_nodes"] = {"nodes": nodes, "pods_per_node": args.pods_per_node}
    started = time.monotonic()
    if args.peer:
        meta["scenarios"] = selected
        runs = _alternated(cfg.repeat, [OURS, args.peer])
        one = copy.deepcopy(cfg)
        one.repeat = 1
        meta["runs"] = [{"operator": which} for which in runs]
    else:
        runs, one = [OURS], cfg
    results = {which: Results() for which in dict.fromkeys(runs)}
    failed: BaseException | None = None
    for i, which in enumerate(runs):
        log.info("== run %d/%d: %s", i + 1, len(runs), which)
        failed = _run(which, one, selected, nodes, args, results[which])
        if failed:
            break
    meta["wall_seconds"] = round(time.monotonic() - started, 1)
    meta["machine_at_end"] = report.machine()
    meta["error"] = repr(failed) if failed else None
    if args.peer:
        report.write_json_peers(out, results, meta)
        print()
        print(report.compare_table(results))
        for which, res in results.items():
            print(f"\n{which}:")
            print(report.api_table(res))
    else:
        report.write_json(out, results[OURS], meta)
        print()
        print(report.table(results[OURS]))
        print()
        print(report.api_table(results[OURS]))
    print(f"\nresults: {out}  ({meta['wall_seconds']:.0f}s, load average at end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
