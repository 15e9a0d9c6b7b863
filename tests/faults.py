"""The fault matrix: one corruption of the clean floor per check, as the seed plan describes it.

Each fault writes with raw SQL (as a buggy legacy code path or a hand-applied hotfix
would) and returns the keys of the rows it corrupted. ``also`` names the other checks
that must fire on the same corruption, because the broken row breaks their rule too;
every other check must stay at zero. Three faults are forbidden by our constraints
(``multiple_active_instances``, ``duplicate_open_session``, ``duplicate_serial``): their
fixtures drop the constraint first, as in a legacy database. Resurrecting a scrapped
token first drops the ``flow_token_scrapped_is_final`` trigger.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

from tests.floor import HOUR, Floor, set_serial_status
from lifecycle.uow import utcnow


@dataclass(frozen=True)
class Fault:
    check: str
    story: str
    apply: Callable[[Floor], set]
    also: frozenset = frozenset()


def _ago(delta) -> object:
    return utcnow() - delta


# --------------------------------------------------------------------------- legacy schema
def drop_index(floor: Floor, name: str) -> None:
    floor.tenant_sql(f"DROP INDEX {name}")


def drop_scrapped_trigger(floor: Floor) -> None:
    floor.tenant_sql("DROP TRIGGER flow_token_scrapped_is_final" + (" ON flow_token" if floor.postgres else ""))


def drop_serial_primary_key(floor: Floor) -> None:
    if floor.postgres:
        floor.tenant_sql("ALTER TABLE serial_registry DROP CONSTRAINT pk_serial_registry")
        return
    with floor.tenant.begin() as conn:  # SQLite cannot drop a primary key: rebuild the table without it
        conn.exec_driver_sql("CREATE TABLE serial_registry_legacy AS SELECT * FROM serial_registry")
        conn.exec_driver_sql("DROP TABLE serial_registry")
        conn.exec_driver_sql("ALTER TABLE serial_registry_legacy RENAME TO serial_registry")
        conn.exec_driver_sql("CREATE UNIQUE INDEX ux_serial_registry_token_id ON serial_registry (token_id)")


LEGACY_WORK_QUEUE = """
CREATE VIEW work_queue AS
SELECT t.id AS token_id, t.job_id AS job_id, j.job_code AS job_code, j.sku AS sku, t.instance_id AS instance_id,
       t.piece_index AS piece_index, n.id AS node_id, n.node_code AS node, t.status AS status,
       t.serial_code AS serial_code, NULL AS assignment_id, NULL AS assigned_operator, t.updated_at AS ready_since
FROM flow_token t
JOIN job_graph_instance i ON i.id = t.instance_id
JOIN hatthasilpa_job j ON j.id = t.job_id
JOIN routing_node n ON n.id = t.current_node_id
WHERE t.status <> 'completed'
"""


# --------------------------------------------------------------------------- faults
def orphaned_tokens(f: Floor) -> set:
    # an instance archived under live tokens, and a job sent back to planned under its tokens
    f.tenant_sql("UPDATE job_graph_instance SET status = 'archived', archived_at = :now WHERE id = :i",
                 now=utcnow(), i=f.ids["restart_instance"])
    f.tenant_sql("UPDATE hatthasilpa_job SET status = 'planned' WHERE job_code = 'J-BATCH'")
    return set(f.ids["restart_tokens"]) | set(f.ids["batch_tokens"])


def second_spawn_cycle(f: Floor) -> set:
    inst, job = f.ids["batch_instance"], f.ids["job:J-BATCH"]
    spawn = f.tenant_sql("INSERT INTO token_spawn (instance_id, job_id, token_count, created_at) "
                         "VALUES (:i, :j, 2, :now) RETURNING id", i=inst, j=job, now=utcnow()).scalar_one()
    for piece in (1, 2):
        f.tenant_sql("INSERT INTO flow_token (instance_id, job_id, spawn_id, piece_index, current_node_id, status, "
                     "created_at, updated_at) VALUES (:i, :j, :s, :p, :n, 'ready', :now, :now)",
                     i=inst, j=job, s=spawn, p=piece, n=f.node("cut"), now=utcnow())
    return {inst}


def quantity_changed(f: Floor) -> set:
    f.tenant_sql("UPDATE hatthasilpa_job SET quantity = 5 WHERE job_code = 'J-RESTART'")
    return {f.ids["restart_instance"]}


def scrapped_beside_live(f: Floor) -> set:
    token = f.ids["restart_tokens"][0]
    f.tenant_sql("UPDATE flow_token SET status = 'scrapped', scrapped_at = :now WHERE id = :t", now=utcnow(), t=token)
    return {f.ids["restart_instance"]}


def resurrected(f: Floor) -> set:
    drop_scrapped_trigger(f)
    back_to_ready, back_to_completed = f.ids["restart_old_tokens"][:2]
    f.tenant_sql("UPDATE flow_token SET status = 'ready', scrapped_at = NULL WHERE id = :t", t=back_to_ready)
    f.tenant_sql("UPDATE flow_token SET status = 'completed', scrapped_at = NULL, completed_at = :now WHERE id = :t",
                 now=utcnow(), t=back_to_completed)
    return {back_to_ready, back_to_completed}


def legacy_work_queue(f: Floor) -> set:
    f.tenant_sql("DROP VIEW work_queue")
    f.tenant_sql(LEGACY_WORK_QUEUE)
    return ({f.ids["r1"], f.ids["r2"], f.ids["c1"], f.ids["c2"]} | set(f.ids["restart_old_tokens"]))


def second_active_instance(f: Floor) -> set:
    drop_index(f, "ux_job_graph_instance_one_active")
    f.tenant_sql("UPDATE job_graph_instance SET status = 'active', archived_at = NULL WHERE id = :i",
                 i=f.ids["restart_old_instance"])
    return {f.ids["job:J-RESTART"]}


def cancel_without_reset(f: Floor) -> set:
    f.tenant_sql("UPDATE hatthasilpa_job SET status = 'cancelled' WHERE job_code = 'J-RUN'")
    return {f.ids["job:J-RUN"]}


def session_assignment_expired(f: Floor) -> set:
    f.tenant_sql("UPDATE token_assignment SET status = 'expired' WHERE id = :a", a=f.ids["a1"])
    # and a closed session pointing at another token's assignment
    f.tenant_sql("UPDATE token_work_session SET assignment_id = :a WHERE id = :s",
                 a=f.ids["a2"], s=f.ids["r3_closed_session"])
    return {f.ids["s1"], f.ids["r3_closed_session"]}


def assignment_on_dead_tokens(f: Floor) -> set:
    ids = set()
    for token in (f.ids["c2"], f.ids["r4"]):
        ids.add(f.tenant_sql("INSERT INTO token_assignment (token_id, operator_id, status, source, created_at, "
                             "updated_at) VALUES (:t, 'op9', 'active', 'manager', :now, :now) RETURNING id",
                             t=token, now=utcnow()).scalar_one())
    return ids


def second_open_session(f: Floor) -> set:
    drop_index(f, "ux_token_work_session_one_open")
    f.tenant_sql("INSERT INTO token_work_session (token_id, assignment_id, operator_id, status, started_at, "
                 "work_seconds, created_at, updated_at) VALUES (:t, :a, 'op1', 'paused', :now, 0, :now, :now)",
                 t=f.ids["r1"], a=f.ids["a1"], now=utcnow())
    return {f.ids["r1"]}


def session_reopened_on_scrapped(f: Floor) -> set:
    f.tenant_sql("UPDATE token_work_session SET status = 'active', ended_at = NULL WHERE id = :s",
                 s=f.ids["c1_session"])
    return {f.ids["c1_session"]}


def forgotten_session(f: Floor) -> set:
    f.tenant_sql("UPDATE token_work_session SET started_at = :t WHERE id = :s", t=_ago(13 * HOUR), s=f.ids["s2"])
    return {f.ids["s2"]}


def core_serial_deleted(f: Floor) -> set:
    code = f.serial_of(f.ids["r3"])
    f.core_sql("DELETE FROM serial_registry WHERE serial_code = :c", c=code)
    return {code}


def core_serial_unknown_to_tenant(f: Floor) -> set:
    code = f"{f.tenant_code.upper()}-TOTE-999999"
    f.core_sql("INSERT INTO serial_registry (serial_code, tenant_code, sku, job_ref, token_ref, mode, status, "
               "created_at, updated_at) VALUES (:c, :t, 'TOTE', '1', '1', 'STD', 'issued', :now, :now)",
               c=code, t=f.tenant_code, now=utcnow())
    return {code}


def fields_drifted(f: Floor) -> set:
    drifted_core = f.serial_of(f.ids["r1"])
    f.core_sql("UPDATE serial_registry SET sku = 'WALLET' WHERE serial_code = :c", c=drifted_core)
    drifted_tenant = f.serial_of(f.ids["r2"])
    set_serial_status(f, drifted_tenant, "completed", at=_ago(HOUR))
    within_grace = f.serial_of(f.ids["r3"])
    set_serial_status(f, within_grace, "completed", at=utcnow())  # the relay still has time
    return {drifted_core, drifted_tenant}


def outbox_stuck(f: Floor) -> set:
    code = f.serial_of(f.ids["r1"])
    stuck = f.tenant_sql("INSERT INTO serial_outbox (event_id, serial_code, version, payload, attempts, created_at) "
                         "VALUES ('stuck-1', :c, 9, '{}', 3, :t) RETURNING id", c=code, t=_ago(dt.timedelta(minutes=10)))
    stuck_id = stuck.scalar_one()
    f.tenant_sql("INSERT INTO serial_outbox (event_id, serial_code, version, payload, attempts, created_at) "
                 "VALUES ('fresh-1', :c, 10, '{}', 0, :t)", c=code, t=utcnow())
    return {stuck_id}


def temp_serial_in_production(f: Floor) -> set:
    f.core_sql("UPDATE feature_flag SET enabled = :off WHERE tenant_code = :t AND flag_key = 'FF_SERIAL_STD_HAT'",
               off=False, t=f.tenant_code)
    token, job = f.ids["batch_tokens"][0], f.ids["job:J-BATCH"]
    code = f"TEMP-{f.tenant_code.upper()}-000001"
    f.tenant_sql("INSERT INTO serial_registry (serial_code, tenant_code, sku, job_id, token_id, mode, status, version, "
                 "created_at, updated_at) VALUES (:c, :tc, 'STRAP', :j, :t, 'TEMP', 'issued', 1, :at, :at)",
                 c=code, tc=f.tenant_code, j=job, t=token, at=_ago(HOUR))
    f.core_sql("INSERT INTO serial_registry (serial_code, tenant_code, sku, job_ref, token_ref, mode, status, "
               "created_at, updated_at) VALUES (:c, :tc, 'STRAP', :j, :t, 'TEMP', 'issued', :at, :at)",
               c=code, tc=f.tenant_code, j="J-BATCH", t=str(token), at=_ago(HOUR))
    return {"FF_SERIAL_STD_HAT", code}


def serial_on_two_tokens(f: Floor) -> set:
    drop_serial_primary_key(f)
    shared = f.serial_of(f.ids["r1"])
    token, job = f.ids["batch_tokens"][0], f.ids["job:J-BATCH"]
    f.tenant_sql("INSERT INTO serial_registry (serial_code, tenant_code, sku, job_id, token_id, mode, status, version, "
                 "created_at, updated_at) VALUES (:c, :tc, 'TOTE', :j, :t, 'STD', 'issued', 1, :at, :at)",
                 c=shared, tc=f.tenant_code, j=job, t=token, at=_ago(HOUR))
    f.tenant_sql("UPDATE flow_token SET serial_code = :c WHERE id = :t", c=shared, t=token)
    # and a serial of this tenant that core holds for another tenant
    foreign = f.serial_of(f.ids["r2"])
    f.core_sql("UPDATE serial_registry SET tenant_code = 'studio' WHERE serial_code = :c", c=foreign)
    return {shared, foreign}


def token_lost_its_serial(f: Floor) -> set:
    f.tenant_sql("UPDATE flow_token SET serial_code = NULL WHERE id = :t", t=f.ids["r3"])
    f.tenant_sql("UPDATE flow_token SET serial_code = 'ATELIER-TOTE-777777' WHERE id = :t", t=f.ids["r4"])
    return {f.ids["r3"], f.ids["r4"]}


FAULTS = {f.check: f for f in (
    Fault("orphan_token", "instance archived under live tokens; job put back to planned", orphaned_tokens),
    Fault("multi_spawn_instance", "a second spawn cycle on the active instance", second_spawn_cycle,
          frozenset({"token_count_mismatch"})),
    Fault("token_count_mismatch", "job quantity changed after spawn", quantity_changed),
    Fault("mixed_token_states", "one token scrapped beside live ones", scrapped_beside_live,
          frozenset({"token_count_mismatch"})),
    Fault("scrapped_token_resurrected", "scrapped tokens set back to ready and completed", resurrected,
          frozenset({"orphan_token"})),
    Fault("work_queue_pollution", "the legacy work queue view that shows scrapped tokens", legacy_work_queue),
    Fault("multiple_active_instances", "old instance reused beside the new one (index dropped)",
          second_active_instance, frozenset({"token_count_mismatch"})),
    Fault("cancelled_job_not_clean", "job marked cancelled without the hard reset", cancel_without_reset,
          frozenset({"orphan_token"})),
    Fault("session_without_assignment", "session whose assignment expired; closed session on another's assignment",
          session_assignment_expired),
    Fault("assignment_without_token", "active assignments on a scrapped and a completed token",
          assignment_on_dead_tokens, frozenset({"cancelled_job_not_clean"})),
    Fault("duplicate_open_session", "a second open session on one token (index dropped)", second_open_session),
    Fault("session_on_dead_token", "a cancelled job's session reopened", session_reopened_on_scrapped,
          frozenset({"session_without_assignment", "cancelled_job_not_clean"})),
    Fault("stale_open_session", "a paused session forgotten for 13 hours", forgotten_session),
    Fault("serial_missing_in_core", "a core serial lost", core_serial_deleted),
    Fault("serial_missing_in_tenant", "a core serial the tenant never issued", core_serial_unknown_to_tenant),
    Fault("serial_field_mismatch", "core sku drifted; tenant status changed without the outbox", fields_drifted),
    Fault("serial_outbox_lag", "an outbox row the relay never published", outbox_stuck),
    Fault("temp_serial_on_production_tenant", "flag turned off and a TEMP serial issued on production",
          temp_serial_in_production),
    Fault("duplicate_serial", "one serial on two tokens (primary key dropped); core holds one for another tenant",
          serial_on_two_tokens),
    Fault("token_without_serial", "piece tokens that lost their serial", token_lost_its_serial),
)}
