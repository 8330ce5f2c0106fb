#!/usr/bin/env python3
"""Prints template.yaml as CloudFormation will deploy it: AWS::LanguageExtensions expanded
(Fn::ForEach; SAM CLI's own expander) and then the SAM transform applied (samtranslator, the
library CloudFormation's AWS::Serverless transform runs). No AWS call: the SAM managed-policy
map is empty (the template uses inline policies only).

    .venv/bin/python scripts/expand_template.py [template.yaml] [--stage dev|prod] > expanded.json

scripts/test.sh runs the IaC scanner (checkov) on this output, because the scanner cannot read
Fn::ForEach or SAM resources with their generated roles, permissions and API methods.
"""
import argparse
import os
import json
import sys

from samcli.lib.cfn_language_extensions.sam_integration import expand_language_extensions
from samcli.yamlhelper import yaml_parse
from samtranslator.parser.parser import Parser
from samtranslator.translator.transform import transform


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", nargs="?", default="template.yaml")
    parser.add_argument("--stage", default="dev", choices=["dev", "prod"])
    args = parser.parse_args()
    # samtranslator reads the region for the pseudo parameters; no credentials are used.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(args.template, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    params = {"Stage": args.stage}
    expanded = expand_language_extensions(template, params, enabled=True).expanded_template
    # SAM CLI's expander evaluates a Fn::Sub whose variables it cannot resolve into a plain string
    # that still holds `${...}`; CloudFormation would keep the Fn::Sub. Put it back.
    expanded = _resub(expanded)
    # The LanguageExtensions transform is done; what is left is the SAM transform, which wants
    # the code where `sam package` puts it (an S3 object) instead of a local directory.
    for resource in expanded.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = "s3://athena-artifacts/code.zip"
    expanded.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    expanded["Transform"] = "AWS::Serverless-2016-10-31"
    translated = transform(expanded, {"Stage": args.stage}, _NoManagedPolicies(), Parser())
    json.dump(translated, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


def _resub(value):
    if isinstance(value, dict):
        if len(value) == 1 and ("Fn::Sub" in value or "Fn::If" in value):
            key = next(iter(value))
            if key == "Fn::Sub":
                return value
        return {k: _resub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resub(v) for v in value]
    if isinstance(value, str) and "${" in value:
        return {"Fn::Sub": value}
    return value


class _NoManagedPolicies:
    """The template names no AWS managed policy, so nothing needs looking up in IAM."""

    def load(self):  # noqa: D401 - samtranslator's loader interface
        return {}


if __name__ == "__main__":
    sys.exit(main())
