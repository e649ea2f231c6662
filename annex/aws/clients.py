"""How boto3 clients are configured: retries and timeouts, per kind of call."""

from __future__ import annotations

from botocore.config import Config

RETRIES = Config(retries={"mode": "adaptive", "max_attempts": 8}, connect_timeout=5, read_timeout=30)
# The first call answers "can we reach AWS at all?": few retries, so a dead endpoint fails in seconds.
PROBE = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=3, read_timeout=10)
# A price is worth a few seconds, not a minute: without one the user is asked for --max-price.
PRICING = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=15)
