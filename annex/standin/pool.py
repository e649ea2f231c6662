"""A personal-condor style pool configuration that uses pool-password security, for the demo and tests."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_pool(directory: Path, collector: str = "cm.pool.example.org:9618") -> Path:
    """A personal-condor style configuration with pool-password security, as the seed's Quick Start asks;
    returns the path to set as CONDOR_CONFIG."""
    directory.mkdir(parents=True, exist_ok=True)
    password = directory / "password_file"
    password.write_bytes(secrets.token_hex(32).encode())
    os.chmod(password, 0o600)
    config = directory / "condor_config"
    config.write_text(
        "\n".join(
            [
                f"LOCAL_DIR = {directory}",
                f"COLLECTOR_HOST = {collector}",
                "SEC_CLIENT_AUTHENTICATION_METHODS = FS, PASSWORD",
                "SEC_DEFAULT_AUTHENTICATION = REQUIRED",
                "SEC_DEFAULT_AUTHENTICATION_METHODS = FS, PASSWORD",
                "SEC_PASSWORD_FILE = $(LOCAL_DIR)/password_file",
                "ALLOW_WRITE = condor_pool@*/* $(FULL_HOSTNAME) $(IP_ADDRESS)",
                "",
            ]
        )
    )
    return config
