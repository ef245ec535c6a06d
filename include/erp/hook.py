"""``ErpStagingHook``: the one place that knows how to reach the ERP staging database from Airflow."""

from __future__ import annotations

from airflow.sdk.bases.hook import BaseHook

from include.erp import db


class ErpStagingHook(BaseHook):
    """Connection to the ERP staging PostgreSQL database.

    The database is the Airflow connection ``erp_staging_conn_id``, else ``ERP_STAGING_URL``; with
    neither, or with a connection that is not a PostgreSQL database, every call fails with an error that
    names the connection (:func:`include.erp.db.resolve_erp_url`). There is no default database.

    Every connection it opens has a connect, statement, lock and idle-in-transaction timeout
    (:data:`include.erp.db.LIMITS`: ``SHELFWISE_DB_*_TIMEOUT_S``, overridden by the connection's extras
    ``connect_timeout``, ``statement_timeout_s``, ``lock_timeout_s``, ``idle_in_transaction_timeout_s``), so a
    task facing a silent or locked database fails, and is retried per its ``retries``, instead of hanging.

    Args:
        erp_staging_conn_id: Airflow connection id; ``erp_staging`` by default.
    """

    conn_name_attr = "erp_staging_conn_id"
    default_conn_name = db.CONN_ID
    conn_type = "postgres"
    hook_name = "Shelfwise ERP staging"

    def __init__(self, erp_staging_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.erp_staging_conn_id = erp_staging_conn_id

    def get_uri(self) -> str:
        """The connection as a ``postgresql://`` URL.

        Raises:
            include.erp.db.ErpConnectionError: naming the connection when it is missing or broken.
        """
        return db.resolve_erp_url(self.erp_staging_conn_id, lookup=self.get_connection)

    def get_conn(self) -> db.ErpConnection:
        """Open a psycopg connection with every timeout set.

        The schema is migrated once per run by the ``prepare_erp_staging`` task, not here: this is
        called by every task and by the approval gate's trigger on each poll.

        Raises:
            include.erp.db.ErpConnectionError: the database is not configured or cannot be reached
                (:class:`include.erp.db.ErpTimeoutError` when it did not answer within the connect timeout).
        """
        return db.connect(self.get_uri())
