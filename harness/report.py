"""The report writer's chores: turn records into the docs' tables and PNGs.

For a figure, the section between its marker comments holds a table of the final value
of the figure's metric (mean, 95 % confidence interval over seeds, every seed), the
provenance of the records (commit, machine, date) and the commands, and the figure is
drawn to docs/img/<figure>.png. For a measurement table, the section holds the chosen
columns of the recorded rows and their provenance. A spec without a record shows "not
yet recorded". Nothing here is typed in by hand: every number comes from results/. The
command-line front end is `experiments/report.py`.
"""

from __future__ import annotations

import os

import numpy as np

from harness import records
from harness.specs import Figure, Table, command_text

# two-sided 95 % quantiles of Student's t with n - 1 degrees of freedom, n = 2 .. 31
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
       2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
       2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip
NOT_RECORDED = "not yet recorded"


def mean_ci(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its 95 % Student-t confidence interval (NaN for 1 value)."""
    values = values[~np.isnan(values)]
    n = len(values)
    if n < 2:
        return float(np.mean(values)) if n else np.nan, np.nan
    t = T95[min(n, len(T95) + 1) - 2]
    return float(values.mean()), float(t * values.std(ddof=1) / np.sqrt(n))


def interval(figure: Figure, mean: float, half: float) -> tuple[float, float]:
    """The confidence interval, within [0, 1] for a rate (the t interval can leave it)."""
    low, high = mean - half, mean + half
    if "success" in figure.metric or "time_at_goal" in figure.metric:
        low, high = max(low, 0.0), min(high, 1.0)
    return low, high


def decimals(values: np.ndarray) -> int:
    finite = np.abs(values[np.isfinite(values)])
    return 2 if finite.size == 0 or finite.max() < 2 else 1


def fmt(value: float, places: int) -> str:
    if not np.isfinite(value):
        return "–"
    return f"{round(value, places) + 0.0:.{places}f}".replace("-", "−")  # no "−0.00"


def load(figure: Figure) -> dict[str, records.Record]:
    out = {}
    for run in figure.runs:
        file = records.path(figure.name, run.config)
        if os.path.exists(file):
            out[run.config] = records.read_curves(file)
    return out


def first_solved(record: records.Record, metric: str, level: float) -> str:
    hit = np.flatnonzero(np.nanmean(record.curve(metric), axis=1) >= level)
    return f"{record.steps[hit[0]]:,}" if hit.size else "not reached"


def table(figure: Figure, found: dict[str, records.Record]) -> str:
    thresholds = any(r.threshold is not None for r in figure.runs)
    head = ["run", "env steps per seed", f"final {figure.metric_label}: mean [95 % CI]",
            "per seed"]  # fmt: skip
    if thresholds:
        head += ["worst seed", "test threshold"]
    if figure.solved is not None:
        head.append(f"first step with mean ≥ {figure.solved}")
    head += [f"final `{m}`" for m in figure.extra] + ["wall time"]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for run in figure.runs:
        record = found.get(run.config)
        if record is None:
            cells = [run.label, NOT_RECORDED] + [""] * (len(head) - 2)
            lines.append("| " + " | ".join(cells) + " |")
            continue
        final = record.final(figure.metric)
        places = decimals(final)
        mean, ci = mean_ci(final)
        low, high = interval(figure, mean, ci)
        cells = [
            run.label,
            f"{int(record.steps[-1]):,}",
            f"{fmt(mean, places)} [{fmt(low, places)}, {fmt(high, places)}]",
            ", ".join(fmt(v, places) for v in final),
        ]
        if thresholds:
            cells += [fmt(np.nanmin(final), places),
                      "" if run.threshold is None else fmt(run.threshold, places)]  # fmt: skip
        if figure.solved is not None:
            cells.append(first_solved(record, figure.metric, figure.solved))
        for metric in figure.extra:
            values = record.final(metric)
            cells.append(fmt(float(np.nanmean(values)), decimals(values)))
        cells.append(f"{record.header['wall_seconds'] / 60:.1f} min")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def provenance(figure: Figure, found: dict[str, records.Record]) -> str:
    if not found:
        return f"No record yet: `python experiments/sweep.py {figure.name}` trains them."
    headers = [r.header for r in found.values()]
    commits = sorted({h["commit"][:10] + (" + uncommitted code" if h["uncommitted"] else "")
                      for h in headers})  # fmt: skip
    machines = sorted({machine_text(h["machine"]) for h in headers})
    dates = sorted({h["date"][:10] for h in headers})
    seeds = sorted({h["num_seeds"] for h in headers})
    return (
        f"{'/'.join(map(str, seeds))} seeds per run (vmapped in one process); wall time is the "
        f"whole command, compilation included. Records: `results/{figure.name}/` "
        f"(commit {', '.join(commits)}; {'; '.join(machines)}; {', '.join(dates)})."
    )


def machine_text(m: dict) -> str:
    return f"{m['cpu']}, {m['cores']} cores, {m['arch']}, JAX {m['jax']} on {m['devices']}" + (
        f", XLA_FLAGS={m['xla_flags']}" if m["xla_flags"] else ""
    )


def commands(figure: Figure) -> str:
    lines = [f"- `{command_text(figure, run)}`" for run in figure.runs]
    return (
        f"<details><summary>Commands (`python experiments/sweep.py {figure.name}` runs the "
        f"missing ones; `python experiments/report.py {figure.name}` writes this section)"
        "</summary>\n\n" + "\n".join(lines) + "\n\n</details>"
    )


def image_path(figure: Figure) -> str:
    return os.path.join(records.ROOT, "docs", "img", f"{figure.name}.png")


def plot(figure: Figure, found: dict[str, records.Record], file: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys(run.panel for run in figure.runs))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.6), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        runs = [r for r in figure.runs if r.panel == panel]
        colours, variants = {}, {}
        for run in runs:
            record = found.get(run.config)
            if record is None:
                continue
            key = run.label.split(",")[0]  # a method's variants share its colour ...
            colour = colours.setdefault(key, f"C{len(colours)}")
            variant = variants[key] = variants.get(key, -1) + 1  # ... and differ in line style
            style = "--" if run.baseline else ("-", ":", "-.", (0, (5, 1, 1, 1)))[variant % 4]
            curve = record.curve(figure.metric)
            stats = np.array([mean_ci(row) for row in curve])
            ax.plot(record.steps, stats[:, 0], color=colour, ls=style, label=run.label)
            low, high = np.array([interval(figure, m, h) for m, h in stats]).T
            ax.fill_between(record.steps, low, high, color=colour, alpha=0.15, lw=0)
        ax.set_title(panel or figure.name, fontsize="medium")
        ax.set_xlabel("env steps per seed")
        ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:.0f}k")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    axes[0][0].set_ylabel(f"{figure.metric_label} (mean, 95 % CI band)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(file), exist_ok=True)
    fig.savefig(file, dpi=110)
    plt.close(fig)


def section(figure: Figure, found: dict[str, records.Record]) -> str:
    parts = [f'<a id="{figure.name}"></a>', table(figure, found), provenance(figure, found)]
    if figure.plot and found:
        image = os.path.relpath(image_path(figure), os.path.dirname(doc_path(figure)))
        parts.append(f"![{figure.metric_label} vs env steps]({image})")
    parts.append(commands(figure))
    return "\n\n".join(parts)


def doc_path(figure: Figure) -> str:
    return os.path.join(records.ROOT, figure.doc)


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def current_section(file: str, name: str) -> str | None:
    """The text between a doc's markers of `name`, or None without them."""
    begin, end = markers(name)
    text = open(file).read() if os.path.exists(file) else ""
    if begin not in text or end not in text.split(begin, 1)[1]:
        return None
    return text.split(begin, 1)[1].split(end, 1)[0].strip("\n")


def write_between_markers(file: str, name: str, body: str) -> None:
    """Replace the text between a doc's markers of `name` (appended if absent)."""
    begin, end = markers(name)
    text = open(file).read() if os.path.exists(file) else ""
    if begin in text and end in text.split(begin, 1)[1]:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
    else:
        head, tail = text + ("\n" if text else ""), "\n"
    tmp = f"{file}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{head}{begin}\n{body}\n{end}{tail}")
    os.replace(tmp, file)


def readme_table(figures: list[Figure]) -> str:
    """README's results table: one row per figure, the final metric of each run."""
    lines = [
        "Every value is the mean over seeds of the final evaluation, with its 95 % confidence "
        "interval, regenerated from `results/` by `python experiments/report.py`; the linked "
        "section has every seed, the commands, the commit and the machine.",
        "",
        "| what | seeds | result | where |",
        "| --- | ---: | --- | --- |",
    ]
    for figure in figures:
        if not figure.summary:
            continue
        found = load(figure)
        parts = []
        for run in figure.runs:
            record = found.get(run.config)
            if record is None:
                parts.append(f"{run.label}: {NOT_RECORDED}")
                continue
            final = record.final(figure.metric)
            places = decimals(final)
            mean, ci = mean_ci(final)
            parts.append(f"{run.label}: {fmt(mean, places)} ± {fmt(ci, places)}")
        if not found:
            parts = [NOT_RECORDED]
        where = f"[{figure.doc}]({figure.doc}#{figure.name})"
        seeds = str(figure.num_seeds) if found else "–"
        lines.append(f"| {figure.summary} ({figure.metric_label}) | {seeds} "
                     f"| {'; '.join(parts)} | {where} |")  # fmt: skip
    return "\n".join(lines)


# ------------------------------------------------------------- measurement tables
def load_table(table: Table) -> records.Record | None:
    file = records.path("benchmarks", table.record_name)
    return records.read(file) if os.path.exists(file) else None


def cell(value, spec: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not np.isfinite(value):
        return "–"
    return format(value, spec).replace("-", "−")


def table_section(table: Table, record: records.Record | None) -> str:
    parts = [f'<a id="{table.name}"></a>']
    if table.text:
        parts.append(table.text)
    head = "| " + " | ".join(c.header for c in table.columns) + " |"
    rule = "| --- |" + " ---: |" * (len(table.columns) - 1)
    if record is None:
        parts.append(f"{head}\n{rule}\n| {NOT_RECORDED} |" + " |" * (len(table.columns) - 1))
        parts.append(f"Measure with `{' '.join(table.command)}` through "
                     f"`python experiments/sweep.py {table.name}`.")  # fmt: skip
        return "\n\n".join(parts)
    rows = [r for r in record.rows if all(r.get(k) == v for k, v in table.where)]
    lines = [head, rule] + [
        "| " + " | ".join(cell(r.get(c.key), c.format) for c in table.columns) + " |" for r in rows
    ]
    h = record.header
    load = ", ".join(map(str, h["machine"]["load_average"]))
    parts.append("\n".join(lines))
    parts.append(
        f"Record `results/benchmarks/{table.record_name}.jsonl`: `{h['command']}` at commit "
        f"{h['commit'][:10]}{' + uncommitted code' if h['uncommitted'] else ''}, "
        f"{h['date'][:16].replace('T', ' ')} UTC, {h['wall_seconds'] / 60:.1f} min; "
        f"{machine_text(h['machine'])}; load average (1, 5, 15 min) {load} at the start. "
        "A load above the core count means other processes shared the cores: read the "
        "rates as lower bounds."
    )
    return "\n\n".join(parts)
