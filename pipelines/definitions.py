"""The Dagster definitions of the monitor. This module only assembles."""

from dagster import Definitions

from .assets import MONITOR_ASSETS
from .jobs import MONITOR_JOBS
from .repairs import REPAIR_ASSETS, REPAIR_JOBS
from .resources import RESOURCES
from .schedules import SCHEDULES
from .sensors import SENSORS
from .volumes import VOLUME_ASSETS

defs = Definitions(
    assets=MONITOR_ASSETS + REPAIR_ASSETS + VOLUME_ASSETS,
    jobs=MONITOR_JOBS + REPAIR_JOBS,
    schedules=SCHEDULES,
    sensors=SENSORS,
    resources=RESOURCES,
)
