"""The keys of the Airflow homes the runner creates, and where ``make airflow`` may listen."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import airflow_services as services  # noqa: E402 - scripts/ is not a package
import shelfwise  # noqa: E402

NAMES = {"AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"}


def test_a_new_home_gets_keys_of_its_own_kept_private(tmp_path):
    first = services.home_secrets(tmp_path / "a")
    assert set(first) == NAMES and all(len(v) >= 32 for v in first.values())
    assert services.home_secrets(tmp_path / "a") == first  # kept, not regenerated
    assert (tmp_path / "a" / "airflow.cfg").stat().st_mode & 0o777 == 0o600
    other = services.home_secrets(tmp_path / "b")
    assert not set(first.values()) & set(other.values())
    from cryptography.fernet import Fernet

    Fernet(first["AIRFLOW__CORE__FERNET_KEY"])  # a valid key


def test_keys_airflow_wrote_are_used_and_empty_ones_filled(tmp_path):
    cfg = tmp_path / "airflow.cfg"
    cfg.touch(mode=0o600)
    cfg.write_text("[core]\n# comment\nfernet_key = \nload_examples = False\n\n[api]\nsecret_key = kept-value\n")
    keys = services.home_secrets(tmp_path)
    assert keys["AIRFLOW__API__SECRET_KEY"] == "kept-value"
    text = cfg.read_text()
    assert f"fernet_key = {keys['AIRFLOW__CORE__FERNET_KEY']}\n" in text and "load_examples = False" in text
    assert f"[api_auth]\njwt_secret = {keys['AIRFLOW__API_AUTH__JWT_SECRET']}\n" in text


def test_a_legacy_fernet_key_file_is_kept(tmp_path):
    (tmp_path / "fernet.key").write_text("legacy-key\n")
    assert services.home_secrets(tmp_path)["AIRFLOW__CORE__FERNET_KEY"] == "legacy-key"


def test_a_configuration_others_can_read_is_refused(tmp_path):
    cfg = tmp_path / "airflow.cfg"
    cfg.write_text("[core]\nfernet_key = committed\n")
    os.chmod(cfg, 0o644)
    with pytest.raises(services.ExposedSecrets, match=r"airflow.cfg has mode 644: other users can read"):
        services.home_secrets(tmp_path)


def test_stacks_use_the_home_keys_and_a_short_token(tmp_path):
    env = services.stack_env({"AIRFLOW_HOME": str(tmp_path)}, executor=services.LOCAL, port=8793)
    assert {k: env[k] for k in NAMES} == services.home_secrets(tmp_path)
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__API_AUTH__JWT_EXPIRATION_TIME"] == services.UI_TOKEN_SECONDS


def test_standalone_refuses_other_interfaces_with_demo_passwords(tmp_path):
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({u: p for u, (p, _) in shelfwise.DEMO_USERS.items()}))
    assert shelfwise.exposure_problem("127.0.0.1", passwords, demo=False) is None
    assert shelfwise.exposure_problem("::1", passwords, demo=False) is None
    problem = shelfwise.exposure_problem("0.0.0.0", passwords, demo=False)
    assert problem.startswith("refusing to listen on 0.0.0.0 while admin, analyst, finance, lp, manager, ops, planner keep the demo")
    assert shelfwise.exposure_problem("0.0.0.0", passwords, demo=True) is None
    passwords.write_text(json.dumps({u: f"{u}-long-unique-secret" for u in shelfwise.DEMO_USERS}))
    assert shelfwise.exposure_problem("0.0.0.0", passwords, demo=False) is None
    assert "is not an IP address" in shelfwise.exposure_problem("everywhere", passwords, demo=False)
