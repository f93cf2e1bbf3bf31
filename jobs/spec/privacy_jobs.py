"""Privacy requests in the shape of AEP's Privacy Service (docs/reference/privacy.md#privacy-requests):
the body of `POST /privacy/jobs`, and the privacy job each of its users becomes.

A request names the caller's org in `companyContexts` and lists users, each with the
actions asked (`access`, `delete`) and the identities that are that person. Each user
is one privacy job; a runner resolves its identities (the whole identity component with
`expandIds`), writes an access document and/or erases the person from every dataset of
the tenant, and records a receipt per dataset.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator

from jobs.spec.jobs import JobError
from jobs.spec.models import Record, Strict

# AEP's regulation names (the Privacy Service's `regulation` values).
Regulation = Literal["gdpr", "ccpa", "cpra_usa", "lgpd_bra", "nzpa_nzl", "pdpa_tha", "apa_aus", "vcdpa_usa",
                     "cpa_usa", "ctdpa_usa", "ucpa_usa", "mhmda", "ql25", "pipeda"]
Action = Literal["access", "delete"]


class CompanyContext(Strict):
    namespace: Literal["imsOrgID"]
    value: str = Field(min_length=1)


class UserId(Strict):
    """One identity of the person: an identityMap namespace (matched without regard to case) and id."""

    namespace: str = Field(min_length=1)
    value: str = Field(min_length=1)
    type: Literal["standard", "unregistered"] = "standard"


class PrivacyUser(Strict):
    key: str = Field(min_length=1)  # the requester's own name for this person, echoed back
    action: list[Action] = Field(min_length=1)
    user_ids: list[UserId] = Field(alias="userIDs", min_length=1, max_length=100)

    @field_validator("action")
    @classmethod
    def _distinct(cls, value: list[Action]) -> list[Action]:
        if len(set(value)) != len(value):
            raise ValueError("lists an action twice")
        return value


class PrivacyRequest(Strict):
    """The body of POST /privacy/jobs."""

    company_contexts: list[CompanyContext] = Field(min_length=1)
    users: list[PrivacyUser] = Field(min_length=1, max_length=1000)
    regulation: Regulation
    expand_ids: bool = False
    # AEP's product list (e.g. ["ProfileService"]); accepted and kept, this product being the only one.
    include: list[str] | None = None

    def org(self) -> str | None:
        """The one org the request is for, or None if it names several."""
        orgs = {c.value for c in self.company_contexts}
        return orgs.pop() if len(orgs) == 1 else None


class PrivacyStatus(StrEnum):
    PROCESSING = "processing"
    COMPLETE = "complete"
    ERROR = "error"


DatasetKind = Literal["profile", "event", "destination", "suppression", "access"]


class Receipt(Record):
    """What a privacy job did to one dataset (or wrote): rows, the Delta version written, when."""

    dataset_id: str
    kind: DatasetKind
    rows_affected: int
    version: int | None = None
    time: int  # epoch ms
    path: str | None = None  # the access document


class PrivacyJob(Record):
    job_id: str
    ims_org_id: str
    sandbox_name: str
    request_id: str
    status: PrivacyStatus
    regulation: str
    expand_ids: bool
    user: PrivacyUser
    # The jobs a runner runs together (one scan and one DELETE per dataset for all of them): set when
    # first claimed, so that a retry runs the same batch and finds its DELETE commits.
    batch_id: str | None = None
    # The identities acted on: the user's, and with expandIds every identity of their component.
    identities: list[UserId] | None = None
    receipts: list[Receipt] = Field(default_factory=list)
    access_document: str | None = None  # where the runner wrote it
    download_url: str | None = Field(default=None, alias="downloadURL")  # where a client reads it (AEP's name)
    errors: list[JobError] = Field(default_factory=list)
    stage: str | None = None
    attempts: int = 0
    # Deletes: when the data files the deletes removed may be vacuumed, and whether they were.
    vacuum_after: int | None = None
    vacuumed: bool | None = None
    creation_time: int
    update_time: int

    @property
    def id(self) -> str:  # the list's cursor names jobs by it
        return self.job_id

    @property
    def deletes(self) -> bool:
        return "delete" in self.user.action

    def receipt(self, dataset_id: str, kind: str) -> Receipt | None:
        return next((r for r in self.receipts if r.dataset_id == dataset_id and r.kind == kind), None)


def identity_hash(salt: str, namespace: str, value: str) -> str:
    """The suppression list's form of an identity: salted SHA-256, never the value itself."""
    return hashlib.sha256(f"{salt}\x1f{namespace.lower()}\x1f{value}".encode()).hexdigest()
