"""Instance and job checks (docs/risks.md §2.1, §2.2, §2.6, §3.1, §3.2): spawn cycles, counts, hard resets.

Each starts from active instances (``ux_job_graph_instance_one_active``, or a scan of
the small set of active rows on a legacy database without it), from live rows, or from
``token_spawn`` (one row per spawn cycle: a hundredth of the tokens), so archived token
history is never read.
"""

from __future__ import annotations

from lifecycle.states import LIVE_TOKEN_STATUSES, OPEN_SESSION_STATUSES, TokenStatus, sql_list

from .model import Check, Family, Severity

LIVE = sql_list(LIVE_TOKEN_STATUSES)
COUNTED = sql_list(LIVE_TOKEN_STATUSES + (TokenStatus.COMPLETED,))

MULTI_SPAWN_INSTANCE = Check(
    id="multi_spawn_instance",
    family=Family.INSTANCES,
    severity=Severity.CRITICAL,
    description="instance with more than one spawn cycle (tokens or not), or more live tokens than the job "
                "quantity; a cycle its repair retired (superseded) no longer counts",
    keys=("instance_id",),
    sql=f"""
SELECT x.instance_id, x.job_id, j.quantity AS quantity, x.spawn_cycles, x.live_tokens,
       CASE WHEN x.spawn_cycles > 1 THEN 'spawned ' || CAST(x.spawn_cycles AS VARCHAR(12)) || ' times'
            ELSE 'more live tokens than the job quantity' END AS reason
FROM (
    SELECT c.instance_id AS instance_id, max(c.job_id) AS job_id, sum(c.cycles) AS spawn_cycles,
           sum(c.live) AS live_tokens
    FROM (
        SELECT s.instance_id AS instance_id, s.job_id AS job_id, count(*) AS cycles, 0 AS live
        FROM token_spawn s
        WHERE s.superseded_at IS NULL AND (:instance_id IS NULL OR s.instance_id = :instance_id)
        GROUP BY s.instance_id, s.job_id
        UNION ALL
        SELECT t.instance_id, t.job_id, 0, count(*)
        FROM flow_token t
        WHERE t.status IN {LIVE} AND (:instance_id IS NULL OR t.instance_id = :instance_id)
        GROUP BY t.instance_id, t.job_id
    ) c
    GROUP BY c.instance_id
) x
JOIN hatthasilpa_job j ON j.id = x.job_id
WHERE x.spawn_cycles > 1 OR x.live_tokens > j.quantity
""",
)

TOKEN_COUNT_MISMATCH = Check(
    id="token_count_mismatch",
    family=Family.INSTANCES,
    severity=Severity.WARNING,
    description="active instance whose live + completed token count differs from the job quantity",
    keys=("instance_id",),
    sql=f"""
SELECT x.instance_id, x.job_id, x.quantity, x.tokens,
       'live + completed tokens ' || CAST(x.tokens AS VARCHAR(12))
       || ' <> quantity ' || CAST(x.quantity AS VARCHAR(12)) AS reason
FROM (
    SELECT i.id AS instance_id, i.job_id AS job_id, j.quantity AS quantity,
           (SELECT count(*) FROM flow_token t
             WHERE t.instance_id = i.id AND t.status IN {COUNTED}) AS tokens
    FROM job_graph_instance i
    JOIN hatthasilpa_job j ON j.id = i.job_id
    WHERE i.status = 'active' AND (:instance_id IS NULL OR i.id = :instance_id)
) x
WHERE x.tokens <> x.quantity
""",
)

MULTIPLE_ACTIVE_INSTANCES = Check(
    id="multiple_active_instances",
    family=Family.INSTANCES,
    severity=Severity.CRITICAL,
    description="job with more than one active instance",
    keys=("job_id",),
    sql="""
SELECT i.job_id AS job_id, count(*) AS active_instances, min(i.id) AS first_instance_id,
       max(i.id) AS last_instance_id, 'more than one active instance' AS reason
FROM job_graph_instance i
WHERE i.status = 'active' AND (:job_id IS NULL OR i.job_id = :job_id)
GROUP BY i.job_id
HAVING count(*) > 1
""",
)

CANCELLED_JOB_NOT_CLEAN = Check(
    id="cancelled_job_not_clean",
    family=Family.INSTANCES,
    severity=Severity.CRITICAL,
    description="cancelled job with an active instance, live tokens, open sessions or active assignments",
    keys=("job_id",),
    sql=f"""
SELECT j.id AS job_id, j.job_code AS job_code,
       sum(CASE WHEN x.what = 'instance' THEN 1 ELSE 0 END) AS active_instances,
       sum(CASE WHEN x.what = 'token' THEN 1 ELSE 0 END) AS live_tokens,
       sum(CASE WHEN x.what = 'session' THEN 1 ELSE 0 END) AS open_sessions,
       sum(CASE WHEN x.what = 'assignment' THEN 1 ELSE 0 END) AS active_assignments,
       'cancel left live rows behind' AS reason
FROM (
    SELECT i.job_id AS job_id, 'instance' AS what FROM job_graph_instance i WHERE i.status = 'active'
    UNION ALL
    SELECT t.job_id, 'token' FROM flow_token t WHERE t.status IN {LIVE}
    UNION ALL
    SELECT t.job_id, 'session' FROM token_work_session s JOIN flow_token t ON t.id = s.token_id
     WHERE s.status IN {sql_list(OPEN_SESSION_STATUSES)}
    UNION ALL
    SELECT t.job_id, 'assignment' FROM token_assignment a JOIN flow_token t ON t.id = a.token_id
     WHERE a.status = 'active'
) x
JOIN hatthasilpa_job j ON j.id = x.job_id
WHERE j.status = 'cancelled' AND (:job_id IS NULL OR j.id = :job_id)
GROUP BY j.id, j.job_code
""",
)

CHECKS = (MULTI_SPAWN_INSTANCE, TOKEN_COUNT_MISMATCH, MULTIPLE_ACTIVE_INSTANCES, CANCELLED_JOB_NOT_CLEAN)
