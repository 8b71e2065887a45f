"""Shared pieces of the config models."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr


def _empty_to_none(value: Any) -> Any:
    # `${ES_API_KEY:-}` interpolates to "" when unset; that means "not configured".
    return None if value == "" else value


OptStr = Annotated[str | None, BeforeValidator(_empty_to_none)]
OptSecret = Annotated[SecretStr | None, BeforeValidator(_empty_to_none)]


class Model(BaseModel):
    """Frozen, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)
