# The Airflow image for Shelfwise: the official Airflow 3.3.2 image plus the project's locked
# dependencies and code. docker-compose.yaml builds it as shelfwise-airflow:3.3.2; keep the tag,
# this FROM line and the apache-airflow pin in requirements.txt on the same version
# (tests/dags/test_compose.py checks it).
FROM apache/airflow:3.3.2-python3.11

USER airflow

# requirements.lock pins every package, apache-airflow included, so the image runs the same
# versions as CI. The base image already ships the Celery and Redis providers the worker needs.
# Installed before the code is copied so that code edits reuse this layer.
COPY --chown=airflow:0 requirements.lock /opt/airflow/requirements.lock
RUN pip install --no-cache-dir -r /opt/airflow/requirements.lock

ENV PYTHONPATH=/opt/airflow \
    SHELFWISE_DATA_ROOT=/opt/airflow/data/shelfwise \
    GX_ANALYTICS_ENABLED=false

COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 models/ /opt/airflow/models/
COPY --chown=airflow:0 data_contracts/ /opt/airflow/data_contracts/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 dags/ /opt/airflow/dags/

# Group 0 may write the data root, so the image also runs under an arbitrary UID (AIRFLOW_UID,
# OpenShift); a named volume mounted here starts with this ownership.
RUN mkdir -p /opt/airflow/data/shelfwise \
    && chmod -R g+rwX /opt/airflow/data
