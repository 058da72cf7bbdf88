"""Draws the plots of a `Benchmarks/run-load.sh` run from its figures (Benchmarks/results/latest.txt):

    python3 Benchmarks/plot-results.py RESULTS_FILE OUTPUT_DIR

writes OUTPUT_DIR/echo-rate.png (echo round trips/s vs concurrent streams), OUTPUT_DIR/echo-p99.png (echo p99 latency
vs concurrent streams) for Minerva over long-poll and WebSocket with each loop count and python-socketio over polling
and WebSocket, and OUTPUT_DIR/rss-per-connection.png (server RSS per held long-poll, idle WebSocket stream, idle stream
without a transport, and the peer's RSS per client while echoing). Needs matplotlib (python3-matplotlib).
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def parse(path):
    records = []
    with open(path) as file:
        for line in file:
            words = line.split()
            if not words:
                continue
            fields = dict(word.split("=", 1) for word in words[1:] if "=" in word)
            fields["_kind"] = words[0]
            records.append(fields)
    return records


LABELS = {
    "long-poll": "Minerva long-poll",
    "websocket": "Minerva WebSocket",
    "socketio-polling": "python-socketio polling",
    "socketio-websocket": "python-socketio WebSocket",
}


def series(records):
    """{label: [(streams, round trips/s, p99 ms)]} of the echo runs."""
    result = {}
    for record in records:
        if record["_kind"] != "echo" or "streams" not in record:
            continue
        transport = record.get("transport", "?")
        label = LABELS.get(transport, transport)
        if not transport.startswith("socketio"):
            loops = record.get("loops", "?")
            label += f", {loops} loop{'s' if loops != '1' else ''}"
        result.setdefault(label, []).append(
            (int(record["streams"]), int(record["round_trips_per_s"]), float(record["p99_ms"])))
    for points in result.values():
        points.sort()
    return result


def subtitle(records):
    run = next((r for r in records if r["_kind"] == "run"), {})
    end = next((r for r in records if r["_kind"] == "end"), {})
    return (f"{run.get('date', '?')}, {run.get('cores', '?')} cores shared by server and generator, "
            f"load average {run.get('load_avg', '?')} -> {end.get('load_avg', '?')}")


def echo_plot(data, index, ylabel, title, note, path, log_y):
    figure, axes = plt.subplots(figsize=(8, 5))
    for label, points in sorted(data.items()):
        style = "--" if label.startswith("python") else "-"
        axes.plot([p[0] for p in points], [p[index] for p in points], style, marker="o", label=label)
    axes.set_xscale("log")
    if log_y:
        axes.set_yscale("log")
    ticks = sorted({p[0] for points in data.values() for p in points})
    axes.set_xticks(ticks)
    axes.set_xticklabels([str(t) for t in ticks])
    axes.set_xlabel("concurrent streams (clients), each waiting for its echo")
    axes.set_ylabel(ylabel)
    axes.set_title(f"{title}\n{note}", fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def rss_plot(records, note, path):
    bars = []
    for record in records:
        if record["_kind"] == "rss":
            n = int(record["n"])
            per = (int(record["held_kib"]) - int(record["idle_kib"])) * 1024 / n
            name = {"long-poll": "held long-poll", "websocket": "idle WebSocket",
                    "idle-stream": "idle stream,\nno transport"}.get(record["kind"], record["kind"])
            bars.append((f"Minerva\n{name}\n({n:,})", per))
        elif record["_kind"] == "echo" and "peer_rss_mid_kib" in record and record.get("streams") == "256":
            n = int(record["streams"])
            per = (int(record["peer_rss_mid_kib"]) - int(record["peer_rss_before_kib"])) * 1024 / n
            transport = record["transport"].replace("socketio-", "")
            bars.append((f"python-socketio\n{transport}\n({n} echoing)", per))
    if not bars:
        return
    bars.sort(key=lambda bar: (not bar[0].startswith("Minerva"), bar[1]))
    figure, axes = plt.subplots(figsize=(9, 5))
    positions = range(len(bars))
    axes.bar(positions, [b[1] for b in bars], color=["#4477aa" if b[0].startswith("Minerva") else "#cc6677" for b in bars])
    for position, (_, value) in zip(positions, bars):
        axes.annotate(f"{value:,.0f}", (position, value), ha="center", va="bottom", fontsize=9)
    axes.set_xticks(list(positions))
    axes.set_xticklabels([b[0] for b in bars], fontsize=8)
    axes.set_yscale("log")
    axes.set_ylabel("bytes of RSS per connection / stream (log)")
    axes.set_title(f"Server RSS per connection (RSS delta / count)\n{note}", fontsize=9)
    axes.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main():
    records = parse(sys.argv[1])
    output = sys.argv[2]
    os.makedirs(output, exist_ok=True)
    note = subtitle(records)
    data = series(records)
    written = []
    if data:
        echo_plot(data, 1, "echo round trips per second", "Echo round trips/s vs concurrency", note,
                  os.path.join(output, "echo-rate.png"), log_y=True)
        echo_plot(data, 2, "echo latency p99 (ms)", "Echo p99 latency vs concurrency", note,
                  os.path.join(output, "echo-p99.png"), log_y=True)
        written += ["echo-rate.png", "echo-p99.png"]
    rss_plot(records, note, os.path.join(output, "rss-per-connection.png"))
    if any(r["_kind"] == "rss" for r in records):
        written.append("rss-per-connection.png")
    print("plots written to " + output + ": " + ", ".join(written))


if __name__ == "__main__":
    main()
