"""Suite-wide settings. Machines here are small and often busy building: no test depends on speed."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile("clientreg", deadline=None, max_examples=60,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("clientreg")
