"""The console's secrets form on the real app over a real store: a value goes in through
the CSRF-checked form and never comes back (not on the page, not in a refused form, not
in the audit row), and the key's policies judge it as they judge the API's route."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from slipway.access import Access
from slipway.access_limits import AccessLimits
from slipway.api.app import create_app
from slipway.observe.audit import AuditTrail
from slipway.secretrefs import SecretLimits
from slipway.service_secrets import Secrets
from slipway.store import Store
from slipway.vault import Vault
from testkit.apiagent import app_agent

VALUE = "hunter2-" + "x" * 12


def signed_in(tmp_path: Path) -> tuple[TestClient, Access, AuditTrail, Secrets]:
    vault = Vault(tmp_path / "vault.key")
    store = Store(tmp_path / "db.sqlite", vault)
    access = Access(store, vault, AccessLimits(), region="us-east-1", account="0" * 12)
    created = access.ensure_root_key()
    assert created is not None
    audit = AuditTrail(store)
    agent = app_agent(tmp_path, store, access, audit)
    agent.secrets = Secrets(store, vault, SecretLimits())
    client = TestClient(create_app(agent), base_url="http://testserver")
    client.post(
        "/console/signin",
        data={"key_id": created[0], "secret": created[1], "next": ""},
        follow_redirects=False,
    )
    return client, access, audit, agent.secrets


def csrf(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/secrets").text)
    assert found
    return found.group(1)


def test_a_secret_value_goes_in_and_never_comes_back(tmp_path: Path) -> None:
    client, _, audit, secrets = signed_in(tmp_path)
    form = {"intent": "put", "secret_name": "db/password", "value": VALUE, "services": "web-app"}
    assert client.post("/console/secrets", data=form).status_code == 403  # no CSRF token
    assert secrets.list() == []

    saved = client.post("/console/secrets", data={**form, "csrf": csrf(client)})
    assert saved.status_code == 200 and "db/password" in saved.text and "web-app" in saved.text
    assert VALUE not in saved.text
    assert [r["name"] for r in secrets.list()] == ["db/password"]

    refused = client.post(
        "/console/secrets",
        data={**form, "secret_name": "bad name", "csrf": csrf(client)},
    )
    assert refused.status_code == 400 and 'id="secret_name-error"' in refused.text
    assert VALUE not in refused.text
    rows = [r for r in audit.list() if r["operation"] == "slipway:PutSecret"]
    assert len(rows) == 2 and VALUE not in str(rows)


def test_a_principal_without_the_secrets_policy_is_refused(tmp_path: Path) -> None:
    client, access, audit, secrets = signed_in(tmp_path)
    access.create_principal("viewer")
    access.attach_policy("viewer", "read-only", None)
    key = access.create_key("viewer", "")
    viewer = TestClient(client.app, base_url="http://testserver")
    viewer.post(
        "/console/signin",
        data={"key_id": key["AccessKeyId"], "secret": key["SecretAccessKey"], "next": ""},
        follow_redirects=False,
    )
    token = re.search(r'name="csrf" value="([^"]+)"', viewer.get("/console/signin").text)
    assert token
    form = {"intent": "put", "secret_name": "db/password", "value": VALUE, "csrf": token[1]}
    answer = viewer.post("/console/secrets", data=form)
    # refused, then refused the page it would come back to (no slipway:ListSecrets)
    assert answer.status_code == 403 and "viewer is not authorized" in answer.text
    assert secrets.list() == []
    put = [r for r in audit.list() if r["operation"] == "slipway:PutSecret"]
    assert [r["outcome"] for r in put] == ["AccessDeniedException"]
