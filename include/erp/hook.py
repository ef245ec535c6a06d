"""``ErpStagingHook``: the one place that knows how to reach the ERP staging database."""

from __future__ import annotations

from airflow.sdk.bases.hook import BaseHook

from include.erp import db


class ErpStagingHook(BaseHook):
    """Connection to the ERP staging PostgreSQL database.

    Args:
        erp_staging_conn_id: Airflow connection id; ``erp_staging`` by default. When the connection
            is not defined, ``ERP_STAGING_URL`` (or the embedded default) is used.
    """

    conn_name_attr = "erp_staging_conn_id"
    default_conn_name = "erp_staging"
    conn_type = "postgres"
    hook_name = "Shelfwise ERP staging"

    def __init__(self, erp_staging_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.erp_staging_conn_id = erp_staging_conn_id

    def get_uri(self) -> str:
        """The connection as a ``postgresql://`` URL."""
        try:
            conn = self.get_connection(self.erp_staging_conn_id)
        except Exception:  # noqa: BLE001 - an undefined connection falls back to the environment
            return db.erp_url()
        uri = conn.get_uri()
        return uri.replace("postgres://", "postgresql://", 1)

    def get_conn(self):
        """Open a psycopg connection.

        The schema is migrated once per run by the ``prepare_erp_staging`` task, not here: this is
        called by every task and by the approval gate's trigger on each poll.
        """
        return db.connect(self.get_uri())
