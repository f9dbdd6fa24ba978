"""The job store: the database, one dialect class per database, the schema and the operations.

- ``target.py``: which database a URL names, and its engine, made on first use for SQLite;
- ``database.py``: short transactions, the schema checked once per process (``layout.py``) and
  created where something is missing (``creation.py``);
- ``dialects/``: one class per database, owning every statement and behaviour that differs;
- ``schema.py``: the tables; ``records.py``: what the store takes and returns;
- ``operations.py``: the :class:`~reqrunner.store.operations.Store` a queue, a runner and a
  job context use (enqueue, the claim cycle, leases, what is due), with the writing half of a
  cycle in ``outcomes.py``;
- ``manage.py``: stats, lists and repairs; ``meta.py``: site-wide values and named leases;
- ``schedules.py``: the periodic jobs' slots, each taken once across all processes.

Nothing here imports the web side or the CLI.
"""
