"""Token checks (docs/risks.md §2.1, §2.6, §3.2, §3.4, §7): orphans, mixed states, resurrection, the queue.

Live tokens are found through ``ix_flow_token_live`` (its predicate is exactly
``status IN ('ready', 'active', 'paused')``), per-instance counts through
``ix_flow_token_instance_id_status`` and active instances through
``ux_job_graph_instance_one_active``.
"""

from __future__ import annotations

from lifecycle.states import LIVE_TOKEN_STATUSES, MIXED_WITH_SCRAPPED, sql_list

from .model import Check, Family, Severity

LIVE = sql_list(LIVE_TOKEN_STATUSES)

ORPHAN_TOKEN = Check(
    id="orphan_token",
    family=Family.TOKENS,
    severity=Severity.CRITICAL,
    description="live token (ready/active/paused) whose instance is missing or not active, "
                "or whose job is not in progress",
    keys=("token_id",),
    sql=f"""
SELECT t.id AS token_id, t.job_id AS job_id, t.instance_id AS instance_id, t.status AS token_status,
       CASE WHEN i.id IS NULL THEN 'instance missing'
            WHEN i.job_id <> t.job_id THEN 'instance belongs to another job'
            WHEN i.status <> 'active' THEN 'instance is ' || i.status
            WHEN j.id IS NULL THEN 'job missing'
            ELSE 'job is ' || j.status END AS reason
FROM flow_token t
LEFT JOIN job_graph_instance i ON i.id = t.instance_id
LEFT JOIN hatthasilpa_job j ON j.id = t.job_id
WHERE t.status IN {LIVE}
  AND (i.id IS NULL OR i.job_id <> t.job_id OR i.status <> 'active' OR j.id IS NULL OR j.status <> 'in_progress')
  AND (:token_id IS NULL OR t.id = :token_id)
""",
)

MIXED_TOKEN_STATES = Check(
    id="mixed_token_states",
    family=Family.TOKENS,
    severity=Severity.CRITICAL,
    description="active instance holding both live and scrapped tokens (or completed and scrapped ones: "
                "the spawn guard refuses such an instance too); a spawn cycle a repair superseded does not count",
    keys=("instance_id",),
    # the two LIMIT 1 probes stop at their first row, so only the instances that break the rule are counted
    sql=f"""
SELECT x.instance_id, x.job_id, x.live_tokens, x.scrapped_tokens,
       CASE WHEN x.live_tokens > 0 THEN 'live and scrapped tokens on one active instance'
            ELSE 'completed and scrapped tokens on one active instance' END AS reason
FROM (
    SELECT i.id AS instance_id, i.job_id AS job_id,
           (SELECT count(*) FROM flow_token t JOIN token_spawn s ON s.id = t.spawn_id
             WHERE t.instance_id = i.id AND t.status IN {LIVE} AND s.superseded_at IS NULL) AS live_tokens,
           (SELECT count(*) FROM flow_token t JOIN token_spawn s ON s.id = t.spawn_id
             WHERE t.instance_id = i.id AND t.status = 'scrapped' AND s.superseded_at IS NULL) AS scrapped_tokens
    FROM job_graph_instance i
    WHERE i.status = 'active' AND (:instance_id IS NULL OR i.id = :instance_id)
      AND (SELECT 1 FROM flow_token t JOIN token_spawn s ON s.id = t.spawn_id
            WHERE t.instance_id = i.id AND t.status = 'scrapped' AND s.superseded_at IS NULL LIMIT 1) = 1
      AND (SELECT 1 FROM flow_token t JOIN token_spawn s ON s.id = t.spawn_id
            WHERE t.instance_id = i.id AND t.status IN {sql_list(MIXED_WITH_SCRAPPED)}
              AND s.superseded_at IS NULL LIMIT 1) = 1
) x
""",
)

SCRAPPED_TOKEN_RESURRECTED = Check(
    id="scrapped_token_resurrected",
    family=Family.TOKENS,
    severity=Severity.CRITICAL,
    description="token not scrapped now although its history holds a scrapped event or its scrapped_at is set",
    keys=("token_id",),
    reads_history=True,
    history_note="reads the scrapped events (ix_token_event_scrapped) and tokens whose scrapped_at "
                 "disagrees with their status (ix_flow_token_scrapped_at_not_scrapped), not every token",
    sql="""
SELECT t.id AS token_id, t.job_id AS job_id, t.instance_id AS instance_id, t.status AS token_status,
       CASE WHEN t.scrapped_at IS NOT NULL THEN 'scrapped_at is set but status is ' || t.status
            ELSE 'history holds a scrapped event but status is ' || t.status END AS reason
FROM flow_token t
WHERE t.id IN (SELECT e.token_id FROM token_event e WHERE e.to_status = 'scrapped'
               UNION
               SELECT x.id FROM flow_token x WHERE x.scrapped_at IS NOT NULL AND x.status <> 'scrapped')
  AND t.status <> 'scrapped'
  AND (:token_id IS NULL OR t.id = :token_id)
""",
)

WORK_QUEUE_POLLUTION = Check(
    id="work_queue_pollution",
    family=Family.TOKENS,
    severity=Severity.CRITICAL,
    description="a work_queue row that breaks the queue's rule (not a ready token on an active instance "
                "of an in-progress job, or a token listed twice)",
    keys=("token_id",),
    # the queue is read once for both halves
    sql="""
WITH q AS MATERIALIZED (
    SELECT token_id, job_id, instance_id, status FROM work_queue WHERE (:token_id IS NULL OR token_id = :token_id)
)
SELECT q.token_id AS token_id, q.job_id AS job_id, q.instance_id AS instance_id, t.status AS token_status,
       CASE WHEN t.id IS NULL THEN 'token missing'
            WHEN t.status <> 'ready' THEN 'token is ' || t.status
            WHEN q.status <> 'ready' THEN 'queue row says ' || q.status
            WHEN i.id IS NULL THEN 'instance missing'
            WHEN i.status <> 'active' THEN 'instance is ' || i.status
            WHEN j.id IS NULL THEN 'job missing'
            WHEN j.status <> 'in_progress' THEN 'job is ' || j.status
            ELSE 'queue row does not match its token' END AS reason
FROM q
LEFT JOIN flow_token t ON t.id = q.token_id
LEFT JOIN job_graph_instance i ON i.id = t.instance_id
LEFT JOIN hatthasilpa_job j ON j.id = t.job_id
WHERE t.id IS NULL OR t.status <> 'ready' OR q.status <> 'ready' OR i.id IS NULL OR i.status <> 'active'
       OR j.id IS NULL OR j.status <> 'in_progress' OR q.instance_id <> t.instance_id OR q.job_id <> t.job_id
UNION ALL
SELECT q.token_id AS token_id, min(q.job_id) AS job_id, min(q.instance_id) AS instance_id,
       min(q.status) AS token_status, 'token listed more than once' AS reason
FROM q
GROUP BY q.token_id
HAVING count(*) > 1
""",
)

CHECKS = (ORPHAN_TOKEN, MIXED_TOKEN_STATES, SCRAPPED_TOKEN_RESURRECTED, WORK_QUEUE_POLLUTION)
