#!/usr/bin/env python3
"""Initial push of N profiles into a Klaviyo list with the official `klaviyo-api` SDK, the way its
docs suggest for a bulk load: bulk import jobs of 10,000 profiles naming the list
(`Profiles.bulk_import_profiles`), each polled until complete (`get_bulk_import_profiles_job`),
then subscription jobs of 1,000 (`Profiles.bulk_subscribe_profiles`), sequentially, with the
SDK's own retries. Used by `cargo bench -p audience-connectors --bench klaviyo_push` as the
comparison point; runs against the sandbox's Klaviyo simulator.

The SDK (25.0.0) sends revision 2026-10-15; the simulator implements 2026-07-15 only (the revision
the connector is written against), so the script sets that header. The calls used are the same in
both revisions.

Prints one JSON line: {"client", "profiles", "calls", "import_jobs", "subscribe_jobs", "polls",
"errors", "seconds", "profiles_per_sec"}.
"""

import argparse
import importlib.metadata
import json
import sys
import time

from klaviyo_api import KlaviyoAPI

REVISION = "2026-07-15"


def profiles(prefix, count):
    # Same shape as the Rust bench's profiles: email, first and last name.
    for i in range(count):
        yield {
            "email": f"{prefix}{i}@customers.shop-bench.io",
            "first_name": f"First{i}",
            "last_name": f"Last{i}",
        }


def chunks(items, size):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:PORT/klaviyo")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--list-id", required=True)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--prefix", default="py")
    parser.add_argument("--poll-seconds", type=float, default=0.5)
    args = parser.parse_args()

    client = KlaviyoAPI(args.api_key, max_delay=60, max_retries=3, test_host=args.base_url.rstrip("/"))
    client.api_client.default_headers["revision"] = REVISION

    calls = imports = subscribes = polls = errors = 0
    started = time.perf_counter()
    items = list(profiles(args.prefix, args.count))
    for batch in chunks(items, 10_000):
        body = {
            "data": {
                "type": "profile-bulk-import-job",
                "attributes": {
                    "profiles": {
                        "data": [{"type": "profile", "attributes": p} for p in batch]
                    }
                },
                "relationships": {"lists": {"data": [{"type": "list", "id": args.list_id}]}},
            }
        }
        job = client.Profiles.bulk_import_profiles(body)
        calls += 1
        imports += 1
        job_id = job["data"]["id"] if isinstance(job, dict) else job.data.id
        while True:
            time.sleep(args.poll_seconds)
            status = client.Profiles.get_bulk_import_profiles_job(job_id)
            calls += 1
            polls += 1
            attrs = status["data"]["attributes"] if isinstance(status, dict) else status.data.attributes
            state = attrs["status"] if isinstance(attrs, dict) else attrs.status
            if state in ("complete", "cancelled"):
                failed = attrs["failed_count"] if isinstance(attrs, dict) else attrs.failed_count
                errors += int(failed or 0)
                break
    for batch in chunks(items, 1_000):
        body = {
            "data": {
                "type": "profile-subscription-bulk-create-job",
                "attributes": {
                    "profiles": {
                        "data": [
                            {
                                "type": "profile",
                                "attributes": {
                                    "email": p["email"],
                                    "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}},
                                },
                            }
                            for p in batch
                        ]
                    }
                },
                "relationships": {"list": {"data": {"type": "list", "id": args.list_id}}},
            }
        }
        try:
            client.Profiles.bulk_subscribe_profiles(body)
        except Exception as err:  # the SDK raises its ApiException subclasses
            print(f"subscribe job failed: {err}", file=sys.stderr)
            errors += len(batch)
        calls += 1
        subscribes += 1
    seconds = time.perf_counter() - started
    print(json.dumps({
        "client": "python klaviyo-api " + importlib.metadata.version("klaviyo-api"),
        "profiles": args.count,
        "calls": calls,
        "import_jobs": imports,
        "subscribe_jobs": subscribes,
        "polls": polls,
        "errors": errors,
        "seconds": round(seconds, 3),
        "profiles_per_sec": round(args.count / seconds, 1) if seconds > 0 else None,
    }))


if __name__ == "__main__":
    main()
