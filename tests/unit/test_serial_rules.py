"""Serial policy, formats, relay backoff and fault points — rules without a database."""

from __future__ import annotations

import datetime as dt

import pytest

from lifecycle import faults, serials
from lifecycle.errors import InternalError, SerialPolicyViolation, ValidationError
from lifecycle.outbox import RelayOptions
from lifecycle.states import SerialMode
from lifecycle.uow import TenantInfo

FLAG = "FF_SERIAL_STD_HAT"


@pytest.mark.parametrize("flag, is_test, mode", [(True, False, SerialMode.STD), (True, True, SerialMode.STD),
                                                 (False, True, SerialMode.TEMP), (None, True, SerialMode.TEMP)])
def test_serial_mode_follows_the_flag_and_the_tenant_kind(flag, is_test, mode):
    flags = {} if flag is None else {FLAG: flag}
    assert serials.serial_mode(TenantInfo("atelier", is_test, flags)) is mode


@pytest.mark.parametrize("flags", [{FLAG: False}, {}])
def test_a_production_tenant_without_the_flag_is_refused_with_the_fix(flags):
    with pytest.raises(SerialPolicyViolation) as refused:
        serials.serial_mode(TenantInfo("atelier", False, flags))
    assert refused.value.code == "SERIAL_POLICY_VIOLATION" and refused.value.exit_code == 3
    assert refused.value.hint == f"hatthasilpa flag set atelier {FLAG} on"


def test_no_tenant_information_is_an_internal_error_not_a_guess():
    with pytest.raises(InternalError):
        serials.serial_mode(None)


def test_serial_formats():
    assert serials.standard_serial("atelier", "TOTE-M", 7) == "ATELIER-TOTE-M-000007"
    assert serials.standard_serial("atelier", "TOTE", 1_234_567) == "ATELIER-TOTE-1234567"  # grows, never wraps
    temp = serials.temp_serial("lab", "TOTE")
    assert temp.startswith("TEMP-LAB-TOTE-") and len(temp) == len("TEMP-LAB-TOTE-") + 12
    assert serials.temp_serial("lab", "TOTE") != temp


def test_backoff_doubles_up_to_its_cap():
    options = RelayOptions(backoff_base_seconds=5, backoff_cap_seconds=60)
    assert [options.backoff(n) for n in range(1, 6)] == [dt.timedelta(seconds=s) for s in (5, 10, 20, 40, 60)]
    for bad in ({"batch_size": 0}, {"batch_size": 10_001}, {"max_attempts": 0}):
        with pytest.raises(ValidationError):
            RelayOptions(**bad)


def test_fault_points_are_armed_only_by_the_environment_variable():
    assert faults.armed({}) == {}
    assert faults.armed({faults.ENV: "relay.mid_batch@3, relay.after_mark"}) == {"relay.mid_batch": 3,
                                                                                "relay.after_mark": 1}
    faults.fault_point("relay.after_claim")  # not armed in the test process: returns
    with pytest.raises(ValueError):
        faults.fault_point("relay.nowhere")
