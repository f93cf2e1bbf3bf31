"""The two bases of every model: `Strict` for what users send, `Record` for what we store and answer."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from jobs.spec.errors import RequestRejected, json_object, problems_from


class Model(BaseModel):
    """Changed only through `updated`, which validates the copy (pydantic's model_copy does not)."""

    def updated(self, **changes: Any) -> Self:
        """A copy with `changes` (by field name), validated as a new model would be."""
        fields = type(self).model_fields
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no fields {', '.join(unknown)}")
        values = {**dict(self), **changes}
        return type(self).model_validate({fields[name].alias or name: value for name, value in values.items()})


class Strict(Model):
    """A request: camelCase keys, unknown keys rejected, no silent coercion of "true" into true."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        frozen=True,
    )

    @classmethod
    def parse(cls, body: str | bytes | dict[str, Any]) -> Self:
        """Validate a request body, raising RequestRejected with every problem."""
        try:
            return cls.model_validate(body if isinstance(body, dict) else json_object(body))
        except ValidationError as err:
            raise RequestRejected(problems_from(err, cls)) from None


class Record(Model):
    """What we write ourselves: camelCase on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class SchemaRef(Strict):
    """The XDM schema a job's destination or a segment's profiles follow, by name."""

    name: str = Field(min_length=1)
