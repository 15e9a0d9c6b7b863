"""Readable tables of the monitor's results, as plain text (the CLI) or Markdown (Dagster metadata).

``table`` lays out any rows; ``findings_table`` is the one rendering of check results —
``check run``, the demo and the Dagster assets all use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

WIDTH = 100


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, markdown: bool = False,
          right: Sequence[str] = (), width: int | None = WIDTH) -> str:
    """Rows under headers: padded columns (lines cut at ``width``), or a Markdown table.
    ``right`` names right-aligned columns."""
    body = [[("" if v is None else str(v)) for v in row] for row in rows]
    if markdown:
        cell = lambda v: v.replace("|", "\\|").replace("\n", " ")  # noqa: E731
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max([len(h)] + [len(row[i]) for row in body]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        cells = [v.rjust(w) if h in right else v.ljust(w) for v, w, h in zip(values, widths, headers)]
        return "  ".join(cells).rstrip()[:width]

    return "\n".join([line(list(headers))] + [line(row) for row in body])


def status(result: Mapping) -> str:
    if result.get("error"):
        return "ERROR: " + str(result["error"])
    return "FOUND" if result["count"] else "ok"


def count_cell(result: Mapping) -> str:
    """A failed check counted nothing: its count is never shown as 0."""
    return "-" if result.get("error") or result.get("count") is None else str(result["count"])


def _sample_lines(result: Mapping, shown: int) -> list[str]:
    lines = []
    if result.get("error") or not result.get("count"):
        return lines
    for row in (result.get("sample") or [])[:shown]:
        keys = ", ".join(f"{k}={v}" for k, v in row.items() if k != "reason")
        lines.append(f"    {row.get('reason', '')}: {keys}"[:WIDTH])
    if result["count"] > shown and result.get("sample"):
        lines.append(f"    … {result['count'] - shown} more")
    return lines


def findings_table(results: Iterable[Mapping], *, markdown: bool = False, samples: int = 0) -> str:
    """One line per (tenant, check): severity, count, status; in text, up to ``samples`` sample rows under each."""
    results = list(results)
    headers = ["TENANT", "CHECK", "SEVERITY", "COUNT", "STATUS"]
    rows = [[r["tenant"], r["check"], r["severity"], count_cell(r), status(r)] for r in results]
    if markdown or not samples:
        return table(headers, rows, markdown=markdown, right=["COUNT"])
    rendered = table(headers, rows, right=["COUNT"]).split("\n")
    lines = [rendered[0]]
    for line, result in zip(rendered[1:], results):
        lines.append(line)
        lines += _sample_lines(result, samples)
    return "\n".join(lines)
