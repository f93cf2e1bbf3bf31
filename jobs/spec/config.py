"""The deployment's configuration (docs/reference/configuration.md): conf/export.toml, validated by pydantic.

`lakeRoot` is relative to the config file; every other path is relative to
`lakeRoot`. Absolute paths and URIs (s3://, abfss://, file:...) are kept as they are.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from jobs.spec.errors import ConfigError, UsageError, json_path
from jobs.spec.privacy import AttributeLabel, ConsentPolicy, Forbidden, UsagePolicy, forbidden_attributes
from jobs.spec.webhooks import EventType

# How an embedded session gets Delta's jars (jobs.engine.jars).
JarMode = Literal["folder", "packages", "provided"]
LogFormat = Literal["text", "json"]


class ConfModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, frozen=True
    )


class Dataset(ConfModel):
    id: str = Field(min_length=1)
    path: str = Field(min_length=1)
    # The tenant whose data it is (docs/reference/configuration.md#tenancy-of-the-data): only that
    # org's jobs, schedules and segments in these sandboxes read or write it. None: defaultOrg,
    # [defaultSandbox].
    org: str | None = Field(default=None, min_length=1)
    sandboxes: list[str] | None = Field(default=None, min_length=1)
    # A profile dataset that segment evaluation writes its tenant's changed memberships to (also
    # `segmentationDataset`, the one of a deployment with one tenant).
    segmentation: bool = False


class DestinationDataset(Dataset):
    schema_name: str = Field(min_length=1)
    # Only profiles whose merged consent meets this policy are exported here (docs/reference/privacy.md).
    consent: ConsentPolicy | None = None
    # What the dataset is used for: usage policies deny labelled attributes to these actions.
    marketing_actions: list[str] = Field(default_factory=list)
    # append: every job appends its batches. mirror: the table holds the job's current audience, one row
    # per profile key (per segment and key for per-segment jobs), kept by one MERGE per job, with
    # Delta's change data feed on (docs/reference/mirrors.md).
    mode: Literal["append", "mirror"] = "append"
    # A mirror whose MERGE marks the rows it updates or deletes in deletion vectors instead of rewriting
    # their files: a small change costs its own rows, not the mirror's. Off by default: a reader needs
    # the deletionVectors table feature (Spark, delta-rs's QueryBuilder; not delta-rs's to_pyarrow_table).
    deletion_vectors: bool = False

    @model_validator(mode="after")
    def _mirror_only(self) -> DestinationDataset:
        if self.deletion_vectors and self.mode != "mirror":
            raise ValueError('deletionVectors applies to mode = "mirror" only')
        return self


class MergePolicy(ConfModel):
    id: str = Field(min_length=1)
    version: int = Field(ge=1)
    attribute_merge: Literal["timestampOrdered", "dataSetPrecedence"]
    order: list[str] = Field(default_factory=list)
    # none: a profile is a primary identity; pdg: a connected component of the identity graph.
    identity_graph: Literal["none", "pdg"] = "none"
    default: bool = False

    @model_validator(mode="after")
    def _order(self) -> MergePolicy:
        if self.attribute_merge == "dataSetPrecedence" and not self.order:
            raise ValueError("dataSetPrecedence needs an order of profile dataset ids")
        if self.attribute_merge == "timestampOrdered" and self.order:
            raise ValueError("order applies only to dataSetPrecedence")
        return self


class Tenant(ConfModel):
    org: str = Field(min_length=1)
    sandboxes: list[str] = Field(min_length=1)
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Webhook(ConfModel):
    """An endpoint of one tenant that receives the events it names (docs/reference/webhooks.md)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(min_length=1)
    org: str = Field(min_length=1)
    sandboxes: list[str] = Field(min_length=1)
    events: list[EventType] = Field(min_length=1)
    # job.rejectedRecords: sent when a job's rejected fragments over rejected and exported exceed this.
    rejected_ratio_above: float = Field(default=0.0, ge=0, le=1)
    # The signing secret is the value of this environment variable, never in the file (as tenants'
    # tokens are only their hashes): the file can be shared and committed.
    secret_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 (reading it checks it)
        except ValueError:
            raise ValueError(f"{url!r} has no valid port") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return url

    @field_validator("events")
    @classmethod
    def _once(cls, events: list[EventType]) -> list[EventType]:
        if len(set(events)) != len(events):
            raise ValueError("lists an event twice")
        return events

    def secret(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The signing secret, from the environment (None when the variable is unset or empty)."""
        return (os.environ if environ is None else environ).get(self.secret_env) or None


class WebhookDelivery(ConfModel):
    """How deliveries are sent (`[webhookDelivery]`): attempts, backoff and timeouts."""

    # Attempts per delivery, the first included; then it is FAILED.
    attempts: int = Field(default=8, ge=1, le=50)
    # The wait after the first failed attempt, doubled after each next one, at most maxBackoffSeconds.
    first_backoff_seconds: float = Field(default=10.0, gt=0)
    max_backoff_seconds: float = Field(default=900.0, gt=0)
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)  # per attempt: connecting and the answer
    poll_seconds: float = Field(default=1.0, gt=0)  # how often a deliverer looks for due deliveries
    # A one-shot `export-jobs run` sends its job's deliveries for at most this long before it exits;
    # what is left stays PENDING for the next deliverer (serve, run-pending).
    exit_wait_seconds: float = Field(default=2.0, ge=0)

    @model_validator(mode="after")
    def _backoffs(self) -> WebhookDelivery:
        if self.max_backoff_seconds < self.first_backoff_seconds:
            raise ValueError("maxBackoffSeconds must be at least firstBackoffSeconds")
        return self


class Limits(ConfModel):
    """Caps on what one request or one tenant may ask for (`[limits]`), so that no tenant can make a
    record, a parse or a scheduler pass arbitrarily expensive for everyone."""

    segments_per_job: int = Field(default=500, ge=1)
    fields_per_job: int = Field(default=1_000, ge=1)
    pql_length: int = Field(default=32_768, ge=1)  # characters of a segment definition's expression
    pql_nesting: int = Field(default=50, ge=1, le=200)  # parentheses and brackets
    definitions_per_tenant: int = Field(default=2_000, ge=1)
    schedules_per_tenant: int = Field(default=200, ge=1)
    active_jobs_per_tenant: int = Field(default=500, ge=1)  # NEW, PROCESSING or CANCELLING


class Config(ConfModel):
    lake_root: str = "."
    job_table: str = "system/export_jobs"
    schedule_table: str = "system/export_schedules"
    segment_table: str = "system/segment_definitions"
    # Privacy requests (docs/reference/privacy.md#privacy-requests): their jobs, the suppression list of
    # erased identities (salted hashes), and the folder access documents are written to.
    privacy_table: str = "system/privacy_jobs"
    suppression_table: str = "system/privacy_suppressions"
    privacy_documents: str = "system/privacy_documents"
    # Webhooks' delivery log (docs/reference/webhooks.md#the-delivery-log).
    webhook_table: str = "system/webhook_deliveries"
    # The suppression list's salt; default: one derived from the deployment. Set a secret of your own.
    suppression_salt: str | None = Field(default=None, min_length=16)
    # Data files an erasure removed are vacuumed this many hours later (0: at once); until then, time
    # travel to the versions before the erasure still reads the person.
    privacy_retention_hours: int = Field(default=24, ge=0)
    # The most privacy jobs of a tenant a runner runs as one batch: one scan and one DELETE per dataset.
    privacy_batch_size: int = Field(default=1000, ge=1)
    # A declared profile dataset that segment evaluation appends changed memberships to.
    segmentation_dataset: str | None = None
    # Previews and estimates (docs/reference/segments.md#previews-and-estimates): where they are kept, how
    # many profile keys a preview samples at most, and how many matching profiles of the sample it keeps.
    preview_table: str = "system/segment_previews"
    preview_sample_keys: int = Field(default=100_000, ge=1)
    preview_profiles: int = Field(default=100, ge=1, le=10_000)
    # Under identityGraph pdg: a component with more identities is not a profile (excluded and
    # counted), and the graph must converge in this many rounds of large-star and small-star.
    max_identities_per_graph: int = Field(default=50, ge=1)
    max_graph_iterations: int = Field(default=30, ge=1)
    default_org: str = Field(min_length=1)
    default_sandbox: str = Field(min_length=1)
    # Names this deployment in Delta's idempotent-write ids; defaults to one derived from jobTable.
    deployment_id: str | None = None
    # A runner renews its lease on a running job this often (a third of it); a job whose
    # lease ran out is taken back: FAILED, or NEW again up to lostJobRetries times.
    lease_seconds: float = Field(default=30.0, gt=0)
    # On SIGTERM, `run-pending` and `serve` claim no more jobs and give the running one this long to
    # finish; then they exit, and its lease runs out, so that another runner takes it back.
    shutdown_grace_seconds: float = Field(default=25.0, ge=0)
    lost_job_retries: int = Field(default=0, ge=0)
    # The job and schedule tables keep the files of their versions of the last this many hours
    # (for their readers, and time travel); older files are deleted between jobs.
    table_retention_hours: int = Field(default=168, ge=1)
    spark: dict[str, str | int | float | bool] = Field(default_factory=dict)
    delta_jars: JarMode = "folder"
    profile_datasets: list[Dataset] = Field(min_length=1)
    event_datasets: list[Dataset] = Field(default_factory=list)
    destination_datasets: list[DestinationDataset] = Field(min_length=1)
    merge_policies: list[MergePolicy] = Field(min_length=1)
    tenants: list[Tenant] = Field(default_factory=list)
    # The SHA-256 of the operators' scrape token for GET /metrics (docs/reference/metrics.md): no tenant's
    # token reads it, as its numbers cover every tenant. None: /metrics answers 404.
    metrics_token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    # Logs on stderr as lines of text, or as one JSON object per line for a log collector.
    log_format: LogFormat = "text"
    limits: Limits = Field(default_factory=Limits)
    webhooks: list[Webhook] = Field(default_factory=list)
    webhook_delivery: WebhookDelivery = Field(default_factory=WebhookDelivery)
    attribute_labels: list[AttributeLabel] = Field(default_factory=list)
    usage_policies: list[UsagePolicy] = Field(default_factory=list)
    # How the identity ids in a record's examples (rejectedRecords, excludedGraphs) are shown: as
    # `sha256:` and the first 16 hex digits of their SHA-256 (namespaces stay readable), or as they are.
    example_ids: Literal["hashed", "plain"] = "hashed"
    # Set by load_config: the folder the config file is in, and the settings that an
    # EXPORT_JOBS_* variable gave (config key -> variable).
    base_dir: str = "."
    origins: dict[str, str] = Field(default_factory=dict)

    @field_validator("table_retention_hours")
    @classmethod
    def _retention(cls, hours: int, info: ValidationInfo) -> int:
        # A runner may read the job table at any moment of its lease.
        lease = info.data.get("lease_seconds")
        if lease is not None and hours * 3600 <= lease:
            raise ValueError(f"must be longer than leaseSeconds ({lease:g} s)")
        return hours

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        for kind, items in (
            ("profileDatasets", self.profile_datasets),
            ("eventDatasets", self.event_datasets),
            ("destinationDatasets", self.destination_datasets),
        ):
            # An id names one dataset per tenant: two orgs may each have their own "audience".
            keys = [(d.id, d.org or self.default_org, s) for d in items for s in d.sandboxes or [self.default_sandbox]]
            dupes = sorted({i for i, org, s in keys if keys.count((i, org, s)) > 1})
            if dupes:
                raise ValueError(f"{kind} declares {', '.join(dupes)} more than once for one org and sandbox")
        profile_ids = {d.id for d in self.profile_datasets}
        for policy in self.merge_policies:
            unknown = [d for d in policy.order if d not in profile_ids]
            if unknown:
                raise ValueError(
                    f"merge policy {policy.id!r} orders unknown profile datasets {unknown}"
                )
        if self.segmentation_dataset is not None and self.segmentation_dataset not in profile_ids:
            raise ValueError(f"segmentationDataset {self.segmentation_dataset!r} is not a declared profile dataset")
        by_tenant: dict[tuple[str, str], str] = {}
        for dataset in self.profile_datasets:
            if not self.is_segmentation(dataset.id):
                continue
            ordering = [p.id for p in self.merge_policies if dataset.id in p.order]
            if ordering:
                raise ValueError(
                    f"segmentation dataset {dataset.id!r} must not be in a merge policy's order "
                    f"({', '.join(ordering)}): its memberships rank above every dataset's, by ingest time"
                )
            sandboxes = dataset.sandboxes or [self.default_sandbox]
            if len(sandboxes) != 1:
                raise ValueError(f"segmentation dataset {dataset.id!r} must belong to one sandbox: memberships "
                                 "are evaluated per sandbox")
            tenant = (dataset.org or self.default_org, sandboxes[0])
            if tenant in by_tenant:
                raise ValueError(f"org {tenant[0]!r}, sandbox {tenant[1]!r} has two segmentation datasets: "
                                 f"{by_tenant[tenant]!r} and {dataset.id!r}")
            by_tenant[tenant] = dataset.id
        for label in self.attribute_labels:
            if label.path.split(".")[0] in ("identityMap", "segmentMembership", "_ingestTime"):
                raise ValueError(f"attributeLabels: {label.path} is in every export (an export is keyed by its "
                                 "identities and memberships): label attributes only")
        policy_ids = [p.id for p in self.usage_policies]
        if len(set(policy_ids)) != len(policy_ids):
            raise ValueError("usagePolicies declares one id twice")
        refs = [(p.id, p.version) for p in self.merge_policies]
        if len(set(refs)) != len(refs):
            raise ValueError("mergePolicies declares one id and version twice")
        if sum(p.default for p in self.merge_policies) != 1:
            raise ValueError("exactly one merge policy must have default = true")
        self._check_webhooks()
        return self

    def _check_webhooks(self) -> None:
        names = [w.name for w in self.webhooks]
        if len(set(names)) != len(names):
            raise ValueError("webhooks declares one name twice")
        # The tenants of the HTTP API, and the default org and sandbox the CLI acts for.
        known = {(self.default_org, self.default_sandbox)} | {(t.org, s) for t in self.tenants for s in t.sandboxes}
        for i, hook in enumerate(self.webhooks):
            unknown = [s for s in hook.sandboxes if (hook.org, s) not in known]
            if unknown:
                tenants = ", ".join(f"{o}/{s}" for o, s in sorted(known))
                raise ValueError(f"webhooks[{i}] ({hook.name}): org {hook.org!r} with sandboxes {unknown} is not a "
                                 f"tenant of this deployment (it has {tenants})")

    # -- paths

    def resolve(self, path: str) -> str:
        """A dataset path from the config as an absolute path or URI."""
        if "://" in path or path.startswith("file:"):
            return path
        if Path(path).is_absolute():
            return path
        root = self.lake_root
        if "://" in root:
            return f"{root.rstrip('/')}/{path}"
        return str((Path(self.base_dir) / root / path).resolve())

    @property
    def job_table_path(self) -> str:
        return self.resolve(self.job_table)

    @property
    def schedule_table_path(self) -> str:
        return self.resolve(self.schedule_table)

    @property
    def segment_table_path(self) -> str:
        return self.resolve(self.segment_table)

    @property
    def preview_table_path(self) -> str:
        return self.resolve(self.preview_table)

    @property
    def privacy_table_path(self) -> str:
        return self.resolve(self.privacy_table)

    @property
    def suppression_table_path(self) -> str:
        return self.resolve(self.suppression_table)

    @property
    def privacy_documents_path(self) -> str:
        return self.resolve(self.privacy_documents)

    @property
    def webhook_table_path(self) -> str:
        return self.resolve(self.webhook_table)

    def webhooks_for(self, org: str, sandbox: str, event_type: str) -> list[Webhook]:
        """The endpoints of the tenant that subscribe to the event type."""
        return [w for w in self.webhooks if w.org == org and sandbox in w.sandboxes and event_type in w.events]

    def webhook(self, name: str) -> Webhook | None:
        return next((w for w in self.webhooks if w.name == name), None)

    @property
    def salt(self) -> str:
        return self.suppression_salt or f"export-jobs-{self.deployment}"

    @property
    def deployment(self) -> str:
        if self.deployment_id:
            return self.deployment_id
        return hashlib.sha256(self.job_table_path.encode()).hexdigest()[:12]

    # -- tenancy of the data

    def is_segmentation(self, dataset_id: str) -> bool:
        dataset = self.profile_dataset(dataset_id)
        return dataset is not None and (dataset.segmentation or dataset_id == self.segmentation_dataset)

    def owns(self, dataset: Dataset, org: str, sandbox: str) -> bool:
        """Whether the dataset is the org's data in that sandbox."""
        return (dataset.org or self.default_org) == org and sandbox in (dataset.sandboxes or [self.default_sandbox])

    def for_tenant(self, org: str, sandbox: str) -> Config:
        """The config as one tenant's jobs, schedules and segments see it: its own datasets only (its
        segmentation dataset as `segmentationDataset`), and merge policies ordering only those. Another
        tenant's dataset is then exactly a dataset that does not exist."""
        profiles = [d for d in self.profile_datasets if self.owns(d, org, sandbox)]
        ids = {d.id for d in profiles}
        segmentation = next((d.id for d in profiles if self.is_segmentation(d.id)), None)
        return self.model_copy(update={
            "profile_datasets": profiles,
            "event_datasets": [d for d in self.event_datasets if self.owns(d, org, sandbox)],
            "destination_datasets": [d for d in self.destination_datasets if self.owns(d, org, sandbox)],
            "merge_policies": [p.model_copy(update={"order": [i for i in p.order if i in ids]})
                               for p in self.merge_policies],
            "segmentation_dataset": segmentation,
        })

    # -- look-ups

    def acting_tenant(self, org: str | None, sandbox: str | None) -> tuple[str, str]:
        """The org and sandbox a command or the Python API acts for (the defaults unless given); one the
        deployment does not have (not its default, a tenant's or a dataset owner's) is a UsageError."""
        chosen = (org or self.default_org, sandbox or self.default_sandbox)
        known = {(self.default_org, self.default_sandbox)}
        known |= {(t.org, s) for t in self.tenants for s in t.sandboxes}
        datasets = [*self.profile_datasets, *self.event_datasets, *self.destination_datasets]
        known |= {(d.org or self.default_org, s) for d in datasets for s in d.sandboxes or [self.default_sandbox]}
        if chosen not in known:
            listed = ", ".join(f"{o}/{s}" for o, s in sorted(known))
            raise UsageError(f"org {chosen[0]!r} with sandbox {chosen[1]!r} is not a tenant of this deployment "
                             f"(it has {listed})")
        return chosen

    def default_policy(self) -> MergePolicy:
        return next(p for p in self.merge_policies if p.default)

    def policy(self, policy_id: str, version: int) -> MergePolicy | None:
        return next(
            (p for p in self.merge_policies if p.id == policy_id and p.version == version), None
        )

    def latest_policy(self, policy_id: str) -> MergePolicy | None:
        """The highest version of a policy id (segment definitions name ids only)."""
        versions = [p for p in self.merge_policies if p.id == policy_id]
        return max(versions, key=lambda p: p.version) if versions else None

    def profile_dataset(self, dataset_id: str) -> Dataset | None:
        return next((d for d in self.profile_datasets if d.id == dataset_id), None)

    def destination(self, dataset_id: str) -> DestinationDataset | None:
        return next((d for d in self.destination_datasets if d.id == dataset_id), None)

    def forbidden(self, destination: DestinationDataset, schema: Literal["profile", "event"]) -> list[Forbidden]:
        """The labelled attributes of the profile or event schema that `destination` may not receive."""
        return forbidden_attributes(self.attribute_labels, self.usage_policies, destination.marketing_actions,
                                    schema)

    def spark_conf(self) -> tuple[str, dict[str, str]]:
        """The master and the other spark.* settings of the [spark] table."""
        conf = {k: _spark_value(v) for k, v in self.spark.items() if k != "master"}
        conf = {k if k.startswith("spark.") else f"spark.{k}": v for k, v in conf.items()}
        return str(self.spark.get("master", "local[*]")), conf


def _spark_value(value: str | int | float | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# Settings a container platform sets without editing the file: variable -> (config key, meaning).
ENVIRONMENT_OVERRIDES: dict[str, str] = {
    "EXPORT_JOBS_LAKE_ROOT": "lakeRoot",
    "EXPORT_JOBS_SPARK_MASTER": "spark.master",
    "EXPORT_JOBS_DELTA_JARS": "deltaJars",
    "EXPORT_JOBS_LOG_FORMAT": "logFormat",
}
CONFIG_VARIABLE = "EXPORT_JOBS_CONF"
LOCAL_CONFIG = Path("conf") / "export.toml"


def user_config() -> Path:
    """The user's config file: $XDG_CONFIG_HOME/export-jobs/export.toml (~/.config by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "export-jobs" / "export.toml"


def find_config(explicit: str | None, environ: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """The config file and what chose it: --conf, then EXPORT_JOBS_CONF, then ./conf/export.toml
    (the current folder's), then the user's config file."""
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit), "--conf"
    if env.get(CONFIG_VARIABLE):
        return Path(env[CONFIG_VARIABLE]), CONFIG_VARIABLE
    if LOCAL_CONFIG.is_file() or not user_config().is_file():
        return LOCAL_CONFIG, "./conf/export.toml"
    return user_config(), "the user's config file"


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """The config file, validated, with the EXPORT_JOBS_* overrides of `environ` (the process's
    environment by default); `origins` says which setting came from which variable."""
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist (pass --conf PATH or set {CONFIG_VARIABLE})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {file} is not valid TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {file} cannot be read: {err}") from None
    raw["baseDir"] = str(file.resolve().parent)
    raw["origins"] = _apply_overrides(raw, os.environ if environ is None else environ)
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        lines = [
            f"{json_path(tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in err.errors(include_url=False)
        ]
        raise ConfigError(f"config file {file} is invalid: " + "; ".join(lines)) from None


def _apply_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    origins = {}
    for variable, key in ENVIRONMENT_OVERRIDES.items():
        value = environ.get(variable)
        if not value:
            continue
        if key == "lakeRoot" and "://" not in value and not value.startswith("file:"):
            value = str(Path(value).resolve())  # relative to where the command runs, not to the file
        if key.startswith("spark."):
            raw["spark"] = {**raw.get("spark", {}), key.removeprefix("spark."): value}
        else:
            raw[key] = value
        origins[key] = variable
    return origins


# A setting whose name has one of these words is shown masked (`config show`).
SECRET_WORDS = ("secret", "password", "token", "credential", "key", "sas", "salt")
MASK = "***"


def shown_settings(config: Config, file: Path, chosen_by: str) -> dict[str, Any]:
    """`export-jobs config show`: the config file and what chose it, and every setting's effective
    value and where it came from (the file, an EXPORT_JOBS_* variable, or the default), secrets masked."""
    values = config.model_dump(by_alias=True, exclude={"base_dir", "origins"})
    fields = type(config).model_fields
    written = {fields[f].alias or f for f in config.model_fields_set}
    settings: dict[str, Any] = {}
    for key, value in values.items():
        origin = config.origins.get(key) or ("file" if key in written else "default")
        if key == "spark":
            value = {k: {"value": MASK if _secret(k) else v,
                         "from": config.origins.get(f"spark.{k}") or "file"} for k, v in value.items()}
        elif key == "tenants":
            value = [dict(t, tokenSha256=MASK) for t in value]
        elif key == "metricsTokenSha256" and value is not None:
            value = MASK
        elif key == "webhooks":
            value = [dict(w, url=_shown_url(w["url"])) for w in value]
        settings[key] = {"value": value, "from": origin}
    settings["lakeRoot"]["resolved"] = config.resolve(".") if "://" not in config.lake_root else config.lake_root
    return {"file": str(file.resolve()), "chosenBy": chosen_by, "settings": settings}


def _shown_url(url: str) -> str:
    """A webhook's URL without what may be a credential: user info, and the path and query (many
    services put the endpoint's own secret there)."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return origin + (f"/{MASK}" if parts.path.strip("/") or parts.query else "")


def _secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)
