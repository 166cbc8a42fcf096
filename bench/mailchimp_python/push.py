#!/usr/bin/env python3
"""Initial push of N contacts with the official `mailchimp-marketing` client, the way a typical
script does it: `lists.batch_list_members` with 500 members per call, sequentially (or, with
--threads, from a thread pool). Used by `cargo bench -p audience-connectors --bench mailchimp_push`
as the comparison point; runs against the sandbox's Mailchimp simulator.

Prints one JSON line: {"client", "threads", "members", "calls", "errors", "seconds", "members_per_sec"}.
"""

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import mailchimp_marketing
from mailchimp_marketing.api_client import ApiClientError


def contacts(prefix, count):
    # Same shape as the Rust bench's contacts: email, FNAME, LNAME, subscribed.
    for i in range(count):
        yield {
            "email_address": f"{prefix}{i}@customers.shop-bench.io",
            "status": "subscribed",
            "merge_fields": {"FNAME": f"First{i}", "LNAME": f"Last{i}"},
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
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:PORT/mailchimp/3.0")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--list-id", required=True)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prefix", default="py")
    args = parser.parse_args()

    client = mailchimp_marketing.Client()
    client.set_config({"api_key": args.api_key})
    # The client builds https://{dc}.api.mailchimp.com/3.0; point it at the simulator instead.
    client.api_client.host = args.base_url.rstrip("/")
    client.api_client.server = ""

    errors = 0
    calls = 0

    def push(batch):
        body = {"members": batch, "update_existing": True}
        try:
            result = client.lists.batch_list_members(args.list_id, body)
        except ApiClientError as err:
            print(f"batch failed: HTTP {err.status_code}", file=sys.stderr)
            return len(batch)
        return int(result.get("error_count", 0))

    started = time.perf_counter()
    batches = chunks(contacts(args.prefix, args.count), args.batch)
    if args.threads <= 1:
        for batch in batches:
            errors += push(batch)
            calls += 1
    else:
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            for failed in pool.map(push, batches):
                errors += failed
                calls += 1
    seconds = time.perf_counter() - started
    print(json.dumps({
        "client": f"python mailchimp-marketing {getattr(mailchimp_marketing, '__version__', '')}".strip(),
        "threads": args.threads,
        "members": args.count,
        "calls": calls,
        "errors": errors,
        "seconds": round(seconds, 3),
        "members_per_sec": round(args.count / seconds, 1) if seconds > 0 else None,
    }))


if __name__ == "__main__":
    main()
