"""Property-based requests generated from the OpenAPI schema never get a 5xx, whoever sends them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from dashboards.app import create_app
from deployer.model import Role
from deployer.settings import load_settings
from tests.dashboard_support import seed_history

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TOKENS: dict[str, str] = {}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    (root / "config.yaml").write_text("source: {repository: central.git}\nworkdir: work\n")
    app = create_app(load_settings(root / "config.yaml", environ={}))
    service = app.state.service
    seed_history(service.engine, releases=30, hosts=4)
    service.create_flag("new-feed", actor="fuzz", reason="a flag for the generated requests to find")
    TOKENS["admin"] = service.accounts.create_token(name="fuzz", role=Role.ADMIN).secret
    TOKENS["viewer"] = service.accounts.create_token(name="fuzz-viewer", role=Role.VIEWER).secret
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    service.engine.dispose()


def check(case: schemathesis.Case, who: str) -> None:
    headers = {"Authorization": f"Bearer {TOKENS[who]}"} if who in TOKENS else {}
    response = case.call(headers=headers)
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:300])
    if who == "nobody" and "/webhooks/" not in case.formatted_path:  # those answer to a signature instead
        assert response.status_code == 401
    if response.status_code >= 400:
        assert isinstance(response.json().get("detail"), str)  # every error says why


@pytest.mark.parametrize("who", ["admin", "viewer", "nobody"])
def test_no_generated_request_gets_a_server_error(api_schema: schemathesis.BaseSchema, who: str) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:
        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            check(case, who)

        run()
