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
3. Writes the UI users' passwords file of the simple auth manager (mode 0600).

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
DEFAULTS = frozenset({"admin", "airflow", "planner", "manager", "analyst", "user", "postgres", "password",
                      "changeme", "secret", "shelfwise"})
MIN_LENGTH = 12
_URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")


def password_problems(env: dict[str, str]) -> list[str]:
    """What is wrong with the passwords in ``env``, one line per variable; empty when all are fine."""
    problems = []
    for name, (user, in_url) in PASSWORDS.items():
        value = env.get(name, "")
        user = env.get(user, "airflow") if user.isupper() else user
        if not value:
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


def write_ui_passwords(path: Path, env: dict[str, str], owner: int | None) -> None:
    """The simple auth manager's passwords file, readable by the Airflow user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"admin": env["SHELFWISE_ADMIN_PASSWORD"], "planner": env["SHELFWISE_PLANNER_PASSWORD"]}, handle)
    if owner is not None:
        os.chown(path, owner, 0)


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
    write_ui_passwords(Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]), env, owner)
    return 0


if __name__ == "__main__":
    sys.exit(main())
