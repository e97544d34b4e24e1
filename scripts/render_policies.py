#!/usr/bin/env python3
"""The IAM policy each function of the SAM template gets, resolved for given
parameters and resources: what `make test` runs the function binaries under, so the
tests exercise exactly the statements the template ships (not a copy of them).

    render_policies.py TEMPLATE CONTEXT_JSON

CONTEXT_JSON: {"Parameters": {NAME: VALUE}, "Resources": {LOGICAL_ID: {"Ref": ...,
"Arn": ..., ATTR: ...}}, "AccountId": ..., "Region": ..., "Partition": ...}.
Prints {BINARY: {"Version": ..., "Statement": [...]}} for every
AWS::Serverless::Function, keyed by its BuildProperties.Binary. A function without an
explicit Role is an error: SAM would attach managed policies the tests cannot see.

Resolves the intrinsics the template uses (Ref, Fn::GetAtt, Fn::Sub, Fn::Join,
Fn::Split, Fn::If, Fn::Not, Fn::Equals, Fn::And, Fn::Or, Condition, Fn::Select);
anything else fails loudly rather than render a wrong policy.
"""

import json
import re
import sys

from cfnlint.decode import cfn_yaml

NO_VALUE = object()


class Renderer:
    def __init__(self, template, context):
        self.template = template
        self.params = {}
        for name, spec in (template.get("Parameters") or {}).items():
            value = context.get("Parameters", {}).get(name, spec.get("Default"))
            if value is None:
                raise SystemExit(f"parameter {name} has no value and no default")
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                value = value.split(",")
            self.params[name] = value
        self.resources = context.get("Resources", {})
        self.pseudo = {
            "AWS::AccountId": context.get("AccountId", "123456789012"),
            "AWS::Region": context.get("Region", "us-east-1"),
            "AWS::Partition": context.get("Partition", "aws"),
            "AWS::StackName": context.get("StackName", "s3r-test"),
        }
        self.conditions = template.get("Conditions") or {}

    def ref(self, name):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        if name in self.resources and "Ref" in self.resources[name]:
            return self.resources[name]["Ref"]
        raise SystemExit(f"cannot resolve Ref {name}: give it in the context's Resources")

    def get_att(self, name, attr):
        try:
            return self.resources[name][attr]
        except KeyError:
            raise SystemExit(f"cannot resolve Fn::GetAtt {name}.{attr}: give it in the context")

    def condition(self, name):
        return bool(self.resolve(self.conditions[name]))

    def sub(self, text, variables):
        def one(match):
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                return str(self.get_att(*name.split(".", 1)))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}!]+)\}", one, text)

    def resolve(self, node):
        if isinstance(node, list):
            out = [self.resolve(n) for n in node]
            return [n for n in out if n is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                name, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(name, attr)
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    text, variables = arg
                    return self.sub(text, {k: self.resolve(v) for k, v in variables.items()})
                return self.sub(arg, {})
            if key == "Fn::Join":
                delimiter, items = arg
                return delimiter.join(str(i) for i in self.resolve(items))
            if key == "Fn::Split":
                delimiter, text = arg
                return self.resolve(text).split(delimiter)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::Equals":
                a, b = (self.resolve(x) for x in arg)
                return a == b
            if key == "Fn::And":
                return all(self.resolve(x) for x in arg)
            if key == "Fn::Or":
                return any(self.resolve(x) for x in arg)
            if key == "Condition":
                return self.condition(arg)
            if key.startswith("Fn::"):
                raise SystemExit(f"{key} is not supported by this renderer")
        out = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    def policies(self):
        resources = self.template.get("Resources") or {}
        out = {}
        for name, resource in resources.items():
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            props = resource.get("Properties") or {}
            binary = ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary", name)
            role = props.get("Role")
            if not (isinstance(role, dict) and "Fn::GetAtt" in role) or props.get("Policies"):
                raise SystemExit(
                    f"{name}: give it Role: !GetAtt ROLE.Arn and no Policies, or SAM adds managed policies"
                )
            role_name = role["Fn::GetAtt"]
            role_name = role_name[0] if isinstance(role_name, list) else role_name.split(".")[0]
            statements = []
            for policy in resources[role_name]["Properties"].get("Policies") or []:
                doc = self.resolve(policy["PolicyDocument"])
                st = doc.get("Statement") or []
                statements.extend(st if isinstance(st, list) else [st])
            out[binary] = {"Version": "2012-10-17", "Statement": statements}
        return out


def main(argv):
    if len(argv) != 3:
        raise SystemExit(__doc__)
    with open(argv[1]) as f:
        template = cfn_yaml.loads(f.read())
    with open(argv[2]) as f:
        context = json.load(f)
    json.dump(Renderer(template, context).policies(), sys.stdout, indent=1)


if __name__ == "__main__":
    main(sys.argv)
