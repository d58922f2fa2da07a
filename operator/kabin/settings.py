"""The operator's settings, read from `KABIN_*` environment variables.

A leaf module: every layer may read settings, and it imports nothing of kabin,
so it sits outside the layer contract. Command-line flags override the
environment; the environment overrides the defaults below.
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    """How `kabin operator` runs."""

    model_config = SettingsConfigDict(env_prefix="KABIN_", frozen=True)

    namespaces: tuple[str, ...] = Field(
        default=(), description="Namespaces to watch; empty means all namespaces."
    )
    metrics_port: int = Field(
        default=8080, ge=0, le=65535, description="Port of the Prometheus metrics; 0 turns it off."
    )
    error_backoffs: tuple[float, ...] = Field(
        default=(1, 2, 5, 10, 30),
        description="Seconds between retries of failed API calls and watch streams.",
    )
