"""The shapes of the API's answers, for its OpenAPI document."""

from __future__ import annotations

from pydantic import BaseModel

from jobs.spec import JobRecord


class PageInfo(BaseModel):
    sortField: str
    sort: str
    pageOffset: str | None
    pageSize: int


class PageLink(BaseModel):
    next: str | None = None


class JobPage(BaseModel):
    records: list[JobRecord]
    page: PageInfo
    link: PageLink


class CancelAnswer(BaseModel):
    status: bool
    message: str
