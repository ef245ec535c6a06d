"""Who a person is to Shelfwise: their Airflow roles, asked of whichever auth manager Airflow runs.

The approvals page gets the user object from the API server; the batch review (a Required Action)
only records who answered (``responded_by_user``: id and name). Both end here, so a person has the
same Shelfwise roles wherever they decide, under the simple auth manager of the demo as under FAB or
Keycloak in production. The policy's ``roles:`` maps Airflow roles to Shelfwise roles.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def airflow_roles(user: Any) -> list[str]:
    """Role names of an Airflow user object, whatever the auth manager (simple: ``role``; FAB: ``roles``)."""
    role = getattr(user, "role", None)
    if isinstance(role, str):
        return [role]
    roles = getattr(user, "roles", None) or []
    return [getattr(r, "name", r) for r in roles if r]


def airflow_roles_of(user_id: str, user_name: str | None = None) -> list[str]:
    """Airflow roles of the user who answered a Required Action, from the configured auth manager.

    An auth manager that lists its users (the simple auth manager) is searched by id, then name; any
    other is asked to rebuild the user from its id (``deserialize_user``, as FAB does from its database).

    Args:
        user_id: ``responded_by_user["id"]``.
        user_name: ``responded_by_user["name"]``.

    Returns:
        The user's Airflow role names; empty (the user decides nothing) when the auth manager does not
        know them, with a warning naming the auth manager.
    """
    from airflow.api_fastapi.app import create_auth_manager, get_auth_manager_cls

    manager_cls = get_auth_manager_cls()
    list_users = getattr(manager_cls, "get_users", None)
    if callable(list_users):
        users = list(list_users())
        found = [u for u in users if str(u.get_id()) == str(user_id)] or \
                [u for u in users if user_name is not None and u.get_name() == user_name]
        if not found:
            log.warning("%s lists no user %r: that user decides nothing", manager_cls.__name__, user_id)
        return airflow_roles(found[0]) if found else []
    try:
        user = create_auth_manager().deserialize_user({"sub": str(user_id)})
    except Exception as exc:  # noqa: BLE001 - an unknown user decides nothing; the warning says why
        log.warning("%s could not resolve user %r (%s): that user decides nothing", manager_cls.__name__,
                    user_id, exc)
        return []
    return airflow_roles(user)
