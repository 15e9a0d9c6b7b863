"""Session and assignment checks (docs/risks.md §2.4, §3.5, §4E): races the database should have stopped.

Open sessions come through ``ux_token_work_session_one_open`` (predicate
``status IN ('active', 'paused')``), active assignments through
``ux_token_assignment_one_active``. ``duplicate_open_session`` still works on a legacy
database without that index: it groups the (few) open sessions by token.
"""

from __future__ import annotations

from lifecycle.states import OPEN_SESSION_STATUSES, sql_list

from .model import STALE_SESSION, Check, Family, Severity

OPEN = sql_list(OPEN_SESSION_STATUSES)

SESSION_WITHOUT_ASSIGNMENT = Check(
    id="session_without_assignment",
    family=Family.SESSIONS,
    severity=Severity.ERROR,
    description="open session whose assignment is missing, not active, or for another token or operator; "
                "or any session whose assignment row is missing or for another token or operator",
    keys=("session_id",),
    reads_history=True,
    history_note="closed sessions are history; the open-session half alone would be a fast check",
    sql=f"""
SELECT s.id AS session_id, s.token_id AS token_id, s.operator_id AS operator_id,
       s.status AS session_status, s.assignment_id AS assignment_id,
       CASE WHEN s.assignment_id IS NULL THEN 'session has no assignment'
            WHEN a.id IS NULL THEN 'assignment missing'
            WHEN a.token_id <> s.token_id THEN 'assignment is for another token'
            WHEN a.operator_id <> s.operator_id THEN 'assignment is for another operator'
            ELSE 'open session on an assignment that is ' || a.status END AS reason
FROM token_work_session s
LEFT JOIN token_assignment a ON a.id = s.assignment_id
WHERE (s.assignment_id IS NULL OR a.id IS NULL OR a.token_id <> s.token_id OR a.operator_id <> s.operator_id
       OR (s.status IN {OPEN} AND a.status <> 'active'))
  AND (:session_id IS NULL OR s.id = :session_id)
""",
)

ASSIGNMENT_WITHOUT_TOKEN = Check(
    id="assignment_without_token",
    family=Family.SESSIONS,
    severity=Severity.ERROR,
    description="active assignment whose token is missing, scrapped or completed",
    keys=("assignment_id",),
    sql="""
SELECT a.id AS assignment_id, a.token_id AS token_id, a.operator_id AS operator_id,
       CASE WHEN t.id IS NULL THEN 'token missing' ELSE 'token is ' || t.status END AS reason
FROM token_assignment a
LEFT JOIN flow_token t ON t.id = a.token_id
WHERE a.status = 'active' AND (t.id IS NULL OR t.status IN ('scrapped', 'completed'))
  AND (:assignment_id IS NULL OR a.id = :assignment_id)
""",
)

DUPLICATE_OPEN_SESSION = Check(
    id="duplicate_open_session",
    family=Family.SESSIONS,
    severity=Severity.CRITICAL,
    description="token with more than one open session",
    keys=("token_id",),
    sql=f"""
SELECT s.token_id AS token_id, count(*) AS open_sessions, min(s.id) AS first_session_id,
       max(s.id) AS last_session_id, 'more than one open session' AS reason
FROM token_work_session s
WHERE s.status IN {OPEN} AND (:token_id IS NULL OR s.token_id = :token_id)
GROUP BY s.token_id
HAVING count(*) > 1
""",
)

SESSION_ON_DEAD_TOKEN = Check(
    id="session_on_dead_token",
    family=Family.SESSIONS,
    severity=Severity.ERROR,
    description="open session on a scrapped or completed token, or on a non-active instance",
    keys=("session_id",),
    sql=f"""
SELECT s.id AS session_id, s.token_id AS token_id, s.operator_id AS operator_id,
       s.status AS session_status, t.status AS token_status,
       CASE WHEN t.id IS NULL THEN 'token missing'
            WHEN t.status IN ('scrapped', 'completed') THEN 'token is ' || t.status
            WHEN i.id IS NULL THEN 'instance missing'
            ELSE 'instance is ' || i.status END AS reason
FROM token_work_session s
LEFT JOIN flow_token t ON t.id = s.token_id
LEFT JOIN job_graph_instance i ON i.id = t.instance_id
WHERE s.status IN {OPEN}
  AND (t.id IS NULL OR t.status IN ('scrapped', 'completed') OR i.id IS NULL OR i.status <> 'active')
  AND (:session_id IS NULL OR s.id = :session_id)
""",
)

STALE_OPEN_SESSION = Check(
    id="stale_open_session",
    family=Family.SESSIONS,
    severity=Severity.WARNING,
    description="session open longer than a threshold (default 12 h)",
    keys=("session_id",),
    thresholds=(STALE_SESSION,),
    sql=f"""
SELECT s.id AS session_id, s.token_id AS token_id, s.operator_id AS operator_id,
       s.status AS session_status, s.started_at AS started_at,
       'open since ' || CAST(s.started_at AS VARCHAR(40)) AS reason
FROM token_work_session s
WHERE s.status IN {OPEN} AND s.started_at < :stale_session_cutoff
  AND (:session_id IS NULL OR s.id = :session_id)
""",
)

CHECKS = (SESSION_WITHOUT_ASSIGNMENT, ASSIGNMENT_WITHOUT_TOKEN, DUPLICATE_OPEN_SESSION, SESSION_ON_DEAD_TOKEN,
          STALE_OPEN_SESSION)
