"""Stage adapters: one small function per DAG task, between Airflow and the domain packages.

Each adapter reads its inputs for the run's logical date, calls one owner function in its domain
package, writes its outputs for that date (replacing an earlier run's) and files a stage summary under
its task id (:mod:`include.stages.summaries`). Adapters take a :class:`include.runs.Run` and, where they
touch the ERP, a ``conn_factory``; they import no Airflow, so they run the same under a scheduler,
``airflow dags test`` or a plain test.
"""
