"""The benchmark's table, its Markdown report and its plot."""

import os
import platform
import time
from pathlib import Path

TARGETS = (
    "p50 <= 10 ms, p99 <= 50 ms, within 2x of the bare consumer, "
    ">= 100x better than polling, <= 40 KiB per idle socket, nothing lost"
)


def rows(results: dict) -> list[list[str]]:
    table = [["", *results]]

    def add(label, value):
        table.append([label, *[value(r["push"], r) for r in results.values()]])

    def ms(latency: dict, *keys: str) -> str:
        return " / ".join(f"{latency[key]:.1f}" for key in keys)

    add(
        "push p50 / p90 / p99 / max (ms)",
        lambda p, r: ms(p["steady"], "p50", "p90", "p99", "max"),
    )
    add(
        "  including the connect storm",
        lambda p, r: ms(p["latency"], "p50", "p90", "p99", "max"),
    )
    add("bare consumer p50 / p99 (ms)", lambda p, r: ms(r["bare"]["latency"], "p50", "p99"))
    add(
        "push / bare at p50, p99",
        lambda p, r: ", ".join(
            f"{p['steady'][k] / r['bare']['latency'][k]:.2f}x" for k in ("p50", "p99")
        ),
    )
    add(
        "delivered / expected (lost, duplicated)",
        lambda p, r: (
            f"{p['expected'] - p['lost']} / {p['expected']} ({p['lost']}, {p['duplicated']})"
        ),
    )
    add(
        "connections dropped, resumed with last_seq; handshakes retried",
        lambda p, r: f"{p['dropped']}; {p['refused']}",
    )
    add("messages/s delivered", lambda p, r: f"{p['delivered_per_second']:.0f}")
    add(
        "polling every 2 s: mean notice (ms)",
        lambda p, r: (
            f"{p['polling']['mean']:.0f} "
            f"(missed {p['polling_missed']} of {p['polling_changes']} changes)"
        ),
    )
    add(
        "push status changes: mean (ms); polling / push",
        lambda p, r: (
            f"{p['status_latency']['mean']:.1f}; "
            f"{p['polling']['mean'] / p['status_latency']['mean']:.0f}x"
        ),
    )
    add("push mean, all messages (ms)", lambda p, r: f"{p['latency']['mean']:.1f}")
    add(
        "all executions end within 1 s: p50 / p99 / max (ms)",
        lambda p, r: ms(r["end_burst"]["latency"], "p50", "p99", "max"),
    )
    add(
        "  its status changes: mean (ms); lost, duplicated; dropped, retried",
        lambda p, r: (
            f"{r['end_burst']['status_latency']['mean']:.1f}; "
            f"{r['end_burst']['lost']}, {r['end_burst']['duplicated']}; "
            f"{r['end_burst']['dropped']}, {r['end_burst']['refused']}"
        ),
    )
    add(
        "server memory per idle socket",
        lambda p, r: f"{r['idle']['kib_per_socket']:.1f} KiB ({r['idle']['sockets']} sockets)",
    )
    add(
        "REST create under the load, 5/s: p50 / p99 (ms)",
        lambda p, r: ms(p["create_under_load"], "p50", "p99"),
    )
    add("  100 creates at once before it (8 clients)", lambda p, r: ms(p["create"], "p50", "p99"))
    add("bare consumer lost", lambda p, r: str(r["bare"]["lost"]))
    add("one worker: highest rate with p99 < 100 ms", lambda p, r: best_rate(r["ramp"]))
    table += idle_rows(results) + storm_rows(results) + ceiling_rows(results)
    return table + token_rows(results)


def token_rows(results: dict) -> list[list[str]]:
    """The token-streaming load (bench.tokens)."""
    if not all(r.get("tokens") for r in results.values()):
        return []
    runs = [r["tokens"] for r in results.values()]
    return [
        [
            "token streaming: piece written -> subscriber p50 / p99 / max (ms)",
            *[
                " / ".join(f"{t['pieces_latency'][k]:.1f}" for k in ("p50", "p99", "max"))
                for t in runs
            ],
        ],
        [
            "  pieces received / expected; events lost, duplicated",
            *[
                f"{t['pieces_received']} / {t['pieces_expected']}; {t['lost']}, {t['duplicated']}"
                for t in runs
            ],
        ],
        [
            "  pieces/s written; chunk events/s recorded (pieces per chunk)",
            *[
                f"{t['pieces_per_second']:.0f}; {t['chunks_per_second']:.0f} "
                f"({t['pieces_per_chunk']:.1f})"
                for t in runs
            ],
        ],
    ]


def idle_rows(results: dict) -> list[list[str]]:
    """How long the idle subscribers took to connect to their one server process."""
    return [
        [
            "  idle subscribers connecting: seconds; handshakes/s; client, server CPU",
            *[
                f"{i['connect_seconds']:.1f} s; {i['handshakes_per_second']:.0f}/s; "
                f"{i['client_cpu']:.0%}, {i['server_cpu']:.0%}"
                for i in (r["idle"] for r in results.values())
            ],
        ]
    ]


def storm_rows(results: dict) -> list[list[str]]:
    """The reconnect storm: a server restarted under its subscribers (bench.storm)."""
    if not all(r.get("storm") for r in results.values()):
        return []
    storms = [r["storm"] for r in results.values()]

    def codes(counts: dict) -> str:
        return ", ".join(f"{code} x{n}" for code, n in counts.items()) or "none"

    return [
        [
            "storm: subscribers of executions, restarted (down for)",
            *[
                f"{s['subscribers']} of {s['executions']}, {s['restarted']} "
                f"({s['restart_seconds']:.1f} s)"
                for s in storms
            ],
        ],
        [
            "  server back to first resumed message p50 / p99 / max (ms)",
            *[
                " / ".join(f"{s['first_message'][k]:.0f}" for k in ("p50", "p99", "max"))
                for s in storms
            ],
        ],
        [
            "  server back to handshake accepted p50 / p99 / max (ms)",
            *[
                " / ".join(f"{s['handshake'][k]:.0f}" for k in ("p50", "p99", "max"))
                for s in storms
            ],
        ],
        [
            "  delivered / stored (lost, duplicated, out of order, incomplete)",
            *[
                f"{s['expected'] - s['lost']} / {s['expected']} ({s['lost']}, "
                f"{s['duplicated']}, {s['out_of_order']}, {s['incomplete'] + s['unfinished']})"
                for s in storms
            ],
        ],
        ["  close codes seen", *[codes(s["close_codes"]) for s in storms]],
        ["  HTTP statuses of refused handshakes", *[codes(s["http_statuses"]) for s in storms]],
        [
            "  handshakes retried after the return; attempts while down",
            *[f"{s['retried_after_back']}; {s['unreachable']}" for s in storms],
        ],
        ["  terminal statuses", *[codes(s["terminal"]) for s in storms]],
    ]


def ceiling_rows(results: dict) -> list[list[str]]:
    """The fan-out ceiling of one server process, the service's beside the bare consumer's."""
    if not all(r.get("ceiling") for r in results.values()):
        return []
    from bench.ceiling import ceiling_of

    def best(steps: list[dict]) -> str:
        top = ceiling_of(steps)
        if top is None:
            return f"below {steps[0]['delivered_per_second']:.0f}/s"
        return f"{top['delivered_per_second']:.0f}/s (p99 {top['p99']:.0f} ms)"

    def ratio(ceiling: dict) -> str:
        service, bare = ceiling_of(ceiling["service"]), ceiling_of(ceiling["bare"])
        if service is None or bare is None:
            return "-"
        return f"{service['delivered_per_second'] / bare['delivered_per_second']:.0%}"

    ceilings = [r["ceiling"] for r in results.values()]
    return [
        [
            "one server: most messages/s delivered with p99 <= 50 ms",
            *[best(c["service"]) for c in ceilings],
        ],
        ["  bare consumer, same subscribers and steps", *[best(c["bare"]) for c in ceilings]],
        ["  service / bare", *[ratio(c) for c in ceilings]],
    ]


def ceiling_table(results: dict) -> list[str]:
    """Every step of both ceiling ramps, for the Markdown report."""
    lines = [
        "| mode | server | asked events/s | recorded/s | delivered/s | p50 ms | p99 ms | lost "
        "| client CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, r in results.items():
        for name in ("service", "bare"):
            for s in (r.get("ceiling") or {}).get(name, []):
                lines.append(
                    f"| {mode} | {name} | {s['target']:g} | {s['recorded_per_second']:.0f} | "
                    f"{s['delivered_per_second']:.0f} | {s['p50']:.1f} | {s['p99']:.1f} | "
                    f"{s['lost']} | {s['client_cpu']:.0%} |"
                )
    return lines


def best_rate(ramp: list[dict]) -> str:
    if not ramp:
        return "-"
    good = [s for s in ramp if s["p99"] < 100 and not s["lost"]]
    if not good:
        return f"below {ramp[0]['target']} events/s"
    best = max(good, key=lambda s: s["recorded_per_second"])
    return (
        f"{best['recorded_per_second']:.0f} events/s recorded "
        f"(asked {best['target']}; p99 {best['p99']:.0f} ms)"
    )


def render(results: dict, size_name: str, size) -> str:
    table = rows(results)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = [f"size {size_name}: {size}"]
    for n, row in enumerate(table):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def write(results: dict, size_name: str, size, path: Path) -> None:
    table = rows(results)
    markdown = ["| " + " | ".join(row) + " |" for row in table]
    markdown.insert(1, "|" + "---|" * len(table[0]))
    ramp = [
        f"| {mode} | {s['target']} | {s['recorded_per_second']:.0f} | "
        f"{s['delivered_per_second']:.0f} | {s['p50']:.1f} | {s['p99']:.1f} | {s['lost']} |"
        for mode, r in results.items()
        for s in r["ramp"]
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    plot = path.with_suffix(".png")
    plot_latencies(results, plot)
    path.write_text(
        "\n".join(
            [
                "# Benchmarks",
                "",
                f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, "
                f"{os.cpu_count()} cores, Python {platform.python_version()}, with "
                f"`python -m bench --size {size_name} --output {path}`. Everything (servers, "
                "workers, PostgreSQL, Redis and the measuring clients) runs on this one machine.",
                "",
                f"Load: {size.executions} executions at once, "
                f"{size.subscribers_per_execution} subscribers each, "
                f"{size.events_per_second:g} events/s recorded in all, each execution "
                f"for {size.seconds:g} s, their starts and ends spread over "
                f"{size.stagger:g} s; {size.idle_sockets} idle subscribers for memory. "
                "The end-burst rows repeat the load with every execution ending within one "
                "second.",
                f"Targets: {TARGETS}.",
                "",
                *markdown,
                "",
                f"![latency]({plot.name})",
                "",
                "Ramp (one worker, 20 executions, one subscriber each):",
                "",
                "| mode | target events/s | recorded/s | delivered/s | p50 ms | p99 ms | lost |",
                "|---|---|---|---|---|---|---|",
                *ramp,
                "",
                "Fan-out ceiling (one server process; the same subscribers and steps for the "
                "bare consumer):",
                "",
                *ceiling_table(results),
                "",
            ]
        )
    )


def plot_latencies(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values = [], []
    for mode, r in results.items():
        for name, latency in (("push", r["push"]["steady"]), ("bare", r["bare"]["latency"])):
            labels.append(f"{mode}\n{name}")
            values.append([latency[p] for p in ("p50", "p90", "p99")])
    figure, axis = plt.subplots(figsize=(8, 4))
    width = 0.25
    for n, percentile in enumerate(("p50", "p90", "p99")):
        axis.bar(
            [i + (n - 1) * width for i in range(len(labels))],
            [v[n] for v in values],
            width,
            label=percentile,
        )
    axis.set_xticks(range(len(labels)), labels)
    axis.set_ylabel("latency, ms (receive - recorded)")
    axis.set_title("Event latency: this service vs a bare Channels consumer")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def peer_version() -> str:
    from importlib.metadata import version

    return version("django-eventstream")


def peer_rows(comparison: dict) -> list[list[str]]:
    """This service (embedded) beside django-eventstream (bench.peer), each
    subscriber forced to reconnect once mid-run."""
    ours, peer = comparison["service"], comparison["peer"]
    pair = ({**ours["push"], "idle": ours["idle"]}, peer)
    table = [["", "this service (embedded)", f"django-eventstream {peer_version()}"]]

    def add(label, value):
        table.append([label, *[value(side) for side in pair]])

    def ms(latency: dict, *keys: str) -> str:
        return " / ".join(f"{latency[key]:.1f}" for key in keys)

    add(
        "peer p50 / p99 / max (ms), except events sent while disconnected",
        lambda p: ms(p["reconnect"]["live"], "p50", "p99", "max"),
    )
    add(
        "peer delivered / expected (lost, duplicated)",
        lambda p: f"{p['expected'] - p['lost']} / {p['expected']} ({p['lost']}, {p['duplicated']})",
    )
    add(
        "peer sent while disconnected: delivered / expected (reconnected)",
        lambda p: (
            f"{p['reconnect']['delivered']} / {p['reconnect']['expected']} "
            f"({p['reconnect']['reconnected']})"
        ),
    )
    add(
        "peer  last of them, after reconnecting: p50 / max (ms)",
        lambda p: ms(p["reconnect"]["catch_up"], "p50", "max"),
    )
    add(
        "peer server CPU s (measuring client's)",
        lambda p: f"{p['server_cpu_s']:.2f} ({p['client_cpu_s']:.2f})",
    )
    add(
        "peer KiB per connection (connections)",
        lambda p: (
            f"{p['idle']['kib_per_socket']:.1f} ({p['idle']['sockets']})"
            if "idle" in p
            else f"{p['kib_per_connection']:.1f} ({p['connections']})"
        ),
    )
    table.append(["peer this service behind on", behind(*pair), ""])
    return table


def behind(ours: dict, peer: dict) -> str:
    """The figures of the comparison on which this service is not ahead of the peer."""
    figures = {
        "p50": (ours["reconnect"]["live"]["p50"], peer["reconnect"]["live"]["p50"]),
        "p99": (ours["reconnect"]["live"]["p99"], peer["reconnect"]["live"]["p99"]),
        "max": (ours["reconnect"]["live"]["max"], peer["reconnect"]["live"]["max"]),
        "lost": (ours["lost"], peer["lost"]),
        "duplicated": (ours["duplicated"], peer["duplicated"]),
        # More delivered than expected are duplicates (counted above), not a gain.
        "lost while disconnected": (
            max(0, ours["reconnect"]["expected"] - ours["reconnect"]["delivered"]),
            max(0, peer["reconnect"]["expected"] - peer["reconnect"]["delivered"]),
        ),
        "catch-up max": (
            ours["reconnect"]["catch_up"]["max"],
            peer["reconnect"]["catch_up"]["max"],
        ),
        "server CPU": (ours["server_cpu_s"], peer["server_cpu_s"]),
        "memory per connection": (ours["idle"]["kib_per_socket"], peer["kib_per_connection"]),
    }
    # Losses are ahead at zero each; every other figure must be lower.
    worse = [
        name
        for name, (mine, theirs) in figures.items()
        if (
            mine > theirs
            if name in ("lost", "duplicated", "lost while disconnected")
            else mine >= theirs
        )
    ]
    return ", ".join(worse) or "nothing (ahead on every figure)"


def render_peer(comparison: dict) -> str:
    table = peer_rows(comparison)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in table
    )


def write_peer(comparison: dict, path: Path) -> None:
    """Append the comparison with django-eventstream to the report at ``path``."""
    table = peer_rows(comparison)
    table = [table[0], *[[row[0].removeprefix("peer "), *row[1:]] for row in table[1:]]]
    markdown = ["| " + " | ".join(row) + " |" for row in table]
    markdown.insert(1, "|" + "---|" * len(table[0]))
    peer = comparison["peer"]
    text = [
        "",
        f"## Beside django-eventstream {peer_version()}",
        "",
        "django-eventstream set up as its documentation recommends (bench/peer_app: events "
        "persisted by its DjangoModelStorage in SQLite, one channel per execution, resumed "
        "with `Last-Event-ID`), on one daphne process, fed the same messages on the same "
        "schedule by a thread of its server process (`send_event`), its "
        f"{peer['connections']} subscribers Server-Sent Events clients; beside it this "
        "service in embedded mode. In both, every subscriber drops its connection at the "
        "same moment mid-run and reconnects a moment later (this service's with "
        "`last_seq`). Latency leaves out the events sent while a subscriber was "
        "disconnected; their delivery is the next rows. Server CPU seconds are the server "
        "process's, from the subscribers' connecting to the last event; memory per "
        "connection is the server's RSS growth over as many idle connections.",
        "",
        *markdown,
        "",
    ]
    with path.open("a") as report:
        report.write("\n".join(text))
