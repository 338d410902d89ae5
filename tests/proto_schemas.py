"""The golden examples in proto/examples obey the JSON Schemas in proto/schemas, and each
schema refuses its example with a required field taken out (so a schema cannot pass
everything). Run by ctest as test_proto_schemas: proto_schemas.py PROTO_DIR"""
import copy
import json
import os
import sys

import jsonschema

PAIRS = {
    "link_token.json": "link_token",
    "register_request.json": "register_request",
    "register_response.json": "register_response",
    "heartbeat.json": "heartbeat",
    "assignments.json": "assignments",
    "status_migration.json": "status",
    "status_validation.json": "status",
    "status_verification.json": "status",
    "status_sharded.json": "status",
}


def main():
    root = sys.argv[1]
    failures = 0
    for example, schema_name in PAIRS.items():
        with open(os.path.join(root, "schemas", schema_name + ".schema.json")) as f:
            schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        with open(os.path.join(root, "examples", example)) as f:
            doc = json.load(f)
        errors = list(validator.iter_errors(doc))
        if errors:
            failures += 1
            print(f"{example}: {errors[0].message}")
        for field in schema.get("required", []):
            broken = copy.deepcopy(doc)
            broken.pop(field, None)
            if validator.is_valid(broken):
                failures += 1
                print(f"{schema_name}: accepts {example} without required field '{field}'")
        # the assignments schema must refuse a job without a target
        if schema_name == "assignments":
            broken = copy.deepcopy(doc)
            del broken["jobs"][0]["target"]
            if validator.is_valid(broken):
                failures += 1
                print("assignments: accepts a job without 'target'")
        # the status schema must refuse a verification section past its caps or of a
        # state it does not know
        if example == "status_verification.json":
            for change in ("state", "ids"):
                broken = copy.deepcopy(doc)
                if change == "state":
                    broken["verification"]["state"] = "great"
                else:
                    broken["verification"]["differences"][0]["ids"] = ["x"] * 11
                if validator.is_valid(broken):
                    failures += 1
                    print(f"status: accepts a verification with a bad '{change}'")
        # the status schema must refuse events past their caps or without a kind
        if example == "status_migration.json":
            for change in ("count", "kind"):
                broken = copy.deepcopy(doc)
                if change == "count":
                    broken["events"] = broken["events"] * 26
                else:
                    del broken["events"][0]["kind"]
                if validator.is_valid(broken):
                    failures += 1
                    print(f"status: accepts events with a bad '{change}'")
        # the status schema must refuse a shard without a name or past the caps
        if example == "status_sharded.json":
            for change in ("name", "count", "percentage"):
                broken = copy.deepcopy(doc)
                if change == "name":
                    del broken["shards"][0]["name"]
                elif change == "count":
                    broken["shards"] = broken["shards"] * 33
                else:
                    broken["shards"][1]["percentage"] = 101
                if validator.is_valid(broken):
                    failures += 1
                    print(f"status: accepts shards with a bad '{change}'")
        # the assignments schema must refuse a restart-shard without its shard
        if schema_name == "assignments":
            broken = copy.deepcopy(doc)
            del broken["commands"][2]["shard"]
            if validator.is_valid(broken):
                failures += 1
                print("assignments: accepts a restart-shard without 'shard'")
    print(f"{len(PAIRS)} examples checked, {failures} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
