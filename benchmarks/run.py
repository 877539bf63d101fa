"""Run the rpcbd benchmarks: ``python -m benchmarks.run [--quick] [--pin] [--json-lib L]``.

For every (implementation, workload) pair a fresh server process and a fresh client
process are forked; the server reports its CPU time and memory through an RPC method
(``stats``) called before and after the timed part, so each figure belongs to exactly
one workload. Results go to ``benchmarks/RESULTS.md``, ``benchmarks/results.json`` and
``benchmarks/throughput.png`` (or the directory given with ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import multiprocessing
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.impls import (
    Impl,
    available_impls,
    context_switches,
    make_client_peer,
    open_async_client,
    open_sync_client,
    run_server,
)
from benchmarks.workloads import SIZES, WORKLOADS, Measurement, Workload, run_async, run_sync
from rpcbd._compiled import COMPILED_MODULES, compiled_modules

__all__ = ["main"]

HERE = Path(__file__).resolve().parent
PLOT_WINDOWS = (1, 8, 32, 128)
#: Workloads run only to draw the plot (and skipped with --no-plot).
PLOT_ONLY = ("inflight-1", "inflight-8", "inflight-32")
PLOT_IMPLS = (
    "floor-threads",
    "floor-threads-mux",
    "floor-threads-coalesced",
    "floor-asyncio",
    "rpcbd-threaded-tcp",
    "rpcbd-aio-tcp",
    "pylsp",
)
WARMUP = {"full": 300, "quick": 10}


# -- child processes --------------------------------------------------------------------------


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    # Also the place every child starts: apply the prototypes asked for with --experiment.
    names = os.environ.get("RPCBD_BENCH_EXPERIMENTS")
    if names:
        from benchmarks.experiments import apply

        apply(names.split(","))


def _server_process(impl: Impl, pipe: Any, cpu: int | None, json_lib: str) -> None:
    _pin(cpu)

    def ready(url: str) -> None:
        pipe.send(url)

    def stop() -> None:
        pipe.recv()

    async def stop_async() -> None:
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)

    try:
        run_server(impl, ready, stop, stop_async, json_lib)
    except BaseException:
        traceback.print_exc()
        pipe.send(None)
    os._exit(0)  # leftover daemon threads (socketserver, floor) must not delay exit


def _percentile(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


def _summarise(
    impl: Impl,
    workload: Workload,
    m: Measurement,
    client_cpu: float,
    client_csw: int,
    before: Any,
    after: Any,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "impl": impl.name,
        "workload": workload.name,
        "calls": m.calls,
        "wall_s": m.wall,
        "calls_s": m.calls / m.wall if m.wall else 0.0,
        "p50_us": _percentile(m.latencies, 0.50),
        "p99_us": _percentile(m.latencies, 0.99),
        "client_cpu_us": client_cpu / m.calls * 1e6,
        "client_csw": client_csw / m.calls,
        "server_csw": None,
        "server_cpu_us": None,
        "rss_growth_kib": None,
        "mb_s": None,
        "error": m.error,
    }
    if m.payload_bytes:
        result["mb_s"] = 2 * m.payload_bytes * m.calls / m.wall / 1e6
    if before and after:
        result["server_cpu_us"] = (after["cpu"] - before["cpu"]) / m.calls * 1e6
        result["server_csw"] = (after["csw"] - before["csw"]) / m.calls
        # Peak during the workload over the resident size before it.
        result["rss_growth_kib"] = after["hwm_kb"] - before["rss_kb"]
    if before and "stats_open" in m.extra:
        result["rss_growth_kib"] = m.extra["stats_open"]["rss_kb"] - before["rss_kb"]
    return result


def _client_process(
    impl: Impl,
    url: str | None,
    workload: Workload,
    mode: str,
    pipe: Any,
    cpu: int | None,
    json_lib: str,
) -> None:
    _pin(cpu)
    try:
        if impl.runtime == "asyncio":
            result = asyncio.run(_client_async(impl, url, workload, mode, json_lib))
        else:
            result = _client_sync(impl, url, workload, mode, json_lib)
    except BaseException as exc:
        result = {
            "impl": impl.name,
            "workload": workload.name,
            "error": f"{type(exc).__name__}: {exc}",
        }
        traceback.print_exc()
    pipe.send(result)
    os._exit(0)


def _n(workload: Workload, mode: str) -> int:
    return workload.quick if mode == "quick" else workload.n


def _client_sync(
    impl: Impl, url: str | None, workload: Workload, mode: str, json_lib: str
) -> dict[str, Any]:
    from benchmarks.impls import json_codec
    from benchmarks.workloads import payload_for

    peer = make_client_peer(impl)
    control = None
    try:
        control = open_sync_client(impl, url or "", json_lib, peer, mux=workload.name == "shared")
        for _ in range(WARMUP[mode]):
            control.call("echo", "warm-up")
        before = None if impl.in_process else control.call("stats")
        cpu0, csw0 = time.process_time(), context_switches()
        m = run_sync(
            workload,
            _n(workload, mode),
            control,
            lambda: open_sync_client(impl, url or "", json_lib, peer),
            SIZES[mode],
        )
        cpu, csw = time.process_time() - cpu0, context_switches() - csw0
        after = None if impl.in_process else control.call("stats")
        if workload.payload_kind != "small":
            m.payload_bytes = len(json_codec(json_lib)[0](payload_for(workload)))
        return _summarise(impl, workload, m, cpu, csw, before, after)
    finally:
        if control is not None:
            control.close()
        if peer is not None:
            peer.shutdown(timeout=5)


async def _client_async(
    impl: Impl, url: str | None, workload: Workload, mode: str, json_lib: str
) -> dict[str, Any]:
    from benchmarks.impls import _maybe_await, json_codec
    from benchmarks.workloads import payload_for

    peer = make_client_peer(impl)
    control = None
    try:
        control = await open_async_client(impl, url or "", json_lib, peer)
        for _ in range(WARMUP[mode]):
            await control.call("echo", "warm-up")
        # In process (pipe_pair) the "server" is this process: its CPU is the client's.
        before = None if impl.in_process else await control.call("stats")
        cpu0, csw0 = time.process_time(), context_switches()
        m = await run_async(
            workload,
            _n(workload, mode),
            control,
            lambda: open_async_client(impl, url or "", json_lib, peer),
            SIZES[mode],
        )
        cpu, csw = time.process_time() - cpu0, context_switches() - csw0
        after = None if impl.in_process else await control.call("stats")
        if workload.payload_kind != "small":
            m.payload_bytes = len(json_codec(json_lib)[0](payload_for(workload)))
        return _summarise(impl, workload, m, cpu, csw, before, after)
    finally:
        if control is not None:
            await control.close()
        if peer is not None:
            await _maybe_await(peer.shutdown())


# -- orchestration ---------------------------------------------------------------------------------


def _run_pair(
    impl: Impl, workload: Workload, mode: str, pin: bool, json_lib: str, timeout: float
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("fork")
    server = None
    server_pipe = None
    url = None
    try:
        if not impl.in_process:
            server_pipe, child_end = ctx.Pipe()
            server = ctx.Process(
                target=_server_process,
                args=(impl, child_end, 0 if pin else None, json_lib),
                daemon=True,
            )
            server.start()
            if not server_pipe.poll(30):
                return {
                    "impl": impl.name,
                    "workload": workload.name,
                    "error": "server did not start",
                }
            url = server_pipe.recv()
            if url is None:
                return {
                    "impl": impl.name,
                    "workload": workload.name,
                    "error": "server failed to start",
                }
        client_pipe, client_end = ctx.Pipe()
        client = ctx.Process(
            target=_client_process,
            args=(impl, url, workload, mode, client_end, 1 if pin else None, json_lib),
            daemon=True,
        )
        client.start()
        if client_pipe.poll(timeout):
            result: dict[str, Any] = client_pipe.recv()
        else:
            result = {
                "impl": impl.name,
                "workload": workload.name,
                "error": f"no result within {timeout:.0f} s",
            }
        client.join(10)
        if client.is_alive():
            client.kill()
            client.join()
        return result
    finally:
        if server is not None and server_pipe is not None:
            try:
                server_pipe.send("stop")
            except OSError:
                pass
            server.join(10)
            if server.is_alive():
                server.kill()
                server.join()


def _run_repeated(
    impl: Impl, workload: Workload, mode: str, pin: bool, json_lib: str, timeout: float, repeat: int
) -> dict[str, Any]:
    """Run the pair ``repeat`` times; keep the median run by throughput, and the spread."""
    if workload.name == "idle-10k":
        repeat = 1  # memory, not speed: one run says it (and 10,000 connections take a while)
    runs = [_run_pair(impl, workload, mode, pin, json_lib, timeout) for _ in range(repeat)]
    good = [r for r in runs if not r.get("error")]
    if len(good) < len(runs):
        bad = next(r for r in runs if r.get("error"))
        return bad
    good.sort(key=lambda r: r["calls_s"])
    chosen = dict(good[len(good) // 2])
    chosen["runs_calls_s"] = [r["calls_s"] for r in good]
    return chosen


def _plan(impls: list[Impl], only: set[str] | None, plot: bool) -> list[tuple[Impl, Workload]]:
    pairs = []
    for workload in WORKLOADS.values():
        if only is not None and workload.name not in only:
            continue
        is_plot_only = workload.name in PLOT_ONLY
        for impl in impls:
            if impl.workloads is not None and workload.name not in impl.workloads:
                continue
            if is_plot_only and (not plot or impl.name not in PLOT_IMPLS):
                continue
            if impl.in_process and workload.name in ("conns", "idle-10k"):
                continue
            if workload.name == "idle-10k" and impl.name not in ("floor-asyncio", "rpcbd-aio-tcp"):
                continue  # the target is about asyncio over TCP; threads: not a use case
            pairs.append((impl, workload))
    return pairs


# -- reporting ---------------------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "rpcbd_compiled": len(compiled_modules()),
        "platform": platform.platform(),
        "loadavg_start": os.getloadavg(),
    }


def _fmt(value: Any, spec: str = ".0f") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return format(value, spec)


def _index(results: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["impl"], r["workload"]): r for r in results if not r.get("error")}


def _ratio(r: dict[str, Any], floor: dict[str, Any] | None, workload: str) -> str:
    if floor is None:
        return "-"
    if workload in ("conns", "idle-10k"):
        return f"wall {r['wall_s'] / floor['wall_s']:.2f}x"
    text = f"{r['calls_s'] / floor['calls_s']:.2f}x"
    if workload == "seq":
        text += f" (p50 {r['p50_us'] / floor['p50_us']:.2f}x)"
    return text


def _cpu_ratio(r: dict[str, Any], floor: dict[str, Any] | None) -> str:
    """Client + server CPU per call over the floor's: steadier than throughput on a busy
    machine, because time spent waiting for a CPU is not counted."""
    if floor is None or r.get("server_cpu_us") is None or floor.get("server_cpu_us") is None:
        return "-"
    mine = r["client_cpu_us"] + r["server_cpu_us"]
    theirs = floor["client_cpu_us"] + floor["server_cpu_us"]
    return f"{mine / theirs:.1f}x" if theirs > 0 else "-"


def _targets(results: list[dict[str, Any]], json_lib: str) -> list[str]:
    idx = _index(results)
    lines = ["| target | impl | measured | verdict |", "|---|---|---|---|"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "**NOT met**"

    def check(
        label: str, impl: str, floor: str, workload: str, metric: str, limit: float, higher: bool
    ) -> None:
        r, f = idx.get((impl, workload)), idx.get((floor, workload))
        if r is None or f is None:
            lines.append(f"| {label} | {impl} | not measured | n/a |")
            return
        value = r[metric] / f[metric]
        ok = value >= limit if higher else value <= limit
        lines.append(
            f"| {label} | {impl} | {value:.2f}x ({'>=' if higher else '<='} {limit}) | {verdict(ok)} |"
        )

    def rss(label: str, impl: str, workload: str, limit_mib: float) -> None:
        r = idx.get((impl, workload))
        if r is None or r.get("rss_growth_kib") is None:
            lines.append(f"| {label} | {impl} | not measured | n/a |")
            return
        mib = r["rss_growth_kib"] / 1024
        lines.append(f"| {label} | {impl} | {mib:.1f} MiB | {verdict(mib <= limit_mib)} |")

    check(
        "sequential p50 latency <= 1.1x floor",
        "rpcbd-threaded-tcp",
        "floor-threads",
        "seq",
        "p50_us",
        1.1,
        False,
    )
    check(
        "128 in flight >= 0.7x floor (threads)",
        "rpcbd-threaded-tcp",
        "floor-threads",
        "inflight-128",
        "calls_s",
        0.7,
        True,
    )
    check(
        "128 in flight >= 0.8x floor (asyncio)",
        "rpcbd-aio-tcp",
        "floor-asyncio",
        "inflight-128",
        "calls_s",
        0.8,
        True,
    )
    for impl, floor in (
        ("rpcbd-threaded-tcp", "floor-threads"),
        ("rpcbd-aio-tcp", "floor-asyncio"),
    ):
        check("notifications >= 1.0x floor", impl, floor, "notify", "calls_s", 1.0, True)
        for big in ("str-1MiB", "ints-100k"):
            check(f"{big} >= 0.9x floor", impl, floor, big, "calls_s", 0.9, True)
        check("200x50 wall <= 1.2x floor", impl, floor, "conns", "wall_s", 1.2, False)
        rss("200x50 server RSS growth <= 8 MiB", impl, "conns", 8)
    for impl in ("rpcbd-threaded-tcp", "rpcbd-aio-tcp"):
        for workload in WORKLOADS.values():
            if workload.name in PLOT_ONLY:
                continue  # the issue's workloads only; these draw the plot
            r, p = idx.get((impl, workload.name)), idx.get(("pylsp", workload.name))
            if r is None or p is None:
                continue
            required = json_lib == "orjson" or workload.small
            ratio = r["calls_s"] / p["calls_s"]
            label = f"faster than pylsp: {workload.name}"
            shown = (
                verdict(ratio > 1)
                if required
                else f"{'faster' if ratio > 1 else 'slower'} (not required with stdlib json)"
            )
            lines.append(f"| {label} | {impl} | {ratio:.2f}x pylsp | {shown} |")
    rss("10,000 idle connections < 200 MiB", "rpcbd-aio-tcp", "idle-10k", 200)
    return lines


def _csw(r: dict[str, Any]) -> str:
    client = r.get("client_csw")
    if client is None:
        return "-"
    server = r.get("server_csw")
    return f"{client:.2f}" if server is None else f"{client:.2f}+{server:.2f}"


def _table(results: list[dict[str, Any]], impls: dict[str, Impl]) -> list[str]:
    idx = _index(results)
    rows = [
        "| workload | impl | calls/s (spread) | p50 µs | p99 µs | MB/s | client CPU µs/call | server CPU µs/call | ctx switches/call client+server | server RSS growth KiB | ratio to floor | CPU/call vs floor | vs pylsp |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        impl = impls.get(r["impl"])
        if r.get("error"):
            rows.append(
                f"| {r['workload']} | {r['impl']} | ERROR: {r['error']} | | | | | | | | | | |"
            )
            continue
        floor = idx.get((impl.floor, r["workload"])) if impl and impl.floor else None
        pylsp = idx.get(("pylsp", r["workload"]))
        to_pylsp = (
            f"{r['calls_s'] / pylsp['calls_s']:.2f}x" if pylsp and r["impl"] != "pylsp" else "-"
        )
        runs = r.get("runs_calls_s") or [r["calls_s"]]
        spread = f" ({min(runs):.0f}-{max(runs):.0f})" if len(runs) > 1 else ""
        calls = f"{r['calls_s']:.0f}{spread}"
        if r["workload"] in ("conns", "idle-10k"):
            calls += f", wall {r['wall_s']:.2f} s"
        rows.append(
            f"| {r['workload']} | {r['impl']} | {calls} | {_fmt(r['p50_us'])} | {_fmt(r['p99_us'])} | "
            f"{_fmt(r['mb_s'], '.1f')} | {_fmt(r['client_cpu_us'], '.1f')} | {_fmt(r['server_cpu_us'], '.1f')} | "
            f"{_csw(r)} | {_fmt(r['rss_growth_kib'])} | {_ratio(r, floor, r['workload'])} | {_cpu_ratio(r, floor)} | {to_pylsp} |"
        )
    return rows


def _build_line(machine: dict[str, Any]) -> str:
    compiled = machine.get("rpcbd_compiled", 0)
    if not compiled:
        return "pure Python (the default; see docs/performance.md for the compiled build)"
    return f"compiled with mypyc ({compiled} of {len(COMPILED_MODULES)} modules)"


def write_report(
    out: Path,
    runs: dict[str, list[dict[str, Any]]],
    notes: list[str],
    args: argparse.Namespace,
    machine: dict[str, Any],
    command: str,
) -> None:
    impls = {i.name: i for i in available_impls()[0]}
    text = [
        "# rpcbd benchmark results",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- command: `{command}`",
        f"- machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['platform']}",
        f"- python: {machine['python']}; JSON libraries: {', '.join(runs)} (the floors use the same library "
        "as rpcbd in each table; python-lsp-jsonrpc always uses ujson, its own choice when installed)",
        f"- rpcbd build: {_build_line(machine)}",
        f"- pinning: {'server on CPU 0, client on CPU 1' if args.pin else 'none'}; load average at start: "
        + ", ".join(f"{x:.2f}" for x in machine["loadavg_start"]),
        f"- mode: {'quick (a handful of calls: proves the harness works, the numbers mean nothing)' if args.quick else 'full'}; "
        f"each pair run {args.repeat} time(s), the median run (by calls/s) is shown with the spread",
        "",
        "Ratios are calls/s over the floor of the same runtime in the same run (>1: faster than",
        "the floor); for `seq` also the p50 latency ratio (<1: lower latency); for `conns` the",
        'wall-time ratio (<1: faster). "CPU/call vs floor" is client + server CPU per call over the',
        "floor's (steadier than throughput on a busy machine). See README.md for how to read them;",
        "PROFILE.md has the profile of the hot path and the proposed changes.",
    ]
    for json_lib, results in runs.items():
        text += [
            "",
            f"## JSON library: {json_lib}",
            "",
            *_table(results, impls),
            "",
            f"### Targets (issue 7), {json_lib}",
            "",
            *_targets(results, json_lib),
        ]
    text += ["", "## Notes", "", *(f"- {note}" for note in notes), ""]
    (out / "RESULTS.md").write_text("\n".join(text))


def plot(out: Path, runs: dict[str, list[dict[str, Any]]], notes: list[str]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        notes.append(
            "throughput.png not drawn: matplotlib is not installed (pip install matplotlib)"
        )
        return
    fig, axes = plt.subplots(1, len(runs), figsize=(6.5 * len(runs), 4.5), squeeze=False)
    drawn = False
    for ax, (json_lib, results) in zip(axes[0], runs.items(), strict=True):
        idx = _index(results)
        for impl in PLOT_IMPLS:
            points = [
                (w, idx[(impl, f"inflight-{w}")]["calls_s"])
                for w in PLOT_WINDOWS
                if (impl, f"inflight-{w}") in idx
            ]
            if len(points) >= 2:
                xs, ys = zip(*points, strict=True)
                ax.plot(
                    xs,
                    ys,
                    marker="o",
                    label=impl,
                    linestyle="--" if impl.startswith("floor") else "-",
                )
                drawn = True
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(PLOT_WINDOWS, [str(w) for w in PLOT_WINDOWS])
        ax.set_xlabel("calls in flight on one connection")
        ax.set_ylabel("calls/s")
        ax.set_title(f"echo throughput vs calls in flight ({json_lib})")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    if drawn:
        fig.tight_layout()
        fig.savefig(out / "throughput.png", dpi=100)
    else:
        notes.append("throughput.png not drawn: the inflight-* workloads were not run")
    plt.close(fig)


# -- command line --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="a handful of calls per workload (smoke test)"
    )
    parser.add_argument(
        "--pin", action="store_true", help="pin the server to CPU 0 and the client to CPU 1"
    )
    parser.add_argument(
        "--json-lib",
        choices=("orjson", "stdlib", "both"),
        default=None,
        help="default: both when orjson is installed",
    )
    parser.add_argument(
        "--only",
        default=None,
        help=f"comma-separated workloads (default: all): {','.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--impl", default=None, help="comma-separated implementations (default: all available)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs per pair, median kept (default: 3, 1 with --quick)",
    )
    parser.add_argument(
        "--no-plot", action="store_true", help="skip the inflight-1/8/32 runs and the plot"
    )
    parser.add_argument(
        "--out", type=Path, default=HERE, help="where RESULTS.md, results.json, throughput.png go"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds per run before giving up"
    )
    parser.add_argument(
        "--experiment",
        default=None,
        help="comma-separated prototypes from benchmarks/experiments.py to apply in every process",
    )
    args = parser.parse_args(argv)

    try:
        import orjson  # noqa: F401

        has_orjson = True
    except ImportError:
        has_orjson = False
    notes: list[str] = []
    if args.json_lib is None:
        args.json_lib = "both" if has_orjson else "stdlib"
    libs = ["orjson", "stdlib"] if args.json_lib == "both" else [args.json_lib]
    if "orjson" in libs and not has_orjson:
        parser.error("orjson is not installed (pip install orjson)")
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.pin and (os.cpu_count() or 1) < 2:
        notes.append("--pin ignored: fewer than 2 CPUs")
        args.pin = False
    impls, skipped = available_impls()
    notes.extend(skipped)
    if args.impl:
        wanted = set(args.impl.split(","))
        unknown = wanted - {i.name for i in impls}
        if unknown:
            notes.append(f"requested but not available: {', '.join(sorted(unknown))}")
        impls = [i for i in impls if i.name in wanted]
    only = set(args.only.split(",")) if args.only else None
    if only and only - set(WORKLOADS):
        parser.error(
            f"unknown workload(s) {', '.join(sorted(only - set(WORKLOADS)))}; known: {', '.join(WORKLOADS)}"
        )
    if args.experiment:
        from benchmarks.experiments import EXPERIMENTS

        unknown_experiments = set(args.experiment.split(",")) - set(EXPERIMENTS)
        if unknown_experiments:
            parser.error(
                f"unknown experiment(s) {', '.join(sorted(unknown_experiments))}; known: {', '.join(EXPERIMENTS)}"
            )
        os.environ["RPCBD_BENCH_EXPERIMENTS"] = args.experiment
        notes.append(f"PROTOTYPES APPLIED (monkeypatched, not rpcbd as shipped): {args.experiment}")
    mode = "quick" if args.quick else "full"
    timeout = args.timeout or (30.0 if args.quick else 300.0)
    machine = _machine()
    command = " ".join(["python -m benchmarks.run", *(sys.argv[1:] if argv is None else argv)])

    runs: dict[str, list[dict[str, Any]]] = {}
    started = time.monotonic()
    for json_lib in libs:
        # The runtimes read RPCBD_JSON; forked children inherit it.
        os.environ["RPCBD_JSON"] = json_lib
        results = runs[json_lib] = []
        for impl, workload in _plan(impls, only, not args.no_plot):
            result = _run_repeated(impl, workload, mode, args.pin, json_lib, timeout, args.repeat)
            results.append(result)
            if result.get("error"):
                print(
                    f"{json_lib:6} {workload.name:13} {impl.name:26} ERROR {result['error']}",
                    flush=True,
                )
            else:
                print(
                    f"{json_lib:6} {workload.name:13} {impl.name:26} {result['calls_s']:10.0f} calls/s  "
                    f"p50 {result['p50_us']:8.1f} µs  p99 {result['p99_us']:8.1f} µs",
                    flush=True,
                )
    machine["loadavg_end"] = os.getloadavg()
    if max(machine["loadavg_start"][0], machine["loadavg_end"][0]) > 0.5:
        notes.append(
            "the machine was busy with other work during this run (see the load averages): "
            "absolute numbers swing between runs; compare ratios within one table"
        )
    notes.append(
        f"the whole run took {time.monotonic() - started:.0f} s; load average at the end: "
        + ", ".join(f"{x:.2f}" for x in machine["loadavg_end"])
    )
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.no_plot:
        plot(args.out, runs, notes)
    (args.out / "results.json").write_text(
        json.dumps({"machine": machine, "command": command, "runs": runs, "notes": notes}, indent=1)
    )
    write_report(args.out, runs, notes, args, machine, command)
    print(f"wrote {args.out / 'RESULTS.md'}")
    for note in notes:
        print(f"note: {note}")
    return 1 if any(r.get("error") for results in runs.values() for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
