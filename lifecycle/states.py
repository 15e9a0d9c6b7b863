"""States and transitions, declared once.

Each state machine is an enum plus a transition table. Every status change of a job,
a token or a serial is guarded by its table (``require_*_transition`` before a guarded
``UPDATE … WHERE status IN …``), the schema derives the CHECK constraints of these
status columns from the enums, and ``lifecycle.statedocs`` draws the Mermaid diagrams
of ``docs/state-machines.md`` from the tables, so code, database and documentation
cannot drift apart. Guarded by ``tests/unit/test_states.py`` and
``tests/unit/test_statedocs.py``.
"""

from __future__ import annotations

import enum

from .errors import InvalidTransition


class JobStatus(str, enum.Enum):
    PLANNED = "planned"  # created, or restored after a cancel; no live tokens
    IN_PROGRESS = "in_progress"  # started: an active instance holds its token set
    COMPLETED = "completed"  # every token finished or scrapped, at least one finished
    CANCELLED = "cancelled"  # hard reset: tokens scrapped, instance archived
    ARCHIVED = "archived"  # final; kept for history only


class InstanceStatus(str, enum.Enum):
    ACTIVE = "active"  # the one instance a job's tokens live on (at most one per job)
    COMPLETED = "completed"  # its job completed
    ARCHIVED = "archived"  # retired by a cancel or a respawn; never reused


class TokenStatus(str, enum.Enum):
    READY = "ready"  # waiting at a node for an operator
    ACTIVE = "active"  # an operator's session is running on it
    PAUSED = "paused"  # its session is paused
    COMPLETED = "completed"  # passed an end node
    SCRAPPED = "scrapped"  # final: never changes status again


class ProductionMode(str, enum.Enum):
    PIECE = "piece"  # one token per piece, each with a serial
    BATCH = "batch"  # tokens without per-piece serials


class NodeKind(str, enum.Enum):
    START = "start"
    WORK = "work"
    END = "end"


class AssignmentStatus(str, enum.Enum):
    ACTIVE = "active"
    EXPIRED = "expired"
    DONE = "done"


class AssignmentSource(str, enum.Enum):
    MANAGER = "manager"
    SELF = "self"


class SessionStatus(str, enum.Enum):
    ACTIVE = "active"
    PAUSED = "paused"
    CLOSED = "closed"


class SerialStatus(str, enum.Enum):
    ISSUED = "issued"  # given to a piece-mode token at spawn
    COMPLETED = "completed"  # its token passed an end node; the finished piece carries it
    VOIDED = "voided"  # its token was scrapped by a cancel; the number is never reused


class SerialMode(str, enum.Enum):
    STD = "STD"  # {TENANT}-{SKU}-{SEQ:06d} from the per-(tenant, SKU) sequence; FF_SERIAL_STD_HAT on
    TEMP = "TEMP"  # TEMP-…, only on a test tenant with FF_SERIAL_STD_HAT off


LIVE_TOKEN_STATUSES = (TokenStatus.READY, TokenStatus.ACTIVE, TokenStatus.PAUSED)
OPEN_SESSION_STATUSES = (SessionStatus.ACTIVE, SessionStatus.PAUSED)

# A "mixed" instance holds scrapped tokens of a current (not superseded) spawn cycle beside
# tokens in one of these statuses. The spawn guard refuses to spawn on it
# (MIXED_TOKEN_STATES) and the ``mixed_token_states`` check reports it: both read this.
MIXED_WITH_SCRAPPED = LIVE_TOKEN_STATUSES + (TokenStatus.COMPLETED,)


def is_mixed(counts: dict[str, int]) -> bool:
    """Token counts by status (of an instance's current spawn cycles) that make it mixed."""
    return bool(counts.get(TokenStatus.SCRAPPED.value)) and any(counts.get(s.value) for s in MIXED_WITH_SCRAPPED)


def sql_list(statuses) -> str:
    """``('a', 'b')`` — a status set as an SQL literal list, for the check catalogue's queries."""
    return "(" + ", ".join(f"'{s.value}'" for s in statuses) + ")"

def transition_table(enum_cls, moves: str) -> dict:
    """A transition table from ``from -> to: what takes it`` lines (status values, as in the diagrams)."""
    table = {}
    for line in filter(None, (raw.strip() for raw in moves.splitlines())):
        move, label = line.split(":", 1)
        src, dst = (enum_cls(status.strip()) for status in move.split("->"))
        table[(src, dst)] = label.strip()
    return table


JOB_TRANSITIONS: dict[tuple[JobStatus, JobStatus], str] = transition_table(JobStatus, """
    planned     -> in_progress : start
    in_progress -> completed   : last token finished
    planned     -> cancelled   : cancel
    in_progress -> cancelled   : cancel
    cancelled   -> planned     : restore
    completed   -> archived    : archive
    cancelled   -> archived    : archive
""")

INSTANCE_TRANSITIONS: dict[tuple[InstanceStatus, InstanceStatus], str] = transition_table(InstanceStatus, """
    active    -> completed : job completed
    active    -> archived  : cancel / respawn after scrap
    completed -> archived  : job archived
""")

# Every token move goes through ``lifecycle.tokens.move``, which checks this table. The
# repair moves are here too: a token a repair releases (its session closed under it) goes
# back to ready, and a resurrected token — completed included — goes back to scrapped.
TOKEN_TRANSITIONS: dict[tuple[TokenStatus, TokenStatus], str] = transition_table(TokenStatus, """
    ready     -> active    : session start
    active    -> paused    : session pause
    paused    -> active    : session resume
    active    -> ready     : session complete (next node) / repair release
    paused    -> ready     : repair release
    active    -> completed : session complete (end node)
    ready     -> scrapped  : cancel / repair
    active    -> scrapped  : cancel / repair
    paused    -> scrapped  : cancel / repair
    completed -> scrapped  : repair (a resurrected token)
""")

SERIAL_TRANSITIONS: dict[tuple[SerialStatus, SerialStatus], str] = transition_table(SerialStatus, """
    issued -> completed : token completed
    issued -> voided    : token scrapped by cancel
""")

INITIAL = {JobStatus: JobStatus.PLANNED, InstanceStatus: InstanceStatus.ACTIVE, TokenStatus: TokenStatus.READY,
           SerialStatus: SerialStatus.ISSUED}


def sources(table: dict, target) -> tuple:
    """Every status from which ``table`` allows a move to ``target``."""
    return tuple(src for (src, dst) in table if dst == target)


def require_transition(table: dict, what: str, current, target) -> None:
    """Raise INVALID_TRANSITION (nothing written yet) unless ``table`` allows ``current → target``."""
    if (current, target) not in table:
        allowed = sorted(dst.value for (src, dst) in table if src == current)
        raise InvalidTransition(
            f"{what} cannot go from {current.value} to {target.value}",
            hint=(f"from {current.value} it may go to: {', '.join(allowed)}" if allowed
                  else f"{current.value} is final"),
            current=current.value, target=target.value,
        )


def require_job_transition(current: JobStatus | str, target: JobStatus, job_code: str) -> None:
    """Raise INVALID_TRANSITION unless the job state machine allows ``current → target``."""
    require_transition(JOB_TRANSITIONS, f"job {job_code}", JobStatus(current), target)


def require_token_transition(current: TokenStatus | str, target: TokenStatus, token_id: int) -> None:
    """Raise INVALID_TRANSITION unless the token state machine allows ``current → target``."""
    require_transition(TOKEN_TRANSITIONS, f"token {token_id}", TokenStatus(current), target)


def values(enum_cls) -> list[str]:
    return [member.value for member in enum_cls]
