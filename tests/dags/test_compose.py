"""Keep docker-compose.yaml, the Dockerfile and the repository consistent, and the stack safe, without Docker.

The compose file is parsed with PyYAML and its ``${VAR}`` references are resolved the way
``docker compose`` does, using the file's own defaults. Each check is a helper that returns a list
of problems, so a failure names every broken service at once; the ``*_flags_*`` tests run the
helpers on a deliberately broken copy to prove they can fail.

Safety rules (SECURITY.md): published ports bind to 127.0.0.1 unless ``SHELFWISE_BIND`` says
otherwise; no password or key has a default in the file; the Airflow keys come from files airflow-init
makes (``_CMD``); airflow-init refuses default passwords unless ``SHELFWISE_DEMO=1``, migrates the ERP
schema as its owner before any Airflow service starts, and is the only service given the owner's URL;
the Airflow services reach the ERP as ``shelfwise_app``.
"""

from __future__ import annotations

import copy
import importlib.util
import ipaddress
import json
import re
import shlex
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
INIT_SQL = ROOT / "docker" / "postgres-init.sql"
INIT_SCRIPT = ROOT / "docker" / "airflow_init.py"

#: Airflow services and the command each must run (the image's entrypoint prefixes ``airflow``).
AIRFLOW_COMMANDS = {
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-worker": ["celery", "worker"],
}
AIRFLOW_SERVICES = ["airflow-init", *AIRFLOW_COMMANDS]
REQUIRED_SERVICES = ["postgres", "redis", *AIRFLOW_SERVICES]
#: Environment every Airflow service needs to run Shelfwise DAGs.
REQUIRED_ENV = [
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    # Set directly or, as compose does, as ``<name>_CMD`` reading a file airflow-init made.
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_EXPIRATION_TIME",
    "AIRFLOW_CONN_ERP_STAGING",
    "ERP_STAGING_URL",
    "SHELFWISE_DATA_ROOT",
    "PYTHONPATH",
]
#: Variables whose value is a credential: never a default in the compose file.
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$")
#: Settings that hold a key; in compose they come from a file (``<name>_CMD``), never a literal.
KEY_SETTINGS = ["AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"]
APP_ROLE = "shelfwise_app"
OWNER_URL = "ERP_STAGING_OWNER_URL"
#: Project folders DAGs import from or read at run time, mounted under PYTHONPATH.
PROJECT_MOUNTS = ["dags", "plugins", "include", "models", "data_contracts"]

_REFERENCE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.DOTALL)
_AIRFLOW_PIN = re.compile(r"^apache-airflow(?:\[[^\]]*\])?\s*==\s*(?P<version>[^\s;\\#]+)", re.MULTILINE)
_FROM_AIRFLOW = re.compile(
    r"^FROM\s+(?:--\S+\s+)*apache/airflow:(?P<version>\d+\.\d+\.\d+)\S*", re.MULTILINE | re.IGNORECASE
)
_CREATE_DATABASE = re.compile(r"\bCREATE\s+DATABASE\s+\"?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\"?", re.IGNORECASE)


# --- helpers -------------------------------------------------------------------------------------


def references(value: str) -> list[tuple[str, str | None]]:
    """List the variables a compose string reads.

    Args:
        value: a string from the compose file.

    Returns:
        ``(name, operator)`` pairs; the operator is ``None`` for ``${X}`` and ``$X``, else one of
        ``:-``, ``-``, ``:?``, ``?``, ``:+``, ``+``. ``$$`` is an escaped dollar, not a reference.

    Raises:
        ValueError: for a ``${...}`` that is not a valid reference.
    """
    found = []
    for match in _REFERENCE.finditer(value):
        if match["escaped"]:
            continue
        if match["bare"]:
            found.append((match["bare"], None))
            continue
        braced = _BRACED.match(match["braced"])
        if braced is None:
            raise ValueError(f"invalid variable reference ${{{match['braced']}}} in {value!r}")
        found.append((braced["name"], braced["op"]))
    return found


def interpolate(value: str, env: dict[str, str]) -> str:
    """Resolve ``${VAR}`` references as ``docker compose`` does.

    Args:
        value: a string from the compose file.
        env: the variables that are set.

    Returns:
        The string with references replaced; a required variable (``${X:?msg}`` or ``${X}``) that
        is not set becomes ``<X>`` so that checks can still read the rest of the value.
    """

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["bare"]:
            return env.get(match["bare"], f"<{match['bare']}>")
        braced = _BRACED.match(match["braced"])
        if braced is None:
            raise ValueError(f"invalid variable reference ${{{match['braced']}}} in {value!r}")
        name, op, arg = braced["name"], braced["op"], braced["arg"]
        is_set = name in env and (env[name] != "" or not (op or "").startswith(":"))
        if op in (":-", "-"):
            return env[name] if is_set else arg
        if op in (":+", "+"):
            return arg if is_set else ""
        return env[name] if is_set else f"<{name}>"

    return _REFERENCE.sub(replace, value)


def walk_strings(node: object) -> list[str]:
    """Every string value (not key) in a parsed YAML tree."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in walk_strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in walk_strings(item)]
    return []


def resolve(node: object, env: dict[str, str]) -> object:
    """Copy of a parsed YAML tree with every string interpolated (and no shared anchors)."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: resolve(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(item, env) for item in node]
    return node


def environment(service: dict) -> dict[str, str]:
    """A service's environment as a dict, whether written as a mapping or a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command_words(service: dict) -> list[str]:
    """A service's command as a list of words."""
    command = service.get("command")
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def mounts(service: dict) -> list[tuple[str, str, str]]:
    """A service's volumes as ``(type, source, target)``; type is ``bind`` or ``volume``."""
    result = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            result.append(
                (volume.get("type", "volume"), str(volume.get("source", "")), str(volume["target"]))
            )
            continue
        source, _, rest = volume.partition(":")
        target = rest.split(":", 1)[0] if rest else source
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        result.append((kind, source, target))
    return result


def depends_on(service: dict) -> dict[str, str]:
    """A service's dependencies mapped to their condition."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def airflow_pin(requirements_text: str) -> str | None:
    """The ``apache-airflow==`` version pinned in a requirements or lock file."""
    match = _AIRFLOW_PIN.search(requirements_text)
    return match["version"] if match else None


def dockerfile_airflow_version(dockerfile_text: str) -> str | None:
    """The Airflow version of the ``FROM apache/airflow:X.Y.Z...`` base image."""
    match = _FROM_AIRFLOW.search(dockerfile_text)
    return match["version"] if match else None


def env_example_names(text: str) -> set[str]:
    """Variables assigned (uncommented) in an ``.env`` style file."""
    names = set()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            names.add(line.split("=", 1)[0].removeprefix("export ").strip())
    return names


def created_databases(sql: str) -> list[str]:
    """Databases a SQL script creates, ignoring ``--`` comments."""
    code = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return _CREATE_DATABASE.findall(code)


def service_problems(compose: dict) -> list[str]:
    """Missing required services and Airflow services running the wrong command."""
    services = compose.get("services", {})
    problems = [f"service {name!r} is missing" for name in REQUIRED_SERVICES if name not in services]
    for name, expected in AIRFLOW_COMMANDS.items():
        if name in services and command_words(services[name]) != expected:
            problems.append(f"{name} runs {command_words(services[name])}, expected {expected}")
    init = services.get("airflow-init", {})
    if init and "airflow db migrate" not in " ".join(command_words(init)):
        problems.append("airflow-init does not run `airflow db migrate`")
    return problems


def mount_problems(compose: dict, root: Path) -> list[str]:
    """Bind mounts of paths missing from the repo, and named volumes not declared."""
    declared = set(compose.get("volumes") or {})
    problems = []
    for name, service in compose.get("services", {}).items():
        for kind, source, target in mounts(service):
            if kind == "bind":
                if PurePosixPath(source).is_absolute() or source.startswith("~"):
                    problems.append(f"{name} mounts machine-specific host path {source}")
                elif not (root / source).exists():
                    problems.append(f"{name} mounts {source}, which is not in the repository")
            elif source and source not in declared:
                problems.append(f"{name} uses volume {source!r}, not declared under top-level volumes")
            if not PurePosixPath(target).is_absolute():
                problems.append(f"{name} mounts to relative container path {target}")
    return problems


def image_problems(compose: dict, pinned_version: str | None, base_version: str | None) -> list[str]:
    """Airflow services on different images, or an image tag off the pinned Airflow version."""
    services = compose.get("services", {})
    present = [name for name in AIRFLOW_SERVICES if name in services]
    images = {services[name].get("image") for name in present}
    builds = {repr(services[name].get("build")) for name in present}
    problems = []
    if len(images) != 1 or None in images:
        problems.append(f"Airflow services use different images: {sorted(map(str, images))}")
    if len(builds) != 1 or builds == {"None"}:
        problems.append("Airflow services do not all build the image from the same Dockerfile")
    if pinned_version is None:
        problems.append("requirements.txt does not pin apache-airflow==X.Y.Z")
    for image in images - {None}:
        tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else "latest"
        if tag != pinned_version:
            problems.append(f"image {image} is tagged {tag}, but requirements.txt pins {pinned_version}")
    if base_version != pinned_version:
        problems.append(
            f"Dockerfile is FROM apache/airflow:{base_version}, requirements.txt pins {pinned_version}"
        )
    return problems


def _host_service(compose: dict, url: str, image_prefix: str, label: str) -> list[str]:
    host = urlsplit(url).hostname
    service = compose.get("services", {}).get(host)
    if service is None:
        return [f"{label} points at {host!r}, which is not a service"]
    if not str(service.get("image", "")).startswith(image_prefix):
        return [f"{label} points at {host!r}, which is not a {image_prefix.rstrip(':')} service"]
    return []


def executor_problems(compose: dict) -> list[str]:
    """Airflow services not on Celery, or whose broker, backends and API URL point nowhere."""
    services = compose.get("services", {})
    problems = []
    for name in AIRFLOW_SERVICES:
        if name not in services:
            continue
        env = environment(services[name])
        if env.get("AIRFLOW__CORE__EXECUTOR") != "CeleryExecutor":
            problems.append(f"{name} executor is {env.get('AIRFLOW__CORE__EXECUTOR')!r}, not CeleryExecutor")
        broker = env.get("AIRFLOW__CELERY__BROKER_URL", "")
        if not broker.startswith("redis://"):
            problems.append(f"{name} broker {broker!r} is not redis://")
        problems += _host_service(compose, broker, "redis:", f"{name} broker")
        for key in ("AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
            problems += _host_service(compose, env.get(key, ""), "postgres:", f"{name} {key}")
        api = urlsplit(env.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", ""))
        if api.hostname != "airflow-apiserver" or api.port != 8080 or not api.path.startswith("/execution"):
            problems.append(f"{name} execution API URL does not point at airflow-apiserver:8080/execution/")
    return problems


def environment_problems(compose: dict) -> list[str]:
    """Airflow services missing Shelfwise settings, or with an ERP URL off the erp_staging conn."""
    services = compose.get("services", {})
    problems = []
    for name in AIRFLOW_SERVICES:
        if name not in services:
            continue
        service = services[name]
        env = environment(service)
        problems += [f"{name} does not set {key}" for key in REQUIRED_ENV
                     if not (env.get(key) or env.get(f"{key}_CMD"))]
        conn, url = (
            urlsplit(env.get("AIRFLOW_CONN_ERP_STAGING", "")),
            urlsplit(env.get("ERP_STAGING_URL", "")),
        )
        if conn.scheme not in ("postgres", "postgresql"):
            problems.append(f"{name} AIRFLOW_CONN_ERP_STAGING is not a postgresql:// URI")
        if (conn.hostname, conn.port, conn.path, conn.username) != (
            url.hostname,
            url.port,
            url.path,
            url.username,
        ):
            problems.append(
                f"{name} ERP_STAGING_URL and AIRFLOW_CONN_ERP_STAGING point at different databases"
            )
        problems += _host_service(
            compose, env.get("AIRFLOW_CONN_ERP_STAGING", ""), "postgres:", f"{name} erp_staging"
        )
        targets = [PurePosixPath(target) for _, _, target in mounts(service)]
        data_root = env.get("SHELFWISE_DATA_ROOT", "")
        if (
            data_root
            and "://" not in data_root
            and not any(PurePosixPath(data_root).is_relative_to(t) for t in targets)
        ):
            problems.append(
                f"{name} SHELFWISE_DATA_ROOT {data_root} is not on a volume; data would die with the container"
            )
        python_path = [PurePosixPath(p) for p in env.get("PYTHONPATH", "").split(":") if p]
        for folder in PROJECT_MOUNTS:
            if not any(target.parent in python_path and target.name == folder for target in targets):
                problems.append(f"{name} does not mount {folder}/ directly under a PYTHONPATH entry")
    return problems


def dependency_problems(compose: dict) -> list[str]:
    """depends_on entries naming undefined services, or waiting on health nobody checks."""
    services = compose.get("services", {})
    problems = []
    for name, service in services.items():
        for dependency, condition in depends_on(service).items():
            if dependency not in services:
                problems.append(f"{name} depends on undefined service {dependency!r}")
            elif condition == "service_healthy" and "healthcheck" not in services[dependency]:
                problems.append(f"{name} waits for {dependency} to be healthy, but it has no healthcheck")
    return problems


def healthcheck_problems(compose: dict, names: tuple[str, ...] = ("postgres", "redis")) -> list[str]:
    """Named services without a healthcheck test."""
    services = compose.get("services", {})
    return [
        f"{name} has no healthcheck"
        for name in names
        if not (services.get(name, {}).get("healthcheck") or {}).get("test")
    ]


def undocumented_variables(raw: dict, documented: set[str], *, required_only: bool) -> list[str]:
    """Variables the compose file reads that .env.example does not list.

    Args:
        raw: the parsed, uninterpolated compose file.
        documented: names assigned in .env.example.
        required_only: only report variables used without a default.
    """
    missing = set()
    for value in walk_strings(raw):
        for name, op in references(value):
            has_default = op in (":-", "-", ":+", "+")
            if name not in documented and not (required_only and has_default):
                missing.add(name)
    return sorted(missing)


def _published(port: object) -> tuple[str | None, str]:
    """``(host ip, spec)`` of a ``ports:`` entry; host ip ``None`` when the entry publishes on every interface."""
    if isinstance(port, dict):
        return port.get("host_ip"), repr(port)
    spec = str(port)
    parts = spec.rsplit(":", 2)
    return (parts[0] if len(parts) == 3 else None), spec


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_problems(compose: dict) -> list[str]:
    """Ports published beyond this machine when nothing says otherwise (resolved with the defaults)."""
    problems = []
    for name, service in compose.get("services", {}).items():
        for port in service.get("ports") or []:
            host, spec = _published(port)
            if host is None:
                problems.append(f"{name} publishes {spec} on every interface; bind it to 127.0.0.1")
            elif not _loopback(host):
                problems.append(f"{name} publishes {spec} on {host} by default; bind it to 127.0.0.1")
    return problems


def secret_default_problems(raw: dict) -> list[str]:
    """Credentials with a default value in the file, and key settings written as literals."""
    problems = []
    for value in walk_strings(raw):
        for name, op in references(value):
            if _SECRET_NAME.search(name) and op in (":-", "-"):
                problems.append(f"${{{name}}} has a default: a credential must be required (${{{name}:?...}})")
    for name, service in raw.get("services", {}).items():
        env = environment(service)
        for key in KEY_SETTINGS:
            if env.get(key):
                problems.append(f"{name} sets {key} itself; read it from the file airflow-init makes ({key}_CMD)")
    return problems


def init_problems(compose: dict, root: Path) -> list[str]:
    """airflow-init not refusing unsafe settings, not migrating the ERP as its owner, or not first."""
    services = compose.get("services", {})
    init = services.get("airflow-init")
    if init is None:
        return ["service 'airflow-init' is missing"]
    script = " ".join(command_words(init))
    steps = ["python /opt/airflow/docker/airflow_init.py", "airflow db migrate", "python -m include.erp migrate"]
    problems = [f"airflow-init does not run `{step}`" for step in steps if step not in script]
    if not problems and not (script.index(steps[0]) < script.index(steps[1]) < script.index(steps[2])):
        problems.append(f"airflow-init must run {' then '.join(steps)}")
    if "set -e" not in script:
        problems.append("airflow-init goes on after a failed step (no `set -e`)")
    mounted = {target: source for _, source, target in mounts(init)}
    if mounted.get("/opt/airflow/docker/airflow_init.py") != "./docker/airflow_init.py" or not INIT_SCRIPT.exists():
        problems.append("airflow-init does not mount ./docker/airflow_init.py at /opt/airflow/docker/airflow_init.py")
    env = environment(init)
    owner = urlsplit(env.get(OWNER_URL, ""))
    if (owner.hostname, owner.path) != ("postgres", "/erp_staging") or owner.username in (None, APP_ROLE):
        problems.append(f"airflow-init {OWNER_URL} is not the owner of postgres:5432/erp_staging")
    for key in ("SHELFWISE_APP_DB_PASSWORD", "SHELFWISE_READER_DB_PASSWORD", "SHELFWISE_DEMO"):
        if key not in env:
            problems.append(f"airflow-init does not pass {key}")
    for name in AIRFLOW_COMMANDS:
        if name in services and depends_on(services[name]).get("airflow-init") != "service_completed_successfully":
            problems.append(f"{name} may start before airflow-init completed successfully")
    return problems


def role_problems(compose: dict) -> list[str]:
    """Airflow services reaching the ERP as anything but the application role, or holding the owner's URL."""
    services = compose.get("services", {})
    problems = []
    for name in AIRFLOW_SERVICES:
        if name not in services:
            continue
        env = environment(services[name])
        for key in ("AIRFLOW_CONN_ERP_STAGING", "ERP_STAGING_URL"):
            url = urlsplit(env.get(key, ""))
            if url.username != APP_ROLE or url.password != "<SHELFWISE_APP_DB_PASSWORD>":
                problems.append(f"{name} {key} connects as {url.username!r}, not {APP_ROLE} with "
                                "SHELFWISE_APP_DB_PASSWORD")
        if name != "airflow-init" and OWNER_URL in env:
            problems.append(f"{name} holds {OWNER_URL}: only airflow-init may act as the owner")
    return problems


def ui_user_problems(compose: dict, ui_users: dict[str, tuple[str, str, bool]]) -> list[str]:
    """Airflow services not reading the users list airflow-init writes, or airflow-init not given a password.

    Args:
        compose: the resolved compose file.
        ui_users: ``docker/airflow_init.py``'s ``UI_USERS`` (user -> password variable, role, required).
    """
    services = compose.get("services", {})
    problems = []
    for name in AIRFLOW_SERVICES:
        if name not in services:
            continue
        env = environment(services[name])
        config = PurePosixPath(env.get("AIRFLOW_CONFIG", "/"))
        if "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS" in env:
            problems.append(f"{name} lists the UI users itself; airflow-init writes them to AIRFLOW_CONFIG")
        if not any(kind == "volume" and config.parent == PurePosixPath(target)
                   for kind, _, target in mounts(services[name])):
            problems.append(f"{name} AIRFLOW_CONFIG {config} is not on a volume airflow-init writes")
    init = environment(services.get("airflow-init", {}))
    problems += [f"airflow-init does not pass {variable}" for variable, _, _ in ui_users.values()
                 if variable not in init]
    return problems


def load_init_script():
    """docker/airflow_init.py as a module."""
    spec = importlib.util.spec_from_file_location("airflow_init", INIT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose(raw_compose: dict) -> dict:
    """The compose file as docker compose would run it with no .env: every default applied."""
    return resolve(raw_compose, env={})


# --- checks on the real files --------------------------------------------------------------------


def test_required_services_run_expected_commands(compose: dict) -> None:
    assert service_problems(compose) == []


def test_bind_mounts_exist_in_repo_and_volumes_are_declared(compose: dict) -> None:
    assert mount_problems(compose, ROOT) == []


def test_airflow_services_share_image_pinned_to_requirements(compose: dict) -> None:
    pinned = airflow_pin((ROOT / "requirements.txt").read_text())
    base = dockerfile_airflow_version(DOCKERFILE.read_text())
    assert image_problems(compose, pinned, base) == []


def test_dockerfile_installs_the_lock_with_the_same_airflow(compose: dict) -> None:
    dockerfile = DOCKERFILE.read_text()
    lock = ROOT / "requirements.lock"
    assert re.search(r"^COPY\b.*\brequirements\.lock\b", dockerfile, re.MULTILINE)
    assert re.search(r"^RUN\b.*pip install\b.*requirements\.lock", dockerfile, re.MULTILINE)
    assert airflow_pin(lock.read_text()) == airflow_pin((ROOT / "requirements.txt").read_text())
    build = compose["services"]["airflow-scheduler"]["build"]
    assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE


def test_celery_executor_with_defined_broker_and_backends(compose: dict) -> None:
    assert executor_problems(compose) == []


def test_airflow_services_get_erp_connection_data_root_and_pythonpath(compose: dict) -> None:
    assert environment_problems(compose) == []


def test_depends_on_names_defined_services(compose: dict) -> None:
    assert dependency_problems(compose) == []


def test_postgres_and_redis_have_healthchecks(compose: dict) -> None:
    assert healthcheck_problems(compose) == []


def test_variables_without_default_are_in_env_example(raw_compose: dict) -> None:
    documented = env_example_names(ENV_EXAMPLE.read_text())
    assert undocumented_variables(raw_compose, documented, required_only=True) == []


def test_every_compose_variable_is_documented_in_env_example(raw_compose: dict) -> None:
    documented = env_example_names(ENV_EXAMPLE.read_text())
    assert undocumented_variables(raw_compose, documented, required_only=False) == []


def test_init_sql_creates_the_erp_staging_database(compose: dict) -> None:
    conn = environment(compose["services"]["airflow-scheduler"])["AIRFLOW_CONN_ERP_STAGING"]
    database = urlsplit(conn).path.lstrip("/")
    assert database in created_databases(INIT_SQL.read_text())
    postgres_mounts = {source: target for _, source, target in mounts(compose["services"]["postgres"])}
    target = postgres_mounts.get("./docker/postgres-init.sql", "")
    assert target.startswith("/docker-entrypoint-initdb.d/"), postgres_mounts


def test_published_ports_stay_on_this_machine_by_default(compose: dict, raw_compose: dict) -> None:
    assert exposure_problems(compose) == []
    api_ports = [str(p) for p in raw_compose["services"]["airflow-apiserver"]["ports"]]
    assert all(p.startswith("${SHELFWISE_BIND:-127.0.0.1}:") for p in api_ports), api_ports
    published = resolve(raw_compose, env={"SHELFWISE_BIND": "0.0.0.0"})
    assert exposure_problems(published) == [
        "airflow-apiserver publishes 0.0.0.0:8080:8080 on 0.0.0.0 by default; bind it to 127.0.0.1"]


def test_no_credential_has_a_default(raw_compose: dict) -> None:
    assert secret_default_problems(raw_compose) == []


def test_init_refuses_unsafe_settings_and_migrates_the_erp_first(compose: dict) -> None:
    assert init_problems(compose, ROOT) == []


def test_airflow_services_reach_the_erp_as_the_application_role(compose: dict) -> None:
    assert role_problems(compose) == []


def _strong(**overrides: str) -> dict[str, str]:
    env = {name: f"{name.lower()[:8]}-Xq7v9kPz2LmN" for name in load_init_script().PASSWORDS}
    return {**env, "POSTGRES_USER": "airflow", **overrides}


def test_init_script_refuses_default_passwords_unless_demo(tmp_path: Path, capsys) -> None:
    init = load_init_script()
    env = _strong(POSTGRES_PASSWORD="airflow", SHELFWISE_ADMIN_PASSWORD="admin", SHELFWISE_PLANNER_PASSWORD="short1",
                  SHELFWISE_APP_DB_PASSWORD="with@sign-and-long", SHELFWISE_READER_DB_PASSWORD="")
    assert init.password_problems(env) == [
        "POSTGRES_PASSWORD is a well-known default password",
        "SHELFWISE_APP_DB_PASSWORD goes into connection URLs: use letters, digits and - . _ ~ only",
        "SHELFWISE_READER_DB_PASSWORD is not set",
        "SHELFWISE_ADMIN_PASSWORD is a well-known default password",
        "SHELFWISE_PLANNER_PASSWORD is shorter than 12 characters",
    ]
    passwords, config = tmp_path / "auth" / "passwords.json", tmp_path / "auth" / "airflow.cfg"
    base = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords), "AIRFLOW_CONFIG": str(config)}
    assert init.main({**env, **base}) == 1
    refusal = capsys.readouterr().err
    assert "refusing to start Shelfwise with unsafe settings" in refusal and "SHELFWISE_DEMO=1" in refusal
    assert "airflow@" not in refusal and "with@sign" not in refusal  # names variables, never values
    assert not passwords.exists()
    init.SECRETS_DIR = tmp_path / "secrets"
    assert init.main({**env, **base, "SHELFWISE_DEMO": "1"}) == 0
    assert "WARNING demo mode" in capsys.readouterr().err
    assert json.loads(passwords.read_text()) == {"admin": "admin", "planner": "short1"}
    assert passwords.stat().st_mode & 0o777 == 0o600
    assert "simple_auth_manager_users = admin:admin,planner:user\n" in config.read_text()
    assert config.stat().st_mode & 0o777 == 0o600
    assert init.password_problems(_strong()) == []


def _users_listed(config: Path) -> list[str]:
    line = next(x for x in config.read_text().splitlines() if x.startswith("simple_auth_manager_users"))
    return line.split("=", 1)[1].strip().split(",")


def test_optional_ui_users_exist_only_with_a_strong_password(tmp_path: Path, capsys) -> None:
    init = load_init_script()
    init.SECRETS_DIR = tmp_path / "secrets"
    passwords, config = tmp_path / "auth" / "passwords.json", tmp_path / "auth" / "airflow.cfg"
    base = {**_strong(), "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW_CONFIG": str(config)}
    # Blank (as in .env.example) or unset: no user at all, and nothing to refuse.
    assert init.password_problems({**base, "SHELFWISE_MANAGER_PASSWORD": ""}) == []
    assert init.main({**base, "SHELFWISE_MANAGER_PASSWORD": ""}) == 0
    assert _users_listed(config) == ["admin:admin", "planner:user"]
    assert set(json.loads(passwords.read_text())) == {"admin", "planner"}
    # A set one passes the same checks as the required ones.
    weak = {**base, "SHELFWISE_LP_PASSWORD": "lp", "SHELFWISE_FINANCE_PASSWORD": "finance-26",
            "SHELFWISE_OPS_PASSWORD": "Finance"}
    assert init.password_problems(weak) == [
        "SHELFWISE_LP_PASSWORD is a well-known default password",
        "SHELFWISE_FINANCE_PASSWORD is shorter than 12 characters",
        "SHELFWISE_OPS_PASSWORD is a well-known default password",
    ]
    assert init.main(weak) == 1 and "finance-26" not in capsys.readouterr().err
    strong = {**base, "SHELFWISE_LP_PASSWORD": "lp-Xq7v9kPz2LmN", "SHELFWISE_OPS_PASSWORD": "ops-Xq7v9kPz2LmN"}
    assert init.main(strong) == 0
    assert _users_listed(config) == ["admin:admin", "planner:user", "lp:viewer", "ops:viewer"]
    assert json.loads(passwords.read_text())["lp"] == "lp-Xq7v9kPz2LmN"
    assert "lp-Xq7v9kPz2LmN" not in capsys.readouterr().out  # names users and roles, never passwords


def test_compose_ui_users_are_the_demo_users_with_their_roles(compose: dict) -> None:
    spec = importlib.util.spec_from_file_location("shelfwise_runner", ROOT / "scripts" / "shelfwise.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    users = load_init_script().UI_USERS
    assert {user: role for user, (_, role, _) in users.items()} == {
        user: role for user, (_, role) in runner.DEMO_USERS.items() if user != "analyst"}
    assert ui_user_problems(compose, users) == []
    documented = env_example_names(ENV_EXAMPLE.read_text())
    assert {variable for variable, _, _ in users.values()} <= documented


def test_ui_user_problems_flags_a_listed_user_and_a_missing_password(compose: dict) -> None:
    users = load_init_script().UI_USERS
    broken = copy.deepcopy(compose)
    broken["services"]["airflow-worker"]["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "admin:admin"
    broken["services"]["airflow-triggerer"]["environment"]["AIRFLOW_CONFIG"] = "/opt/airflow/airflow.cfg"
    del broken["services"]["airflow-init"]["environment"]["SHELFWISE_OPS_PASSWORD"]
    assert ui_user_problems(broken, users) == [
        "airflow-triggerer AIRFLOW_CONFIG /opt/airflow/airflow.cfg is not on a volume airflow-init writes",
        "airflow-worker lists the UI users itself; airflow-init writes them to AIRFLOW_CONFIG",
        "airflow-init does not pass SHELFWISE_OPS_PASSWORD",
    ]


def test_init_script_makes_private_keys_once(tmp_path: Path) -> None:
    init = load_init_script()
    made = init.ensure_keys(tmp_path / "secrets", owner=None)
    assert made == ["fernet_key", "api_secret_key", "jwt_secret"]
    values = {p.name: p.read_text() for p in (tmp_path / "secrets").iterdir()}
    assert len(set(values.values())) == 3 and all(len(v.strip()) >= 40 for v in values.values())
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "secrets").iterdir()} == {0o600}
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700
    assert init.ensure_keys(tmp_path / "secrets", owner=None) == []
    assert {p.name: p.read_text() for p in (tmp_path / "secrets").iterdir()} == values


def test_key_commands_read_the_files_init_makes(compose: dict) -> None:
    env = environment(compose["services"]["airflow-scheduler"])
    files = {key: env[f"{key}_CMD"].removeprefix("cat /opt/airflow/secrets/") for key in KEY_SETTINGS}
    assert set(files.values()) == set(load_init_script().KEYS)
    targets = [t for _, _, t in mounts(compose["services"]["airflow-scheduler"])]
    assert "/opt/airflow/secrets" in targets


# --- the helpers catch what they are meant to catch ----------------------------------------------


def test_interpolate_follows_compose_rules() -> None:
    env = {"SET": "value", "EMPTY": ""}
    assert interpolate("${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d}", env) == "value d d "
    assert interpolate("${UNSET:?needed} $$HOSTNAME ${SET:+alt}", env) == "<UNSET> $HOSTNAME alt"
    assert references("${A} $B ${C:-x} ${D:?y} $${E}") == [("A", None), ("B", None), ("C", ":-"), ("D", ":?")]
    with pytest.raises(ValueError, match=r"invalid variable reference \$\{1BAD\}"):
        references("${1BAD}")


def test_service_problems_flags_missing_service_and_wrong_command(compose: dict) -> None:
    broken = copy.deepcopy(compose)
    del broken["services"]["airflow-triggerer"]
    broken["services"]["airflow-worker"]["command"] = "worker"
    problems = service_problems(broken)
    assert "service 'airflow-triggerer' is missing" in problems
    assert "airflow-worker runs ['worker'], expected ['celery', 'worker']" in problems


def test_mount_problems_flags_missing_and_absolute_host_paths(compose: dict, tmp_path: Path) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["airflow-worker"]["volumes"] += [
        "./no_such_folder:/opt/airflow/x",
        "/home/me/x:/x",
        "cache:/c",
    ]
    problems = mount_problems(broken, ROOT)
    assert "airflow-worker mounts ./no_such_folder, which is not in the repository" in problems
    assert "airflow-worker mounts machine-specific host path /home/me/x" in problems
    assert "airflow-worker uses volume 'cache', not declared under top-level volumes" in problems
    assert any("./dags, which is not in the repository" in p for p in mount_problems(compose, tmp_path))


def test_image_problems_flags_mixed_images_and_version_drift(compose: dict, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pyyaml==6.0.2\napache-airflow[celery]==3.3.1 ; python_version >= '3.10'\n")
    pinned = airflow_pin(requirements.read_text())
    assert pinned == "3.3.1"
    problems = image_problems(compose, pinned, "3.3.2")
    assert any("requirements.txt pins 3.3.1" in p and p.startswith("image ") for p in problems)
    assert "Dockerfile is FROM apache/airflow:3.3.2, requirements.txt pins 3.3.1" in problems
    broken = copy.deepcopy(compose)
    broken["services"]["airflow-worker"]["image"] = "apache/airflow:3.3.2"
    version = broken["services"]["airflow-scheduler"]["image"].rpartition(":")[2]
    assert any(
        p.startswith("Airflow services use different images")
        for p in image_problems(broken, version, version)
    )
    assert dockerfile_airflow_version("FROM apache/airflow:3.3.2-python3.11\n") == "3.3.2"


def test_executor_problems_flags_local_executor_and_unknown_broker(compose: dict) -> None:
    broken = copy.deepcopy(compose)
    env = broken["services"]["airflow-scheduler"]["environment"]
    env["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
    env["AIRFLOW__CELERY__BROKER_URL"] = "redis://cache:6379/0"
    problems = executor_problems(broken)
    assert "airflow-scheduler executor is 'LocalExecutor', not CeleryExecutor" in problems
    assert "airflow-scheduler broker points at 'cache', which is not a service" in problems


def test_environment_problems_flags_missing_erp_conn_and_ephemeral_data_root(compose: dict) -> None:
    broken = copy.deepcopy(compose)
    del broken["services"]["airflow-worker"]["environment"]["AIRFLOW_CONN_ERP_STAGING"]
    broken["services"]["airflow-triggerer"]["environment"]["SHELFWISE_DATA_ROOT"] = "/tmp/shelfwise"
    broken["services"]["airflow-triggerer"]["environment"]["ERP_STAGING_URL"] = (
        "postgresql://u:p@postgres:5432/other"
    )
    problems = environment_problems(broken)
    assert "airflow-worker does not set AIRFLOW_CONN_ERP_STAGING" in problems
    assert any(
        p.startswith("airflow-triggerer SHELFWISE_DATA_ROOT /tmp/shelfwise is not on a volume")
        for p in problems
    )
    assert (
        "airflow-triggerer ERP_STAGING_URL and AIRFLOW_CONN_ERP_STAGING point at different databases"
        in problems
    )


def test_dependency_and_healthcheck_problems_flag_broken_copies(compose: dict) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["airflow-worker"]["depends_on"]["airflow-webserver"] = {"condition": "service_started"}
    del broken["services"]["redis"]["healthcheck"]
    assert "airflow-worker depends on undefined service 'airflow-webserver'" in dependency_problems(broken)
    assert any("waits for redis to be healthy" in p for p in dependency_problems(broken))
    assert healthcheck_problems(broken) == ["redis has no healthcheck"]


def test_undocumented_variables_flags_required_variable(raw_compose: dict) -> None:
    broken = copy.deepcopy(raw_compose)
    broken["services"]["postgres"]["environment"]["EXTRA"] = "${NEW_SECRET:?set it} ${OPTIONAL:-x}"
    documented = env_example_names(ENV_EXAMPLE.read_text())
    assert undocumented_variables(broken, documented, required_only=True) == ["NEW_SECRET"]
    assert undocumented_variables(broken, documented, required_only=False) == ["NEW_SECRET", "OPTIONAL"]
    assert env_example_names("# COMMENTED=1\nexport A=1\nB=\n") == {"A", "B"}


def test_created_databases_ignores_comments() -> None:
    sql = "-- CREATE DATABASE erp_staging;\nCREATE DATABASE other; -- not erp_staging\n"
    assert created_databases(sql) == ["other"]
    assert created_databases('create database "erp_staging" owner airflow;') == ["erp_staging"]


def test_safety_helpers_flag_broken_copies(compose: dict, raw_compose: dict) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["redis"]["ports"] = ["6379:6379"]
    assert exposure_problems(broken) == ["redis publishes 6379:6379 on every interface; bind it to 127.0.0.1"]
    raw = copy.deepcopy(raw_compose)
    raw["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] = "${POSTGRES_PASSWORD:-airflow}"
    raw["services"]["airflow-worker"]["environment"]["AIRFLOW__CORE__FERNET_KEY"] = "committed"
    assert secret_default_problems(raw) == [
        "${POSTGRES_PASSWORD} has a default: a credential must be required (${POSTGRES_PASSWORD:?...})",
        "airflow-worker sets AIRFLOW__CORE__FERNET_KEY itself; read it from the file airflow-init makes "
        "(AIRFLOW__CORE__FERNET_KEY_CMD)"]
    broken = copy.deepcopy(compose)
    init = broken["services"]["airflow-init"]
    init["command"] = ["-c", "airflow db migrate && python /opt/airflow/docker/airflow_init.py"]
    del init["environment"][OWNER_URL]
    broken["services"]["airflow-triggerer"]["depends_on"].pop("airflow-init")
    problems = init_problems(broken, ROOT)
    assert "airflow-init does not run `python -m include.erp migrate`" in problems
    assert "airflow-init goes on after a failed step (no `set -e`)" in problems
    assert f"airflow-init {OWNER_URL} is not the owner of postgres:5432/erp_staging" in problems
    assert "airflow-triggerer may start before airflow-init completed successfully" in problems
    broken = copy.deepcopy(compose)
    env = broken["services"]["airflow-worker"]["environment"]
    env["ERP_STAGING_URL"] = "postgresql://airflow:<POSTGRES_PASSWORD>@postgres:5432/erp_staging"
    env[OWNER_URL] = "postgresql://airflow:<POSTGRES_PASSWORD>@postgres:5432/erp_staging"
    assert role_problems(broken) == [
        "airflow-worker ERP_STAGING_URL connects as 'airflow', not shelfwise_app with SHELFWISE_APP_DB_PASSWORD",
        f"airflow-worker holds {OWNER_URL}: only airflow-init may act as the owner"]
