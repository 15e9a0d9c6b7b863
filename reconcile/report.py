"""The one table of a plan's rows: as text for the CLI, as Markdown for the Dagster repair jobs."""

from __future__ import annotations

from checks.report import table


def key_text(key: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in key.items())


def rows_table(rows: list[dict], *, outcome: bool = False, markdown: bool = False) -> str:
    """A plan's rows (seq, check, action, key) with the finding's reason, or with the outcome
    of an apply (``outcome``: the rows an apply reported)."""
    if not rows:
        return "no rows"
    headers = ["SEQ", "CHECK", "ACTION", "KEY", "OUTCOME" if outcome else "REASON"]
    body = []
    for r in rows:
        if outcome:
            tail = r["outcome"] + (f": {r['reason']}" if r.get("reason") and r["outcome"] != "applied" else "")
        else:
            tail = (r.get("expected", {}).get("finding") or {}).get("reason", "")
        body.append([r["seq"], r["check"], r["action"], key_text(r["key"]), tail])
    return table(headers, body, markdown=markdown, right=["SEQ"])
