"""First step of `docker compose up` (service airflow-init): refuse unsafe settings, make the keys.

Run as root inside the Airflow image before `airflow db migrate`:

1. Refuses to go on while a password of .env is a well-known default (admin, airflow, planner...), the
   user's own name, shorter than 12 characters, or (for database passwords, which go into connection
   URLs) holds characters that need URL-encoding; ``SHELFWISE_DEMO=1`` lets a throwaway demo through
   with a warning. The message names the variables, never their values.
2. Makes the Airflow keys on the first start (Fernet key, API secret key, JWT secret), each in a file of
   its own under ``/opt/airflow/secrets`` (a named volume, mode 0600, owned by ``AIRFLOW_UID``); the
   services read them through ``AIRFLOW__..._CMD``. Existing keys are kept: what Airflow encrypted stays
   readable. No key has a default anywhere in the repository.
3. Writes the UI users of the simple auth manager: their passwords file (mode 0600) and the Airflow
   config file every service reads (``AIRFLOW_CONFIG``) with ``[core] simple_auth_manager_users``.
   ``admin`` and ``planner`` are always there; ``manager``, ``lp``, ``finance`` and ``ops`` only when
   their password is set in .env (a set one passes the same checks), so a user without a password does
   not exist at all rather than getting one Airflow would make up.

Exit codes: 0 ready, 1 refused (the message says which variables to change).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import sys
from pathlib import Path

SECRETS_DIR = Path(os.environ.get("SHELFWISE_SECRETS_DIR", "/opt/airflow/secrets"))
#: Key file -> how a new value is made.
KEYS = {
    "fernet_key": lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    "api_secret_key": lambda: secrets.token_urlsafe(32),
    "jwt_secret": lambda: secrets.token_urlsafe(32),
}
#: Password variable -> (the user it belongs to, whether it goes into a connection URL).
PASSWORDS = {
    "POSTGRES_PASSWORD": ("POSTGRES_USER", True),
    "SHELFWISE_APP_DB_PASSWORD": ("shelfwise_app", True),
    "SHELFWISE_READER_DB_PASSWORD": ("shelfwise_erp_reader", True),
    "SHELFWISE_ADMIN_PASSWORD": ("admin", False),
    "SHELFWISE_PLANNER_PASSWORD": ("planner", False),
}
#: UI user -> (its password variable, its simple auth manager role, whether it must exist). The roles are
#: those of ``scripts/shelfwise.py``'s demo users; the policy's ``user_roles`` give them their Shelfwise roles.
UI_USERS = {
    "admin": ("SHELFWISE_ADMIN_PASSWORD", "admin", True),
    "planner": ("SHELFWISE_PLANNER_PASSWORD", "user", True),
    "manager": ("SHELFWISE_MANAGER_PASSWORD", "op", False),
    "lp": ("SHELFWISE_LP_PASSWORD", "viewer", False),
    "finance": ("SHELFWISE_FINANCE_PASSWORD", "viewer", False),
    "ops": ("SHELFWISE_OPS_PASSWORD", "viewer", False),
}
#: Password variables of the optional UI users: empty means the user is not created.
OPTIONAL_PASSWORDS = {variable: (user, False) for user, (variable, _, needed) in UI_USERS.items() if not needed}
DEFAULTS = frozenset({"admin", "airflow", "planner", "manager", "analyst", "user", "postgres", "password",
                      "changeme", "secret", "shelfwise", "lp", "finance", "ops"})
MIN_LENGTH = 12
_URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")


def password_problems(env: dict[str, str]) -> list[str]:
    """What is wrong with the passwords in ``env``, one line per variable; empty when all are fine."""
    problems = []
    for name, (user, in_url) in {**PASSWORDS, **OPTIONAL_PASSWORDS}.items():
        value = env.get(name, "")
        user = env.get(user, "airflow") if user.isupper() else user
        if not value:
            if name in PASSWORDS:
                problems.append(f"{name} is not set")
        elif value.lower() in DEFAULTS or value.lower() == user.lower():
            problems.append(f"{name} is a well-known default password")
        elif len(value) < MIN_LENGTH:
            problems.append(f"{name} is shorter than {MIN_LENGTH} characters")
        elif in_url and not _URL_SAFE.fullmatch(value):
            problems.append(f"{name} goes into connection URLs: use letters, digits and - . _ ~ only")
    return problems


def ensure_keys(directory: Path, owner: int | None) -> list[str]:
    """Make the missing key files in ``directory`` (0600, owned by ``owner``); returns the ones made."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    made = []
    for name, make in KEYS.items():
        path = directory / name
        if path.exists() and path.read_text().strip():
            continue
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make() + "\n")
        made.append(name)
    for path in (directory, *directory.iterdir()):
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
        if owner is not None:
            os.chown(path, owner, 0)
    return made


def ui_users(env: dict[str, str]) -> dict[str, tuple[str, str]]:
    """The UI users to create: user -> (password, role); an optional user without a password is left out."""
    return {user: (env.get(variable, ""), role) for user, (variable, role, needed) in UI_USERS.items()
            if needed or env.get(variable)}


def _write_private(path: Path, text: str, owner: int | None) -> None:
    """Replace ``path`` with ``text``, readable by the Airflow user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    if owner is not None:
        os.chown(path, owner, 0)


def write_ui_users(passwords: Path, config: Path, env: dict[str, str], owner: int | None) -> list[str]:
    """The simple auth manager's passwords file and the Airflow config file that lists its users.

    The users list is not a setting Airflow reads from a command (``_CMD``), and compose cannot leave a user
    out of an environment variable by whether a password is set, so the services read it from ``config``
    (their ``AIRFLOW_CONFIG``); everything else stays in their environment, which overrides the file.

    Returns:
        The users written, as ``user:role``.
    """
    users = ui_users(env)
    listed = [f"{user}:{role}" for user, (_, role) in users.items()]
    _write_private(passwords, json.dumps({user: password for user, (password, _) in users.items()}), owner)
    _write_private(config, "# Written by airflow-init on every start (docker/airflow_init.py): edit .env instead.\n"
                   f"[core]\nsimple_auth_manager_users = {','.join(listed)}\n", owner)
    return listed


def main(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    demo = env.get("SHELFWISE_DEMO") == "1"
    problems = password_problems(env)
    if problems and not demo:
        print("airflow-init: refusing to start Shelfwise with unsafe settings in .env:\n  "
              + "\n  ".join(problems)
              + f"\nSet passwords of {MIN_LENGTH}+ characters, e.g. "
              "`python -c \"import secrets; print(secrets.token_urlsafe(24))\"`, then `docker compose up -d` again."
              "\nFor a throwaway demo on this machine only, SHELFWISE_DEMO=1 starts anyway.", file=sys.stderr)
        return 1
    if problems:
        print("airflow-init: WARNING demo mode (SHELFWISE_DEMO=1) with unsafe passwords: "
              + "; ".join(problems), file=sys.stderr)
    owner = int(env["AIRFLOW_UID"]) if env.get("AIRFLOW_UID") else None
    made = ensure_keys(SECRETS_DIR, owner)
    print(f"airflow-init: Airflow keys in {SECRETS_DIR}: " + (f"made {', '.join(made)}" if made else "kept"))
    users = write_ui_users(Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]), Path(env["AIRFLOW_CONFIG"]),
                           env, owner)
    print(f"airflow-init: UI users {', '.join(users)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
