#!/usr/bin/env python3
"""Prints the object, interface and union types of a Shopify Admin GraphQL SDL file, for the
Shopify simulator's fragment type conditions (crates/sandbox/src/shopify/schema_types.txt):

    python3 hack/shopify_schema_types.py ../shared/specs/shopify/admin-graphql-2025-01.graphql \
        > crates/sandbox/src/shopify/schema_types.txt
"""
import re
import sys

src = open(sys.argv[1], encoding="utf-8").read()
print("# The object, interface and union types of the Admin GraphQL API 2025-01, printed by")
print("# hack/shopify_schema_types.py from shared/specs/shopify/admin-graphql-2025-01.graphql.")
print("# `type NAME INTERFACES...`, `interface NAME INTERFACES...`, `union NAME MEMBERS...`.")
for m in re.finditer(r"^(type|interface|union) (\w+)([^{\n]*)", src, re.M):
    kind, name, rest = m.groups()
    rest = rest.strip()
    if kind == "union":
        parts = [x.strip() for x in rest.lstrip("=").split("|") if x.strip()]
    elif rest.startswith("implements"):
        parts = [x.strip() for x in rest[len("implements"):].split("&") if x.strip()]
    else:
        parts = []
    print(" ".join([kind, name] + parts))
