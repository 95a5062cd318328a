"""SigV4 query presigning (storage/blobs/presign.py): AWS's worked example, then radosgw
answering the URLs S3BlobStore.presigned_get makes (bytes, the response-* overrides, a
tampered signature, a missing object)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from audiocache.storage.blobs.presign import presign_get
from audiocache.storage.blobs.s3 import S3BlobStore, S3Location


def test_the_example_of_aws_documentation_signs_the_same() -> None:
    """docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html: GET test.txt."""
    url = presign_get(
        endpoint="https://examplebucket.s3.amazonaws.com",
        path="/test.txt",
        region="us-east-1",
        access_key_id="AKIAIOSFODNN7EXAMPLE",
        secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        expires_seconds=86400,
        now=datetime(2013, 5, 24, tzinfo=UTC),
    )
    assert url == (
        "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )


def test_a_default_port_is_not_part_of_the_signed_host() -> None:
    signed = {
        endpoint: presign_get(
            endpoint=endpoint,
            path="/b/k",
            region="us-east-1",
            access_key_id="AK",
            secret_access_key="SK",
            expires_seconds=60,
            now=datetime(2024, 1, 1, tzinfo=UTC),
        )
        for endpoint in ("https://s3.example", "https://s3.example:443", "https://s3.example:8443")
    }
    assert signed["https://s3.example"] == signed["https://s3.example:443"]
    assert signed["https://s3.example:8443"].startswith("https://s3.example:8443/b/k?")
    assert signed["https://s3.example:8443"] != signed["https://s3.example"]


def test_expiry_is_bounded_as_sigv4_bounds_it() -> None:
    for seconds in (0, 7 * 86400 + 1):
        with pytest.raises(ValueError):
            presign_get(
                endpoint="https://s3.example",
                path="/b/k",
                region="us-east-1",
                access_key_id="AK",
                secret_access_key="SK",
                expires_seconds=seconds,
            )


async def test_radosgw_serves_a_presigned_get_with_the_signed_headers(
    s3_location: S3Location,
) -> None:
    store = S3BlobStore(s3_location)
    data = b"RIFF" + bytes(range(256)) * 64
    info = await store.put(data)
    filename = 'Grüße "front".wav'
    disposition = f"attachment; filename=\"Gr__e _front_.wav\"; filename*=UTF-8''{filename}"
    overrides = {
        "response-content-type": "audio/wav",
        "response-cache-control": "private, no-cache",
        "response-content-disposition": disposition,
    }
    url = store.presigned_get(info.sha256, 60, overrides)
    assert url.startswith(f"{s3_location.endpoint}/{s3_location.bucket}/{s3_location.prefix}/")
    async with httpx.AsyncClient(timeout=10) as s3:  # no credentials: the URL is one
        plain = await s3.get(store.presigned_get(info.sha256, 60))
        assert plain.status_code == 200 and plain.content == data
        assert plain.headers["content-type"] != "audio/wav"  # stored without a type

        r = await s3.get(url)
        assert r.status_code == 200 and r.content == data
        assert r.headers["content-type"] == "audio/wav"
        assert r.headers["cache-control"] == "private, no-cache"
        assert r.headers["content-disposition"] == disposition

        ranged = await s3.get(url, headers={"Range": "bytes=4-9"})
        assert ranged.status_code == 206 and ranged.content == data[4:10]

        # the signature covers the query: another content type, or another object, is refused
        forged = url.replace(
            "response-content-type=audio%2Fwav", "response-content-type=text%2Fhtml"
        )
        assert forged != url and (await s3.get(forged)).status_code == 403
        other = url.replace(info.sha256, "0" * 64)  # same signature, another object
        assert (await s3.get(other)).status_code == 403

        missing = store.presigned_get("0" * 64, 60)
        assert (await s3.get(missing)).status_code == 404
