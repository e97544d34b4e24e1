#!/usr/bin/env python3
"""The IAM policy each function of the SAM template gets, resolved for given
parameters and resources: what `make test` runs the function binaries under, so the
tests exercise exactly the statements the template ships (not a copy of them).

    render_policies.py TEMPLATE CONTEXT_JSON
    render_policies.py --template TEMPLATE CONTEXT_JSON

CONTEXT_JSON: {"Parameters": {NAME: VALUE}, "Resources": {LOGICAL_ID: {"Ref": ...,
"Arn": ..., ATTR: ...}}, "AccountId": ..., "Region": ..., "Partition": ...}.
Prints {BINARY: {"Version": ..., "Statement": [...]}} for every
AWS::Serverless::Function, keyed by its BuildProperties.Binary: the statements of its
role's inline policies and of the template's managed policies the role attaches
(ManagedPolicyArns). A function without an explicit Role, or a role attaching a
managed policy the template does not define, is an error: SAM or AWS would add
statements the tests cannot see.

With --template, prints the whole template as CloudFormation would see it for those
parameters, for tests of the template itself: {"Parameters": the declarations as
written, "ParameterErrors": [values that break their declared constraints],
"Rules": [the AssertDescription of every failed Rules assertion],
"Conditions": {NAME: BOOL}, "Resources": {LOGICAL_ID: {"Type": ..., "Properties": ...}}
(only those whose Condition holds), "Environment": {BINARY: {VAR: VALUE}} (Globals
merged), "Policies": as above}. A Ref or Fn::GetAtt of a resource the
context does not give resolves to "{LOGICAL_ID}" or "{LOGICAL_ID.ATTR}".

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
    def __init__(self, template, context, lenient=False):
        self.template = template
        self.lenient = lenient
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
        if self.lenient and name in (self.template.get("Resources") or {}):
            return "{%s}" % name
        raise SystemExit(f"cannot resolve Ref {name}: give it in the context's Resources")

    def get_att(self, name, attr):
        try:
            return self.resources[name][attr]
        except KeyError:
            if self.lenient and name in (self.template.get("Resources") or {}):
                return "{%s.%s}" % (name, attr)
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

    def role_documents(self, role_name):
        """The policy documents a role holds: its inline Policies, and the template's
        managed policies it attaches."""
        resources = self.template.get("Resources") or {}
        props = resources[role_name].get("Properties") or {}
        docs = [policy["PolicyDocument"] for policy in props.get("Policies") or []]
        for arn in self.resolve_raw_list(props.get("ManagedPolicyArns") or []):
            if not (isinstance(arn, dict) and set(arn) == {"Ref"}):
                raise SystemExit(f"{role_name}: attaches {arn!r}, a policy the template does not define")
            policy = resources.get(arn["Ref"]) or {}
            if policy.get("Type") != "AWS::IAM::ManagedPolicy":
                raise SystemExit(f"{role_name}: {arn['Ref']} is not an AWS::IAM::ManagedPolicy of the template")
            docs.append(policy["Properties"]["PolicyDocument"])
        return docs

    def resolve_raw_list(self, items):
        """A list whose members may be Fn::If: the chosen members, unresolved."""
        out = []
        for item in items:
            while isinstance(item, dict) and set(item) == {"Fn::If"}:
                name, yes, no = item["Fn::If"]
                item = yes if self.condition(name) else no
            if item == {"Ref": "AWS::NoValue"}:
                continue
            out.append(item)
        return out

    def functions(self):
        """(logical id, binary name, resource) of every AWS::Serverless::Function."""
        for name, resource in (self.template.get("Resources") or {}).items():
            if resource.get("Type") == "AWS::Serverless::Function":
                binary = ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary", name)
                yield name, binary, resource

    def policies(self):
        out = {}
        for name, binary, resource in self.functions():
            props = resource.get("Properties") or {}
            role = props.get("Role")
            if not (isinstance(role, dict) and "Fn::GetAtt" in role) or props.get("Policies"):
                raise SystemExit(
                    f"{name}: give it Role: !GetAtt ROLE.Arn and no Policies, or SAM adds managed policies"
                )
            role_name = role["Fn::GetAtt"]
            role_name = role_name[0] if isinstance(role_name, list) else role_name.split(".")[0]
            statements = []
            for doc in self.role_documents(role_name):
                st = self.resolve(doc).get("Statement") or []
                statements.extend(st if isinstance(st, list) else [st])
            out[binary] = {"Version": "2012-10-17", "Statement": statements}
        return out

    def parameter_errors(self):
        """What CloudFormation says of parameter values that break their declared
        constraints (AllowedValues, AllowedPattern, MinLength, MaxLength, MinValue,
        MaxValue), as it refuses them before it reads the rest. AllowedPattern is read
        as a Python regular expression, which the template's patterns are too."""
        errors = []
        for name, spec in (self.template.get("Parameters") or {}).items():
            value = self.params[name]
            values = value if isinstance(value, list) else [value]
            for v in values:
                v = str(v)
                if "AllowedValues" in spec and v not in [str(a) for a in spec["AllowedValues"]]:
                    errors.append(f"{name}: {v!r} is not one of {list(spec['AllowedValues'])}")
                if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], v):
                    errors.append(f"{name}: {v!r} does not match {spec['AllowedPattern']}")
                if "MinLength" in spec and len(v) < int(spec["MinLength"]):
                    errors.append(f"{name}: shorter than {spec['MinLength']}")
                if "MaxLength" in spec and len(v) > int(spec["MaxLength"]):
                    errors.append(f"{name}: longer than {spec['MaxLength']}")
                if spec.get("Type") == "Number":
                    if "MinValue" in spec and float(v) < float(spec["MinValue"]):
                        errors.append(f"{name}: {v} is below {spec['MinValue']}")
                    if "MaxValue" in spec and float(v) > float(spec["MaxValue"]):
                        errors.append(f"{name}: {v} is above {spec['MaxValue']}")
        return errors

    def rules(self):
        """The AssertDescription of every assertion that fails, as CloudFormation
        checks the Rules section before it changes anything."""
        failed = []
        for name, rule in (self.template.get("Rules") or {}).items():
            if "RuleCondition" in rule and not self.resolve(rule["RuleCondition"]):
                continue
            for assertion in rule.get("Assertions") or []:
                if not self.resolve(assertion["Assert"]):
                    failed.append(f"{name}: {' '.join(str(assertion.get('AssertDescription', '')).split())}")
        return failed

    def whole(self):
        globals_env = (
            ((self.template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
        ).get("Variables") or {}
        resources = {}
        for name, resource in (self.template.get("Resources") or {}).items():
            if "Condition" in resource and not self.condition(resource["Condition"]):
                continue
            resources[name] = {
                "Type": resource.get("Type"),
                "Properties": self.resolve(resource.get("Properties") or {}),
            }
        environment = {}
        for name, binary, resource in self.functions():
            own = ((resource.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}
            environment[binary] = self.resolve({**globals_env, **own})
        return {
            "Parameters": self.template.get("Parameters") or {},
            "ParameterErrors": self.parameter_errors(),
            "Rules": self.rules(),
            "Conditions": {name: self.condition(name) for name in self.conditions},
            "Resources": resources,
            "Environment": environment,
            "Policies": self.policies(),
        }


def main(argv):
    whole = len(argv) == 4 and argv[1] == "--template"
    if whole:
        argv = argv[:1] + argv[2:]
    if len(argv) != 3:
        raise SystemExit(__doc__)
    with open(argv[1]) as f:
        template = cfn_yaml.loads(f.read())
    with open(argv[2]) as f:
        context = json.load(f)
    renderer = Renderer(template, context, lenient=whole)
    json.dump(renderer.whole() if whole else renderer.policies(), sys.stdout, indent=1)


if __name__ == "__main__":
    main(sys.argv)
