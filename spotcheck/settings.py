"""What the node's and the challenger's settings share: TOML files, environment, model ids.

Each service keeps its own pydantic-settings model (its fields are its own); this module holds
the rules both follow, so they cannot drift apart: the environment overrides the file, relative
paths in a file resolve next to that file, and model ids are 0x-prefixed bytes32 in lower case.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from spotcheck.cli_options import parse_tokens
from spotcheck.encoding import parse_bytes32
from spotcheck.errors import ConfigError, EncodingError

#: Keys of a ``[models.<id>]`` table that name files.
MODEL_PATH_KEYS = ("onnx_path", "calibration_path", "srs_path")

S = TypeVar("S", bound=BaseSettings)


def _token_amount(value: Any) -> int:
    return parse_tokens(value, allow_zero=True)


#: A token amount in a settings file or the environment: tokens (``price = "1.5"`` or ``1.5``)
#: or base units with the ``wei`` suffix (``price = "1500wei"``), held as base units (int).
TokenAmount = Annotated[int, BeforeValidator(_token_amount)]


def one_line_errors(err: ValidationError) -> str:
    """Each validation error as ``field: problem`` (no pydantic URL), joined by "; "."""
    parts = []
    for e in err.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        problem = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] not in ("missing", "extra_forbidden") and "input" in e:
            shown = repr(e["input"])
            problem += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
        parts.append(f"{where}: {problem}")
    return "; ".join(parts)


def normalise_model_id(key: str) -> str:
    """``0x``-prefixed 32-byte hex, lower case; anything else is a ConfigError-worthy value."""
    hex_id = key.lower()
    if hex_id.startswith("0x") and len(hex_id) == 66:
        with suppress(EncodingError):
            return "0x" + parse_bytes32(hex_id).hex()
    raise ValueError(f"model id {key!r} must be a 0x-prefixed 32-byte hex string")


class ServiceSettings(BaseSettings):
    """Base of the services' settings: environment first, then the file (passed as kwargs)."""

    #: ``/ready`` turns false this many seconds after the chain loop's last successful step
    #: (and at once when a step fails): ``spotcheck.kit.ready``.
    ready_max_age_s: float = Field(default=300.0, gt=0)

    @field_validator("models", check_fields=False)
    @classmethod
    def _normalise_model_ids(cls, value: dict[str, Any]) -> dict[str, Any]:
        return {normalise_model_id(key): model for key, model in value.items()}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)


def load_service_settings(
    cls: type[S],
    kind: str,
    path: Path | None,
    path_keys: Iterable[str],
    overrides: dict[str, Any],
) -> S:
    """Read ``path`` (TOML) if given, apply ``overrides``, then the environment (``cls``)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"cannot read {kind} config {path}: {err}") from err
        base = Path(path).resolve().parent
        for model in data.get("models", {}).values():
            _resolve(model, MODEL_PATH_KEYS, base)
        _resolve(data, path_keys, base)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return cls(**data)
    except ValidationError as err:
        where = f" {path}" if path is not None else ""
        raise ConfigError(f"invalid {kind} config{where}: {one_line_errors(err)}") from err


def _resolve(table: dict[str, Any], keys: Iterable[str], base: Path) -> None:
    for key in keys:
        if key in table and not Path(table[key]).is_absolute():
            table[key] = str(base / table[key])
