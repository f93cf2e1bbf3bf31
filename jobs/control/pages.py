"""Pages of a list, newest first: the `{creationTime}_{id}` cursor and AEP's list document."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from jobs.spec import RequestRejected

Key = TypeVar("Key", int, str)


@dataclass(frozen=True)
class CursorFormat(Generic[Key]):
    """`{creationTime}_{id}`: where a page ends, and so where the next one starts."""

    key_pattern: str
    key_type: Callable[[str], Key]

    def encode(self, creation_time: int, key: Key) -> str:
        return f"{creation_time}_{key}"

    def decode(self, text: str) -> tuple[int, Key]:
        """(creationTime, id); a malformed cursor is a rejected request naming `offset`."""
        if not re.fullmatch(rf"[0-9]{{1,19}}_{self.key_pattern}", text):
            raise RequestRejected.at("offset", f"offset {text!r} is not a cursor of the form {{creationTime}}_{{id}}")
        created, _, key = text.partition("_")
        return int(created), self.key_type(key)


JOB_CURSOR = CursorFormat(r"[0-9]{1,19}", int)
SEGMENT_CURSOR = CursorFormat(r"[0-9a-f-]{1,64}", str)
SCHEDULE_CURSOR = CursorFormat(r"[0-9a-f]{1,64}", str)


def page_document(items_key: str, items: Sequence[dict[str, Any]], sort_field: str, offset: str | None,
                  next_link: str | None) -> dict[str, Any]:
    """A list answer shaped as the seeds': the items, `page`, and `link.next` when there is more."""
    return {
        items_key: list(items),
        "page": {"sortField": sort_field, "sort": "desc", "pageOffset": offset, "pageSize": len(items)},
        "link": {"next": next_link} if next_link else {},
    }


def cursor_page(items_key: str, found: Sequence[Any], limit: int, offset: str | None, cursor: CursorFormat[Any],
                path: str) -> dict[str, Any]:
    """A page document of records with `creation_time` and `id`, fetched newest first with one more than
    `limit`, so that the extra one says whether `link.next` (at `path`) is there."""
    page, more = found[:limit], len(found) > limit
    next_link = None
    if more and page:
        next_link = f"{path}?limit={limit}&offset={cursor.encode(page[-1].creation_time, page[-1].id)}"
    return page_document(items_key, [item.to_dict() for item in page], "creationTime", offset, next_link)
