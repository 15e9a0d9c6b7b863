"""The hash-chained audit log on PostgreSQL and SQLite: intact after real actions; an edited field,
a deleted entry and a swapped pair are each found at the first broken entry; the store refuses
UPDATE and DELETE on the log."""

from __future__ import annotations

import contextlib
import json

import pytest
import sqlalchemy as sa

from checks import audit_log
from checks.errors import AuditTampered
from hatthasilpa import cli
from lifecycle.db import get_engine, is_postgres
from tests.incident_support import count_rows, record, result


def _five_entries(stores) -> str:
    url = stores.settings.monitor_url
    record(url, result("orphan_token", [1, 2]))
    iid = stores.ok("incident", "list", "--json")["incidents"][0]["id"]
    stores.ok("incident", "ack", str(iid), "--by", "somchai", "--json")
    stores.ok("incident", "mute", str(iid), "--by", "somchai", "--for", "1h", "--json")
    stores.ok("incident", "unmute", str(iid), "--by", "niran", "--json")
    record(url, result("orphan_token", []))
    with get_engine(url).begin() as conn:
        audit_log.append(conn, "repair.approved", "niran", "plan:x", {"plan_id": "x", "rows": [1.5, None, "ก"]})
    return url


@contextlib.contextmanager
def tampering(url):
    """A connection that gets past the append-only triggers, as someone with the owner's keys would."""
    with get_engine(url).begin() as conn:
        if is_postgres(conn):
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(sa.text("DROP TRIGGER audit_log_no_update"))
            conn.execute(sa.text("DROP TRIGGER audit_log_no_delete"))
        yield conn


def _broken(stores) -> tuple[int, dict]:
    code, body = stores.cli("audit", "verify", "--json")
    assert code == 3 and body["error"]["code"] == "AUDIT_TAMPERED", body
    return body["error"]["details"]["first_broken"], body["error"]


def test_an_intact_log_verifies_and_records_the_result(stores):
    url = _five_entries(stores)
    data = stores.ok("audit", "verify", "--json")
    assert data["entries"] == 5 and count_rows(url, "audit_log") == 5
    with get_engine(url).connect() as conn:
        last = audit_log.last_verification(conn)
    assert (last.ok, last.entries) == (True, 5)
    code, _, out = cli.run(["audit", "verify"])
    assert code == 0 and "5 entries" in out


def test_an_edited_field_is_found(stores):
    url = _five_entries(stores)
    with tampering(url) as conn:
        conn.execute(sa.text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3"))
    first, error = _broken(stores)
    assert first == 3 and "entry 3" in error["message"] and "edited" in error["message"]
    with get_engine(url).connect() as conn:
        assert audit_log.last_verification(conn).ok is False


def test_a_deleted_entry_is_found(stores):
    url = _five_entries(stores)
    with tampering(url) as conn:
        conn.execute(sa.text("DELETE FROM audit_log WHERE seq = 2"))
    first, error = _broken(stores)
    assert first == 3 and "entry 2" in error["message"]


def test_a_swapped_pair_is_found(stores):
    url = _five_entries(stores)
    with tampering(url) as conn:  # entries 2 and 4 trade places, hashes and all
        conn.execute(sa.text("UPDATE audit_log SET seq = -2 WHERE seq = 2"))
        conn.execute(sa.text("UPDATE audit_log SET seq = 2 WHERE seq = 4"))
        conn.execute(sa.text("UPDATE audit_log SET seq = 4 WHERE seq = -2"))
    first, _ = _broken(stores)
    assert first == 2


def test_a_rehashed_edit_still_breaks_the_next_link(stores):
    url = _five_entries(stores)
    with get_engine(url).connect() as conn:
        row = dict(conn.execute(sa.text("SELECT * FROM audit_log WHERE seq = 2")).mappings().one())
    row["actor"] = "mallory"
    row["body"] = row["body"] if isinstance(row["body"], dict) else json.loads(row["body"])
    with tampering(url) as conn:
        conn.execute(sa.text("UPDATE audit_log SET actor = 'mallory', entry_hash = :h WHERE seq = 2"),
                     {"h": audit_log.hash_of(row)})
    first, _ = _broken(stores)
    assert first == 3


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET actor = 'mallory' WHERE seq = 1",
                                       "DELETE FROM audit_log WHERE seq = 1"])
def test_the_store_refuses_update_and_delete(stores, statement):
    url = _five_entries(stores)
    verb = statement.split()[0]
    # the trigger refuses: insufficient_privilege on PostgreSQL, RAISE(ABORT) on SQLite
    refusal = sa.exc.ProgrammingError if stores.is_postgres else sa.exc.IntegrityError
    with pytest.raises(refusal, match=f"audit_log is append-only: {verb} refused") as refused:
        with get_engine(url).begin() as conn:
            conn.execute(sa.text(statement))
    if stores.is_postgres:
        assert refused.value.orig.sqlstate == "42501"
    assert audit_log.verify(url)["entries"] == 5


def test_verify_raises_the_product_error(stores):
    url = _five_entries(stores)
    with tampering(url) as conn:
        conn.execute(sa.text("UPDATE audit_log SET kind = 'repair.skipped' WHERE seq = 5"))
    with pytest.raises(AuditTampered):
        audit_log.verify(url)
