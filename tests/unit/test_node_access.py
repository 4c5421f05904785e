"""Optional API keys and per-key rate limits for ``/infer`` (issue 14): 401 for a missing or
unknown key, 429 with Retry-After over the limit, open when no key is configured."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from prover.access import AccessControl, KeyLimit, TokenBucket, load_keys
from prover.api import ApiContext, create_app
from prover.config import load_settings
from prover.defence import SelfAuditor
from prover.metrics import NodeMetrics
from spotcheck.errors import ConfigError

A = bytes.fromhex("aa" * 32)
URL = f"/v1/models/0x{A.hex()}/infer"


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _client(access: AccessControl) -> tuple[TestClient, NodeMetrics]:
    # The server refuses every job (503) after admission: what matters is who gets that far.
    runtime = SimpleNamespace(check_input_q=lambda values: values)
    server = SimpleNamespace(engine=SimpleNamespace(model_ids=[A], runtime=lambda m: runtime))
    metrics = NodeMetrics()
    ctx = ApiContext(
        server,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        metrics,
        SelfAuditor(None, 0.0, {A: 2}),  # type: ignore[arg-type]
        refuse_work=lambda model_id: "admitted (test)",
        access=access,
    )
    return TestClient(create_app(ctx)), metrics


def test_noKeysConfigured_isOpenAsBefore() -> None:
    http, _ = _client(AccessControl({}))
    answer = http.post(URL, json={"input_q": [1]})
    assert answer.status_code == 503 and "admitted (test)" in answer.json()["detail"]


def test_missingOrUnknownKey_is401_withAOneLineReason() -> None:
    http, metrics = _client(AccessControl({"k-secret": KeyLimit(rate=1, burst=1)}))
    missing = http.post(URL, json={"input_q": [1]})
    assert missing.status_code == 401
    assert missing.json()["detail"] == "an API key is required (Authorization: Bearer <key>)"
    unknown = http.post(URL, json={"input_q": [1]}, headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 401 and unknown.json()["detail"] == "unknown API key"
    assert (
        metrics.registry.get_sample_value(
            "spotcheck_node_requests_rejected_total", {"reason": "unauthorized"}
        )
        == 2
    )
    ok = http.post(URL, json={"input_q": [1]}, headers={"X-API-Key": "k-secret"})
    assert ok.status_code == 503  # past the gate


def test_overTheLimit_is429_withRetryAfter_thenRefilled() -> None:
    clock = Clock()
    http, metrics = _client(AccessControl({"k": KeyLimit(rate=0.5, burst=2)}, clock))
    auth = {"Authorization": "Bearer k"}
    assert [http.post(URL, json={"input_q": [1]}, headers=auth).status_code for _ in range(2)] == [
        503,
        503,
    ]
    over = http.post(URL, json={"input_q": [1]}, headers=auth)
    assert over.status_code == 429
    assert over.headers["Retry-After"] == "2"  # one token at 0.5/s
    assert over.json()["detail"] == "rate limit of this API key exceeded (0.5 requests/s, burst 2)"
    assert (
        metrics.registry.get_sample_value(
            "spotcheck_node_requests_rejected_total", {"reason": "rate_limited"}
        )
        == 1
    )
    clock.t += 2.0
    assert http.post(URL, json={"input_q": [1]}, headers=auth).status_code == 503


def test_keysAreLimitedIndependently() -> None:
    clock = Clock()
    access = AccessControl({"a": KeyLimit(rate=1), "b": KeyLimit(rate=1)}, clock)
    assert access.check({"x-api-key": "a"}).allowed
    assert access.check({"x-api-key": "a"}).status == 429
    assert access.check({"x-api-key": "b"}).allowed


def test_bucket_neverHoldsMoreThanTheBurst_evenAfterALongIdle() -> None:
    bucket = TokenBucket(KeyLimit(rate=10, burst=3), now=0.0)
    waits = [bucket.take(1e6) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0] and waits[3] == pytest.approx(0.1)


def test_keys_fromTheSettingsTable_andAKeysFile(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text('[keys]\n"from-file" = { rate = 2.5, burst = 5 }\n')
    config = tmp_path / "node.toml"
    config.write_text(
        f'[access]\nkeys_file = "{keys_file}"\n[access.keys]\n"inline" = {{ rate = 1 }}\n'
    )
    settings = load_settings(config)
    keys = load_keys(settings.access.keys, settings.access.keys_file)
    assert keys == {"inline": KeyLimit(rate=1, burst=1), "from-file": KeyLimit(rate=2.5, burst=5)}


def test_keysFile_bad_isAOneLineConfigError(tmp_path: Path) -> None:
    bad = tmp_path / "keys.toml"
    bad.write_text('[keys]\n"abcd1234" = { rate = -1 }\n')
    with pytest.raises(ConfigError) as err:
        load_keys({}, bad)
    assert "key ending '1234': rate: Input should be greater than 0" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="cannot read API keys file"):
        load_keys({}, tmp_path / "missing.toml")
