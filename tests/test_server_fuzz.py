"""Schemathesis against the live OpenAPI document of a real server (uvicorn on 127.0.0.1, the example
registry in a real git repository), with an admin token: every operation, positive and negative
data, every check schemathesis has (no 5xx, responses that conform to the schema and its status
codes, content types and headers, bad inputs rejected with 4xx). Bounded: at most 25 examples per
operation and mode, no shrinking.

The operations run inside one test with hypothesis' ``@given`` over ``operation.as_strategy()``:
schemathesis' own pytest loader (``from_fixture``) does not run on pytest 9."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from conftest import Repo
from server_support import live_server

MAX_EXAMPLES = 25


def run_operation(operation: Any, mode: Any) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        case.call_and_validate()

    check()


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_api_conforms_to_its_openapi(example_repo: Repo, tmp_path: Path, mode: str) -> None:
    # No rate limit to speak of: the fuzzer sends hundreds of requests with one token.
    with live_server(example_repo.root, tmp_path, rate=10_000, burst=10_000) as live:
        schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
        token = live.tokens["admin"]

        @schema.auth()
        class Bearer:  # through schemathesis, so its negative cases may leave the token out on purpose
            def get(self, case: Any, context: Any) -> str:
                return token

            def set(self, case: Any, data: str, context: Any) -> None:
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 12
        failures = []
        for operation in operations:
            try:
                run_operation(operation, schemathesis.GenerationMode(mode))
            except Exception as exc:  # collect every operation's failure, not just the first
                failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
        assert failures == [], "\n\n".join(failures)
