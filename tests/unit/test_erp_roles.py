"""Role URLs derive from the owner's, the owner connection resolves loudly, the app password is kept private."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from include.erp import db, roles

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import shelfwise  # noqa: E402 - scripts/ is not a package


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("ERP_STAGING_OWNER_URL", "AIRFLOW_CONN_ERP_STAGING_OWNER", "SHELFWISE_APP_DB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("owner", "app", "reader"), [
    ("postgresql://postgres@127.0.0.1:5432/shelfwise_erp",
     "postgresql://shelfwise_app@127.0.0.1:5432/shelfwise_erp",
     "postgresql://shelfwise_erp_reader@127.0.0.1:5432/shelfwise_erp"),
    ("postgres://admin:pw@db.internal/erp_staging?sslmode=require",
     "postgresql://shelfwise_app@db.internal/erp_staging?sslmode=require",
     "postgresql://shelfwise_erp_reader@db.internal/erp_staging?sslmode=require"),
    ("postgresql://postgres@/erp?host=/var/run/postgresql&port=5433",
     "postgresql://shelfwise_app@/erp?host=%2Fvar%2Frun%2Fpostgresql&port=5433",
     "postgresql://shelfwise_erp_reader@/erp?host=%2Fvar%2Frun%2Fpostgresql&port=5433"),
])
def test_role_urls_keep_server_and_database_and_drop_the_owners_credentials(owner, app, reader):
    assert roles.app_url(owner) == app
    assert roles.reader_url(owner) == reader


def test_a_password_is_url_encoded():
    url = roles.app_url("postgresql://postgres:secret@h:5432/erp", "p@ss/w:rd")
    assert url == "postgresql://shelfwise_app:p%40ss%2Fw%3Ard@h:5432/erp"
    assert "secret" not in url


def test_an_owner_url_without_database_is_refused():
    with pytest.raises(db.ErpConnectionError, match=r"the owner URL names no database \(postgresql://u:\*\*\*@h/"):
        roles.app_url("postgresql://u:pw@h/")


def test_no_owner_configured_means_none(monkeypatch):
    assert roles.resolve_owner_url() is None


def test_the_owner_connection_wins_over_the_variable(monkeypatch):
    monkeypatch.setenv("ERP_STAGING_OWNER_URL", "postgresql://var@h/erp")
    assert roles.resolve_owner_url() == "postgresql://var@h/erp"
    monkeypatch.setenv("AIRFLOW_CONN_ERP_STAGING_OWNER", "postgres://conn@h/erp")
    assert roles.resolve_owner_url() == "postgresql://conn@h/erp"


def test_a_broken_owner_connection_names_itself(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ERP_STAGING_OWNER", "http://erp.example/api")
    with pytest.raises(db.ErpConnectionError, match="Airflow connection 'erp_staging_owner' is of type 'http'"):
        roles.resolve_owner_url()

    def unreadable(conn_id):
        raise ValueError("bad json")

    with pytest.raises(db.ErpConnectionError, match="'erp_staging_owner' cannot be read: bad json"):
        roles.resolve_owner_url(lookup=unreadable)


def test_the_app_password_is_generated_once_and_private(tmp_path, monkeypatch):
    assert shelfwise.app_password(tmp_path, "postgresql://postgres@h/erp") is None  # trust: no password
    first = shelfwise.app_password(tmp_path, "postgresql://postgres:pw@h/erp")
    path = tmp_path / shelfwise.APP_PASSWORD_FILE
    assert len(first) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert shelfwise.app_password(tmp_path, "postgresql://postgres:pw@h/erp") == first
    monkeypatch.setenv("SHELFWISE_APP_DB_PASSWORD", "from-the-environment")
    assert shelfwise.app_password(tmp_path, "postgresql://postgres:pw@h/erp") == "from-the-environment"
