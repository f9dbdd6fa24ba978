"""The job store: the database, one dialect class per database, the schema and the operations.

Nothing here imports the web side or the CLI.
"""
