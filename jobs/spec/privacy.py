"""Privacy rules of an export (docs/reference/privacy.md): consent policies and data-usage labels.

A consent policy says which merged profiles a destination (config) or a job (request) may receive:
those whose consent attribute holds an allowed value. Data-usage labels mark attributes; a usage
policy denies labels to a marketing action, and a destination is used for marketing actions, so a
labelled attribute may be forbidden there. Everything here is pure: the planner applies it to the
lake's schemas, the engine to the merged profiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator

from jobs.spec.models import Record, Strict
from jobs.spec.schema import fields_of, innermost_element, is_struct

DEFAULT_ALLOWED = ("y", "dy")  # XDM consent values: yes, and yes by default


def dot_path(value: str) -> tuple[str, ...]:
    """'a.b' -> ('a', 'b'); raises ValueError for anything that is not one dot path."""
    parts = tuple(value.split("."))
    if not value or any(not p or p != p.strip() or "," in p for p in parts):
        raise ValueError(f"{value!r} is not a dot path such as consents.marketing.email.val")
    return parts


class ConsentPolicy(Strict):
    """A destination's (config `consent`) or a job's (request `consent`) consent requirement."""

    field: str
    allowed_values: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWED), min_length=1)
    # What a profile with no value for the field gets: left out (the default), or exported.
    missing: Literal["exclude", "include"] = "exclude"

    @field_validator("field")
    @classmethod
    def _path(cls, value: str) -> str:
        dot_path(value)
        return value

    @property
    def path(self) -> tuple[str, ...]:
        return dot_path(self.field)

    def loosened_by(self, other: ConsentPolicy) -> list[tuple[str, str]]:
        """What `other`, on the same field, would allow that this policy does not: (field, why) pairs."""
        if other.path != self.path:
            return []
        found = []
        extra = [v for v in other.allowed_values if v not in self.allowed_values]
        if extra:
            found.append(("allowedValues", f"allows {', '.join(map(repr, extra))}, which the destination's "
                                           f"policy on {self.field} does not ({', '.join(self.allowed_values)})"))
        if other.missing == "include" and self.missing == "exclude":
            found.append(("missing", f"includes profiles without {self.field}, which the destination's policy "
                                     "excludes"))
        return found


class AppliedConsent(Record):
    """A consent policy a job applies, on its record; `source`: the destination's or the job's own."""

    source: Literal["destination", "job"]
    field: str
    allowed_values: list[str]
    missing: Literal["exclude", "include"]

    @classmethod
    def of(cls, policy: ConsentPolicy, source: Literal["destination", "job"]) -> AppliedConsent:
        return cls(source=source, field=policy.field, allowed_values=policy.allowed_values, missing=policy.missing)

    def policy(self) -> ConsentPolicy:
        return ConsentPolicy(field=self.field, allowedValues=self.allowed_values, missing=self.missing)


class AttributeLabel(Strict):
    """Data-usage labels on an attribute (and everything below it) of the profile or event schema."""

    path: str
    labels: list[str] = Field(min_length=1)
    schema_: Literal["profile", "event"] = Field(default="profile", alias="schema")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        dot_path(value)
        return value


class UsagePolicy(Strict):
    """A marketing action may not use data with any of these labels."""

    id: str = Field(min_length=1)
    marketing_action: str = Field(min_length=1)
    denied_labels: list[str] = Field(min_length=1)


@dataclass(frozen=True)
class Forbidden:
    """A labelled attribute that a destination may not receive, and the rule that says so."""

    path: tuple[str, ...]
    label: str
    action: str
    policy: str

    def reason(self, destination: str) -> str:
        return (f"{'.'.join(self.path)} is labelled {self.label}, and usage policy {self.policy!r} denies "
                f"{self.label} to marketing action {self.action!r} of destination {destination!r}")


def forbidden_attributes(labels: list[AttributeLabel], policies: list[UsagePolicy], actions: list[str],
                         schema: Literal["profile", "event"]) -> list[Forbidden]:
    """The labelled attributes of `schema` that a destination used for `actions` may not receive."""
    found = []
    for label in labels:
        if label.schema_ != schema:
            continue
        for policy in policies:
            if policy.marketing_action not in actions:
                continue
            found += [Forbidden(dot_path(label.path), name, policy.marketing_action, policy.id)
                      for name in label.labels if name in policy.denied_labels]
    return found


def _overlaps(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """One path is the other or lies below it."""
    return a[:len(b)] == b or b[:len(a)] == a


def label_conflicts(requested: list[tuple[str, ...]], forbidden: list[Forbidden]
                    ) -> list[tuple[tuple[str, ...], Forbidden]]:
    """Each requested path that is, or holds, or lies below a forbidden attribute, with the first rule."""
    conflicts = []
    for path in requested:
        rule = next((f for f in forbidden if _overlaps(path, f.path)), None)
        if rule is not None:
            conflicts.append((path, rule))
    return conflicts


def allowed_paths(attributes: dict[str, Any], forbidden: list[Forbidden]
                  ) -> tuple[list[tuple[str, ...]], list[Forbidden]]:
    """Every attribute path of `attributes` (a struct schema) that no forbidden attribute covers, as a
    job with no `fields` exports them; and the rules that left something out. Inside an array of
    structs only the forbidden element fields go."""
    omitted: list[Forbidden] = []

    def walk(t: Any, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
        covering = [f for f in forbidden if prefix and prefix[:len(f.path)] == f.path]
        if covering:
            omitted.extend(f for f in covering if f not in omitted)
            return []
        if not any(len(f.path) > len(prefix) and f.path[:len(prefix)] == prefix for f in forbidden):
            return [prefix] if prefix else [(name,) for name in fields_of(t)]
        element = innermost_element(t)
        if not is_struct(element):
            return [prefix]  # a label below a plain value names nothing that exists
        return [p for name, sub in fields_of(element).items() for p in walk(sub, prefix + (name,))]

    return walk(attributes, ()), omitted
