"""Source 2: FOCUS 1.0 parquet files (AWS Data Exports) under an S3 prefix, read with DuckDB.

The objects are downloaded with boto3 through the configured account (works offline and against
simulated AWS, where DuckDB's httpfs would need the extension fetched from the network) into a
local cache keyed by bucket, key and ETag, so a file is fetched once; DuckDB then answers the same
query as Cost Explorer over every file at once. A ``uri`` that is a local directory is read in place.

Columns used: ChargePeriodStart, BilledCost (unblended) or EffectiveCost (amortized), SubAccountId,
ServiceName, RegionId and Tags (a map; a key is looked up as given, then as ``user:KEY``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from gennaker.cloud.aws.session import AwsClient
from gennaker.errors import ConfigError
from gennaker.ops.costs.query import UNTAGGED, CostQuery, Period, tag_key
from gennaker.ops.costs.report import DailyAmount

COLUMN = {"account": "SubAccountId", "service": "ServiceName", "region": "RegionId"}
METRIC = {"unblended": "BilledCost", "amortized": "EffectiveCost"}


def cache_dir() -> Path:
    return Path(os.environ.get("GENNAKER_FOCUS_CACHE") or platformdirs.user_cache_path("gennaker") / "focus")


def split_uri(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError(f"costs.uri '{uri}' is not s3://bucket/prefix/")
    return parts.netloc, parts.path.lstrip("/")


def download(client: AwsClient, uri: str) -> tuple[list[Path], int]:
    """Every ``.parquet`` object under the prefix as a local file; and how many were fetched now."""
    bucket, prefix = split_uri(uri)
    root = cache_dir() / bucket
    files: list[Path] = []
    fetched = 0
    for obj in client.paginate("list_objects_v2", "Contents", Bucket=bucket, Prefix=prefix):
        key = obj["Key"]
        if not key.endswith(".parquet"):
            continue
        etag = str(obj.get("ETag", "")).strip('"')
        name = hashlib.sha256(f"{key}\0{etag}".encode()).hexdigest()[:32] + ".parquet"
        local = root / name
        if not local.exists():
            root.mkdir(parents=True, exist_ok=True)
            partial = local.with_suffix(".part")
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            with partial.open("wb") as fh:
                while chunk := body.read(1 << 20):
                    fh.write(chunk)
            partial.replace(local)  # a killed download never leaves a half file under the real name
            fetched += 1
        files.append(local)
    return files, fetched


def local_files(uri: str) -> list[Path]:
    root = Path(uri.removeprefix("file://"))
    if not root.is_dir():
        raise ConfigError(f"costs.uri '{uri}' is neither s3://bucket/prefix/ nor a directory")
    return sorted(root.rglob("*.parquet"))


def query_files(files: list[Path], query: CostQuery, period: Period, app_key: str, env_key: str) -> list[DailyAmount]:
    try:
        import duckdb  # imported here: only the FOCUS source needs it, and it takes a while to load
    except ImportError:
        raise ConfigError("costs: source focus needs DuckDB: pip install 'gennaker[costs]'") from None

    if not files:
        return []
    con = duckdb.connect()
    try:
        relation = "read_parquet(?, union_by_name = true)"
        described = con.execute(f"DESCRIBE SELECT * FROM {relation}", [[str(f) for f in files]]).fetchall()
        tag_type = {row[0]: row[1] for row in described}
        key = tag_key(query.group_by, app_key, env_key)

        def tag(param: str) -> str:
            if str(tag_type.get("Tags", "")).upper().startswith("MAP"):
                return f"coalesce(element_at(Tags, {param})[1], element_at(Tags, 'user:' || {param})[1])"
            # a JSON text column (some exports): '$."key"'
            return f"json_extract_string(Tags, '$.\"' || {param} || '\"')"

        group = tag("$key") if key else COLUMN[query.group_by]
        where = ["ChargePeriodStart >= $prev", "ChargePeriodStart < $end"]
        params: dict[str, object] = {
            "files": [str(f) for f in files],
            "prev": str(period.previous_start),
            "end": str(period.end),
        }
        if key:
            params["key"] = key
        if query.applications is not None:
            where.append(f"{tag('$app')} IN (SELECT unnest($apps))")
            params["app"] = app_key
            params["apps"] = sorted(query.applications) or [""]
        sql = (
            f"SELECT CAST(ChargePeriodStart AS DATE) AS day, coalesce(CAST({group} AS VARCHAR), '') AS grp, "
            f"sum({METRIC[query.metric]}) FROM read_parquet($files, union_by_name = true) "
            f"WHERE {' AND '.join(where)} GROUP BY ALL"
        )
        rows = con.execute(sql, params).fetchall()
    finally:
        con.close()
    return [(day, grp or UNTAGGED, float(amount or 0)) for day, grp, amount in rows]
