"""Where product errors become Dagster failures (and nowhere else)."""

from dagster import Failure

from lifecycle.errors import HatthasilpaError


def as_failure(exc: HatthasilpaError) -> Failure:
    """A refusal of the product as a Dagster step failure that keeps its code and hint."""
    return Failure(description=f"{exc.code}: {exc.message}", metadata={"code": exc.code, "hint": exc.hint or ""})
