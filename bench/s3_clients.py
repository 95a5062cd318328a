"""obstore vs aiobotocore against a real radosgw on 127.0.0.1: which S3 client to use.

Starts its own single-node Ceph + radosgw (tests/realservers.py), then times, per client,
HEAD of a missing key, PUT of a 100 KB object, GET of it (whole), GET of its first byte, and
32 concurrent GETs. Prints medians in ms.

    .venv/bin/python bench/s3_clients.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import contextlib

from realservers import Radosgw, create_bucket


async def _median_ms(action, rounds: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        await action(i)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def bench_obstore(gw: Radosgw, bucket: str, data: bytes, rounds: int) -> dict[str, float]:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        bucket,
        endpoint=gw.endpoint,
        region=gw.region,
        access_key_id=gw.access_key,
        secret_access_key=gw.secret_key,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )

    async def head_missing(i: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            await obstore.head_async(store, f"missing/{i}")

    async def put(i: int) -> None:
        await obstore.put_async(store, f"o/{i}", data)

    async def get(i: int) -> None:
        await (await obstore.get_async(store, f"o/{i}")).bytes_async()

    async def first_byte(i: int) -> None:
        result = await obstore.get_async(store, f"o/{i}")
        async for _chunk in result.stream():
            break

    async def concurrent(i: int) -> None:
        await asyncio.gather(*(get(i) for _ in range(32)))

    return {
        "head_missing": await _median_ms(head_missing, rounds),
        "put_100k": await _median_ms(put, rounds),
        "get_100k": await _median_ms(get, rounds),
        "first_byte": await _median_ms(first_byte, rounds),
        "32_gets": await _median_ms(concurrent, max(10, rounds // 10)),
    }


async def bench_aiobotocore(gw: Radosgw, bucket: str, data: bytes, rounds: int) -> dict[str, float]:
    from aiobotocore.session import get_session

    async with get_session().create_client(
        "s3",
        endpoint_url=gw.endpoint,
        region_name=gw.region,
        aws_access_key_id=gw.access_key,
        aws_secret_access_key=gw.secret_key,
    ) as client:
        from botocore.exceptions import ClientError

        async def head_missing(i: int) -> None:
            with contextlib.suppress(ClientError):
                await client.head_object(Bucket=bucket, Key=f"missing/{i}")

        async def put(i: int) -> None:
            await client.put_object(Bucket=bucket, Key=f"b/{i}", Body=data)

        async def get(i: int) -> None:
            response = await client.get_object(Bucket=bucket, Key=f"b/{i}")
            async with response["Body"] as body:
                await body.read()

        async def first_byte(i: int) -> None:
            response = await client.get_object(Bucket=bucket, Key=f"b/{i}")
            async with response["Body"] as body:
                await body.read(1)

        async def concurrent(i: int) -> None:
            await asyncio.gather(*(get(i) for _ in range(32)))

        return {
            "head_missing": await _median_ms(head_missing, rounds),
            "put_100k": await _median_ms(put, rounds),
            "get_100k": await _median_ms(get, rounds),
            "first_byte": await _median_ms(first_byte, rounds),
            "32_gets": await _median_ms(concurrent, max(10, rounds // 10)),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    data = os.urandom(100_000)
    with tempfile.TemporaryDirectory() as tmp:
        gw = Radosgw(Path(tmp) / "ceph").start()
        try:
            create_bucket(gw, "bench")
            results = {
                "obstore": asyncio.run(bench_obstore(gw, "bench", data, args.rounds)),
                "aiobotocore": asyncio.run(bench_aiobotocore(gw, "bench", data, args.rounds)),
            }
        finally:
            gw.stop()
    names = list(results["obstore"])
    print(f"{'median ms':<14}" + "".join(f"{n:>14}" for n in names))
    for client, figures in results.items():
        print(f"{client:<14}" + "".join(f"{figures[n]:>14.2f}" for n in names))


if __name__ == "__main__":
    main()
