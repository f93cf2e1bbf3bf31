"""The Delta Lake jars an embedded session loads: which ones, where they are, and fetching them.

The delta-spark wheel carries no jars. Delta publishes one jar per Spark line on Maven Central,
and the coordinates follow the installed pyspark and delta-spark, so they never disagree with
the Python side. A deployment says how its sessions get them (`deltaJars` in the config, or
EXPORT_JOBS_DELTA_JARS):

- `folder` (the default): from a folder that `export-jobs setup-jars` (or ./scripts/setup in a
  checkout) filled once, so that nothing is downloaded when a job runs;
- `packages`: Spark resolves the coordinates from Maven when the session starts
  (`spark.jars.packages`, cached in ~/.ivy2);
- `provided`: the cluster's classpath has Delta already (Databricks, an image with the jars).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from importlib.metadata import version
from pathlib import Path

from jobs.spec import JarMode

SCALA_VERSION = "2.13"
# Maven Central; EXPORT_JOBS_MAVEN_REPOSITORY names a mirror (or a file: folder in Maven's layout).
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"


def spark_line() -> str:
    """The installed pyspark's major.minor line (e.g. "4.2"): Delta publishes one jar per line."""
    return ".".join(version("pyspark").split(".")[:2])


def delta_coordinates() -> list[str]:
    """Maven coordinates of the jars matching the installed delta-spark wheel and pyspark line."""
    delta = version("delta-spark")
    return [f"io.delta:delta-spark_{spark_line()}_{SCALA_VERSION}:{delta}", f"io.delta:delta-storage:{delta}"]


def jar_file_name(coordinate: str) -> str:
    _, artifact, ver = coordinate.split(":")
    return f"{artifact}-{ver}.jar"


def jars_dir() -> Path:
    """Where the jars are kept: EXPORT_JOBS_JARS, else a checkout's .cache/jars (where
    ./scripts/setup puts them), else the user's cache folder."""
    configured = os.environ.get("EXPORT_JOBS_JARS")
    if configured:
        return Path(configured)
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "scripts" / "setup").is_file():
        return checkout / ".cache" / "jars"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "export-jobs" / "jars"


def delta_jars(folder: Path | None = None) -> list[Path]:
    """Paths of the Delta jars in the folder; raises with the fix when one is missing."""
    folder = folder or jars_dir()
    paths = []
    for coordinate in delta_coordinates():
        path = folder / jar_file_name(coordinate)
        if not path.is_file():
            raise RuntimeError(
                f"Delta jar {path} is missing: run `export-jobs setup-jars` (./scripts/setup in a checkout) "
                f"to fetch {coordinate}, point EXPORT_JOBS_JARS at a folder that has it, or set deltaJars "
                "to \"packages\" or \"provided\" (docs/reference/configuration.md)"
            )
        paths.append(path)
    return paths


def jar_settings(mode: JarMode) -> dict[str, str]:
    """The Spark settings that give an embedded session the Delta jars."""
    if mode == "folder":
        return {"spark.jars": ",".join(str(p) for p in delta_jars())}
    if mode == "packages":
        return {"spark.jars.packages": ",".join(delta_coordinates())}
    return {}


def artifact_url(repository: str, coordinate: str) -> str:
    group, artifact, ver = coordinate.split(":")
    return f"{repository.rstrip('/')}/{group.replace('.', '/')}/{artifact}/{ver}/{jar_file_name(coordinate)}"


def fetch_jars(folder: Path | None = None, repository: str | None = None) -> list[Path]:
    """Downloads the jars the folder lacks, each checked against the repository's SHA-1 and
    renamed into place only when whole, so that an interrupted fetch leaves no partial jar."""
    folder = folder or jars_dir()
    repository = repository or os.environ.get("EXPORT_JOBS_MAVEN_REPOSITORY") or MAVEN_CENTRAL
    folder.mkdir(parents=True, exist_ok=True)
    for coordinate in delta_coordinates():
        target = folder / jar_file_name(coordinate)
        if target.is_file():
            continue
        url = artifact_url(repository, coordinate)
        try:
            content = _download(url)
            expected = _download(url + ".sha1").decode().split()[0].lower()
        except OSError as err:
            raise RuntimeError(f"could not fetch {coordinate} from {url}: {err}") from None
        if hashlib.sha1(content).hexdigest() != expected:
            raise RuntimeError(f"{url} does not match its SHA-1 ({expected}): not saved")
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{target.name}.", delete=False) as partial:
            partial.write(content)
        Path(partial.name).chmod(0o644)  # a cluster's Spark user reads them too
        Path(partial.name).replace(target)
    return delta_jars(folder)


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:
        return bytes(response.read())
