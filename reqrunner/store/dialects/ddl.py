"""The statements that create reqrunner's tables and indexes on one database.

``schema.py`` declares each database's table options and partial-index predicates in the
``info`` of its tables and indexes, not as SQLAlchemy's ``<database>_<option>`` keywords (which
load every named database's SQLAlchemy dialect on import); a dialect applies its own here.
SQLAlchemy is imported only when a table or an index is to be created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import sqlalchemy as sa

    from ..target import Target

__all__ = ["SchemaStatements"]


class SchemaStatements:
    """``CREATE TABLE`` and ``CREATE INDEX`` for a dialect (a base of ``Dialect``)."""

    name: ClassVar[str]
    target: Target

    def create_table(self, table: sa.Table) -> str:
        """``CREATE TABLE`` for ``table``, with the options ``schema.py`` gives this database
        (``table.info["options"][name]``, rendered by :meth:`table_options`)."""
        from sqlalchemy.schema import CreateTable  # noqa: PLC0415 (only creating the schema)

        options = table.info.get("options", {}).get(self.name, {})
        sql = str(CreateTable(table).compile(dialect=self.target.engine.dialect)).rstrip()
        return sql + self.table_options(table, options)

    def table_options(self, table: sa.Table, options: dict[str, Any]) -> str:
        """What follows this database's ``CREATE TABLE (…)`` for ``options`` (nothing by
        default)."""
        return ""

    def create_index(self, index: sa.Index) -> str:
        """``CREATE INDEX`` for ``index``, partial where ``schema.py`` gives this database a
        predicate (``index.info["where"][name]``), over other columns where it gives this
        database columns of its own (``index.info["columns"][name]``)."""
        from sqlalchemy.schema import CreateIndex  # noqa: PLC0415

        columns = index.info.get("columns", {}).get(self.name)
        if columns:
            unique = "UNIQUE " if index.unique else ""
            table = index.table.name if index.table is not None else ""
            sql = f"CREATE {unique}INDEX {index.name} ON {table} ({', '.join(columns)})"
        else:
            sql = str(CreateIndex(index).compile(dialect=self.target.engine.dialect)).rstrip()
        where = index.info.get("where", {}).get(self.name)
        return f"{sql} WHERE {where}" if where else sql

    def drop_index(self, name: str, table: str) -> str:
        """``DROP INDEX`` of the index ``name`` on ``table``."""
        return f"DROP INDEX {name}"
