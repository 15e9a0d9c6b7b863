"""What a tenant unit of work knows of its tenant (lifecycle/registry.py): the kind and flags are read
from core when a use case asks for them, so a change made by another process is seen by the very
next spawn; session commands never ask, and cost core nothing; a removed tenant is refused once
``REGISTERED_FOR_SECONDS`` have passed since this process last saw it registered."""

from __future__ import annotations

import subprocess

import pytest
import sqlalchemy as sa

from lifecycle import registry, services, sessions
from lifecycle.db import get_engine
from lifecycle.errors import NotFound, SerialPolicyViolation
from tests.e2e.test_cli import EXE

FLAG = "FF_SERIAL_STD_HAT"


def other_process(*args: str) -> None:
    """A CLI command in a process of its own (the stores' URLs come from the environment)."""
    proc = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def in_uow(stores, use_case, *args):
    with stores.uow() as uow:
        result = use_case(uow, *args)
        uow.commit()
        return result


def create_job(stores, code: str) -> None:
    stores.ok("job", "create", "--tenant", "atelier", "--code", code, "--sku", "TOTE", "--quantity", 2,
              "--graph", "bag")


def test_session_commands_read_nothing_from_core_and_a_spawn_sees_another_process_change_at_once(factory):
    create_job(factory, "J1")
    token = in_uow(factory, services.start_job, "J1")["token_ids"][0]
    core_statements = []
    core = get_engine(factory.settings.core_url)

    def on_core(conn, cursor, statement, *_):
        core_statements.append(statement)

    sa.event.listen(core, "before_cursor_execute", on_core)
    try:
        in_uow(factory, sessions.start, token, "nok")
        in_uow(factory, sessions.complete, token, "nok")
    finally:
        sa.event.remove(core, "before_cursor_execute", on_core)
    assert core_statements == []

    other_process("flag", "set", "atelier", FLAG, "off")
    create_job(factory, "J2")
    with pytest.raises(SerialPolicyViolation):
        in_uow(factory, services.start_job, "J2")
    assert factory.scalar("SELECT count(*) FROM flow_token t JOIN hatthasilpa_job j ON j.id = t.job_id "
                          "WHERE j.job_code = 'J2'") == 0

    other_process("tenant", "add", "atelier", "--test")  # now a test tenant: TEMP serials are allowed
    assert all(s.startswith("TEMP-ATELIER-TOTE-") for s in in_uow(factory, services.start_job, "J2")["serials"])

    other_process("flag", "set", "atelier", FLAG, "on")
    create_job(factory, "J3")
    assert in_uow(factory, services.start_job, "J3")["serials"] == ["ATELIER-TOTE-000003", "ATELIER-TOTE-000004"]


def test_a_tenant_removed_from_core_is_refused_once_the_registration_is_older_than_the_rule(factory, monkeypatch):
    now = [1_000.0]
    monkeypatch.setattr(registry.REGISTRATIONS, "clock", lambda: now[0])
    registry.REGISTRATIONS.clear()
    create_job(factory, "J1")  # the CLI's unit of work asks core, and this process remembers the answer
    with get_engine(factory.settings.core_url).begin() as conn:
        conn.execute(sa.text("DELETE FROM feature_flag WHERE tenant_code = 'atelier'"))
        conn.execute(sa.text("DELETE FROM tenant WHERE tenant_code = 'atelier'"))

    now[0] += registry.REGISTERED_FOR_SECONDS - 1
    with factory.uow() as uow:  # still trusted: opens; a use case asking for the tenant's flags is refused
        with pytest.raises(NotFound):
            services.start_job(uow, "J1")
    now[0] += 1
    with pytest.raises(NotFound) as refused:
        factory.uow()
    assert "atelier is not registered" in refused.value.message
    code, body = factory.cli("job", "show", "--tenant", "atelier", "J1")
    assert (code, body["error"]["code"]) == (2, "NOT_FOUND")
