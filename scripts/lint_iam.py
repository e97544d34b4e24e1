#!/usr/bin/env python3
"""Least privilege for the SAM template: every function has a Role of its own, and every
IAM statement must name its actions and resources. checkov does not look inside a Serverless::Function's inline Policies, so
this does: no "*" or "service:*" action, no "*" resource, in any function's Policies or
any IAM policy resource; every S3 grant holds only in named accounts (a StringEquals
s3:ResourceAccount condition: a bucket name deleted and re-registered by a stranger
is neither read nor written); and a role attaches only managed policies the template
defines (an AWS-managed one would grant what no statement here shows).

    lint_iam.py TEMPLATE...     exit 1 and list every broad statement
    lint_iam.py --self-test     prove the check rejects a broad statement
"""

import sys

from cfnlint.decode import cfn_yaml


def as_list(value):
    return value if isinstance(value, list) else [value]


def statements(template):
    """(where, statement) for every IAM statement in the template."""
    for name, resource in (template.get("Resources") or {}).items():
        props = resource.get("Properties") or {}
        docs = []
        if resource.get("Type") == "AWS::Serverless::Function":
            docs = [p for p in as_list(props.get("Policies") or []) if isinstance(p, dict)]
        elif resource.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            docs = [props.get("PolicyDocument") or {}]
        elif resource.get("Type") == "AWS::IAM::Role":
            docs = [p.get("PolicyDocument") or {} for p in props.get("Policies") or []]
        for doc in docs:
            for st in as_list(doc.get("Statement") or []):
                # A conditional statement ({"Fn::If": [cond, statement, NoValue]}).
                if isinstance(st, dict) and "Fn::If" in st:
                    st = st["Fn::If"][1]
                if isinstance(st, dict):
                    yield f"{name}.{st.get('Sid', '?')}", st


def problems(template):
    found = []
    # A function without a Role of its own gets one from SAM, with managed policies
    # (AWSLambdaSQSQueueExecutionRole: every queue, "*") beside its Policies.
    for name, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            props = resource.get("Properties") or {}
            if "Role" not in props:
                found.append(f"{name}: no Role: SAM would attach managed policies wider than its statements")
    resources = template.get("Resources") or {}
    for name, resource in resources.items():
        if resource.get("Type") != "AWS::IAM::Role":
            continue
        for arn in as_list((resource.get("Properties") or {}).get("ManagedPolicyArns") or []):
            while isinstance(arn, dict) and "Fn::If" in arn:
                arn = arn["Fn::If"][1]
            ref = arn.get("Ref") if isinstance(arn, dict) else None
            if (resources.get(ref) or {}).get("Type") != "AWS::IAM::ManagedPolicy":
                found.append(f"{name}: attaches {arn!r}, not a managed policy of this template")
    for where, st in statements(template):
        if st.get("Effect", "Allow") != "Allow":
            continue
        for action in as_list(st.get("Action", [])):
            if isinstance(action, str) and (action == "*" or action.endswith(":*")):
                found.append(f"{where}: action {action!r} is a wildcard; name the actions")
        if "NotAction" in st or "NotResource" in st:
            found.append(f"{where}: NotAction/NotResource grants everything else")
        for resource in as_list(st.get("Resource", [])):
            if resource == "*":
                found.append(f"{where}: resource '*'; name the buckets and queues")
        s3 = [a for a in as_list(st.get("Action", [])) if isinstance(a, str) and a.startswith("s3:")]
        equals = (st.get("Condition") or {}).get("StringEquals") or {}
        if s3 and "s3:ResourceAccount" not in equals:
            found.append(f"{where}: S3 actions without a StringEquals s3:ResourceAccount condition; name the buckets' owners")
    return found


BROAD = """
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Version: "2012-10-17"
          Statement:
            - Sid: Broad
              Effect: Allow
              Action: "s3:*"
              Resource: "*"
  Role:
    Type: AWS::IAM::Role
    Properties:
      ManagedPolicyArns: [arn:aws:iam::aws:policy/AdministratorAccess]
"""


def main(argv):
    if argv == ["--self-test"]:
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write(BROAD)
            f.flush()
            found = problems(cfn_yaml.load(f.name))
        assert len(found) == 5, found
        print("lint_iam self-test: a broad statement is rejected:", "; ".join(found))
        return 0
    bad = []
    for path in argv:
        bad += [f"{path}: {p}" for p in problems(cfn_yaml.load(path))]
    for line in bad:
        print(line)
    if not bad:
        print(f"lint_iam: every IAM statement in {', '.join(argv)} names its actions and resources")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
