"""Where the catalog lives, without SQLAlchemy: commands that only ask whether a catalog
exists (``vtrack status`` of an unknown id) answer without loading the database layer."""

from __future__ import annotations

from pathlib import Path

from workers.uris import parse_uri

# Hidden: the web app never serves hidden files from the output folder.
DEFAULT_CATALOG_FILE = ".vtrack-catalog.sqlite3"


def default_catalog_url(output_root: str, cwd: Path | None = None) -> str:
    """SQLite in a file inside the output folder, or in the working directory when the
    outputs are in a bucket."""
    parsed = parse_uri(output_root)
    folder = parsed.local_path() if parsed.is_local else (cwd or Path.cwd())
    return f"sqlite:///{(folder / DEFAULT_CATALOG_FILE).absolute()}"


def catalog_url(configured: str, output_root: str) -> str:
    """The catalog's URL: ``configured`` (``VTRACK_CATALOG_URL``) or the default beside the
    outputs."""
    return configured or default_catalog_url(output_root)


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL; None for any other database (or in-memory)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        return None
    return Path(url[len(prefix) :].split("?", 1)[0])


def catalog_absent(url: str) -> bool:
    """True when ``url`` is a SQLite file that does not exist yet: a catalog nothing has
    written to, which holds no job (other databases are asked)."""
    path = sqlite_file(url)
    return path is not None and not path.exists()
