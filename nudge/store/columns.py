"""Column types and field helpers that every table shares: timestamps are timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Column, DateTime, TypeDecorator
from sqlmodel import Field, SQLModel

M = TypeVar("M", bound=SQLModel)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware timestamps on every backend (SQLite hands them back naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Store UTC on every backend (SQLite would drop an offset; a naive value means UTC)."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def timestamp(**column: Any) -> Any:
    """A timestamp that defaults to now; ``column`` goes to its ``Column`` (``nullable``, ``index``)."""
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), **column))


def optional_timestamp() -> Any:
    """A nullable timestamp with no default (when something happened, if it has)."""
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class RowBuilder(Generic[M]):
    """Builds new (transient) rows of one table as SQLAlchemy's loader builds fetched ones: the
    values go straight into the instance's dict, with the model's defaults for those not given.

    A table model's own constructor sets each field through SQLAlchemy's instrumentation and
    pydantic's ``__setattr__`` (150 µs a message row, against 8 µs here), more than anything else
    in a broadcast's batch. The row it builds is the same: ``session.add`` inserts it, and an
    assignment to it afterwards is tracked as usual. No validation runs, as with the constructor
    of a table model. Not for models with relationships or mutable defaults (refused), nor for
    ``ext.mutable`` columns or init event listeners (none here)."""

    def __init__(self, model: type[M]) -> None:
        self._model = model
        self._factories: dict[str, Any] = {}
        self._defaults: dict[str, Any] = {}
        self._fields = frozenset(model.model_fields)
        if model.__sqlmodel_relationships__:
            raise TypeError(f"{model.__name__} has relationships, which RowBuilder does not set up")
        for name, field in model.model_fields.items():
            if field.default_factory is not None:
                self._factories[name] = field.default_factory
            elif not field.is_required():
                if isinstance(field.default, (list, dict, set)):
                    # The constructor copies such a default for each row; here every row would share it.
                    raise TypeError(f"{model.__name__}.{name} has a mutable default: use a default_factory")
                self._defaults[name] = field.default
        self._manager = model._sa_class_manager  # type: ignore[attr-defined]

    def __call__(self, **values: Any) -> M:
        row: M = self._manager.new_instance()
        given = set(values)
        if not given <= self._fields:
            raise TypeError(f"{self._model.__name__} has no field {sorted(given - self._fields)[0]!r}")
        state = self._defaults | values
        for name, factory in self._factories.items():
            if name not in given:
                state[name] = factory()
        row.__dict__.update(state)
        object.__setattr__(row, "__pydantic_fields_set__", given)
        return row
