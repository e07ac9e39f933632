"""Least-privilege IAM roles of a task version's AWS workers (Lambda functions, ECS tasks).

A worker needs its own queue (receive, delete, change visibility), its dead-letter queue (the
runner sends final failures there), the claim-checked objects of its task (payloads read,
results written) and its log group: the policies here grant exactly that, on those resources'
ARNs, and nothing else. :func:`ensure_role` creates or updates such a role (tagged as Tornado's,
so :func:`delete_managed_role` removes only roles Tornado made). See docs/iam.md.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.aws.errors import error_code
from tornado_core.naming import dead_letter_name, payload_key, queue_name, result_key
from tornado_core.settings import Settings
from tornado_core.task import TaskSpec

POLICY_VERSION = "2012-10-17"
#: The inline policy's name on roles Tornado creates.
POLICY_NAME = "tornado-worker"
#: Tag that marks a role as made (and deletable) by Tornado.
MANAGED_TAG = "io.tornado.managed"
LAMBDA_SERVICE = "lambda.amazonaws.com"
ECS_TASKS_SERVICE = "ecs-tasks.amazonaws.com"
#: What the event source mapping and the job runner do on the version's queue.
CONSUME = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes")
#: Network interfaces of a function in a VPC (EC2 grants these on ``*`` only).
VPC_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)
#: Longest IAM role name.
ROLE_NAME_LIMIT = 64


@dataclass(frozen=True, kw_only=True)
class WorkerScope:
    """Where one task version's workers live in AWS.

    Attributes:
        partition: ``aws`` (``aws-cn``, ``aws-us-gov`` in those regions).
        region: The region of the queues and logs.
        account: The account id.
        queue_prefix: Prefix of the queue names (``Settings.queue_prefix``).
        bucket: The bucket of claim-checked payloads and results.
        task: Task name.
        version: Task version.
        requeues: The task has per-key limits, whose refused jobs are sent back to its own queue.
    """

    partition: str = "aws"
    region: str
    account: str
    queue_prefix: str
    bucket: str
    task: str
    version: str
    requeues: bool = False

    @property
    def queue_arn(self) -> str:
        """ARN of the version's work queue."""
        return self._sqs(queue_name(self.queue_prefix, self.task, self.version))

    @property
    def dead_letter_arn(self) -> str:
        """ARN of its dead-letter queue."""
        return self._sqs(dead_letter_name(queue_name(self.queue_prefix, self.task, self.version)))

    def object_arn(self, key_pattern: str) -> str:
        """ARN of the bucket's objects matching ``key_pattern``."""
        return f"arn:{self.partition}:s3:::{self.bucket}/{key_pattern}"

    def log_group_arns(self, group: str) -> list[str]:
        """The log group and its streams (CreateLogGroup names the first, the stream calls the second)."""
        base = f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:{group}"
        return [base, f"{base}:*"]

    def _sqs(self, name: str) -> str:
        return f"arn:{self.partition}:sqs:{self.region}:{self.account}:{name}"


@dataclass(frozen=True, kw_only=True)
class WorkerRole:
    """A worker role to create or review: its name, who assumes it, and its one inline policy.

    Attributes:
        name: Role name (at most 64 characters).
        service: The AWS service that assumes it (``lambda.amazonaws.com``...).
        policy: The inline policy document.
        execution_policy: What the runtime's *execution* role needs on top of its managed policy
            for these workers (ECS's log group); ``None`` when nothing.
    """

    name: str
    service: str
    policy: dict[str, Any]
    execution_policy: dict[str, Any] | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        """What ``tornado release policy`` prints."""
        document: dict[str, Any] = {
            "role": self.name,
            "assume_role_policy": trust_policy(self.service),
            "policy": self.policy,
        }
        if self.execution_policy is not None:
            document["execution_role_policy"] = self.execution_policy
        return document


def worker_scope(
    settings: Settings, task: str, version: str, *, spec: TaskSpec | None, sts: Any = None
) -> WorkerScope:
    """The resources of a version's workers under these settings (the account from STS).

    Args:
        settings: The workers' settings (region, queue prefix, bucket).
        task: Task name.
        version: Task version.
        spec: The version's code, if at hand: without it, the role may also requeue to its own
            queue (per-key limits), as the code might have them.
        sts: A boto3 STS client; default: one for ``settings``.
    """
    region = settings.aws_region
    sts = sts or make_client("sts", region=region, endpoint_url=settings.aws_endpoint_url)
    return WorkerScope(
        partition=partition_of(region),
        region=region,
        account=account_of(sts),
        queue_prefix=settings.queue_prefix,
        bucket=settings.bucket,
        task=task,
        version=version,
        requeues=spec is None or bool(spec.limits),
    )


def ecs_worker_role(
    settings: Settings,
    task: str,
    version: str,
    *,
    service: str,
    cluster: str,
    log_group: str,
    spec: TaskSpec | None,
) -> WorkerRole:
    """The task role of a version's ECS service ``service``, with the logs its execution role needs."""
    scope = worker_scope(settings, task, version, spec=spec)
    return WorkerRole(
        name=bounded_name(f"{service}-task"),
        service=ECS_TASKS_SERVICE,
        policy=ecs_task_policy(scope, cluster=cluster),
        execution_policy=ecs_logs_policy(scope, log_group=log_group),
    )


def partition_of(region: str) -> str:
    """The ARN partition of a region."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def bounded_name(name: str, limit: int = ROLE_NAME_LIMIT) -> str:
    """``name`` cut to ``limit`` characters, ending in a hash of the whole when cut (stays unique)."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-_.')}-{digest}"


def trust_policy(service: str) -> dict[str, Any]:
    """The assume-role policy letting ``service`` take the role."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def _statement(sid: str, actions: Iterable[str], resources: Sequence[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": list(resources)}


def _queue_and_objects(scope: WorkerScope, *, queue_extra: Iterable[str], dlq: Iterable[str]) -> list[Any]:
    """The statements every worker needs: its queue, its DLQ, its task's claim-checked objects."""
    on_queue = {*CONSUME, "sqs:GetQueueUrl", *queue_extra}
    if scope.requeues:
        on_queue.add("sqs:SendMessage")
    return [
        _statement("ConsumeItsQueue", on_queue, [scope.queue_arn]),
        _statement(
            "DeadLetterItsJobs", {"sqs:SendMessage", "sqs:GetQueueUrl", *dlq}, [scope.dead_letter_arn]
        ),
        _statement(
            "ReadClaimCheckedPayloads", ["s3:GetObject"], [scope.object_arn(payload_key(scope.task, "*"))]
        ),
        _statement(
            "WriteClaimCheckedResults", ["s3:PutObject"], [scope.object_arn(result_key(scope.task, "*"))]
        ),
    ]


def lambda_policy(scope: WorkerScope, *, function_name: str, vpc: bool) -> dict[str, Any]:
    """The execution role policy of a version's Lambda function.

    Args:
        scope: The version's resources.
        function_name: The function (its log group is ``/aws/lambda/<name>``).
        vpc: The function runs in subnets (it then manages its network interfaces).
    """
    statements = _queue_and_objects(scope, queue_extra=(), dlq=())
    statements.append(
        _statement(
            "WriteItsLogs",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            scope.log_group_arns(f"/aws/lambda/{function_name}"),
        )
    )
    if vpc:
        statements.append(_statement("ItsNetworkInterfaces", VPC_ACTIONS, ["*"]))
    return {"Version": POLICY_VERSION, "Statement": statements}


def ecs_task_policy(scope: WorkerScope, *, cluster: str) -> dict[str, Any]:
    """The task role policy of a version's ECS workers.

    ``tornado worker`` makes sure its queues exist when it starts (create, read attributes) and
    protects its task from scale-in through the ECS agent while it works.
    """
    create = ("sqs:CreateQueue", "sqs:GetQueueAttributes")
    statements = _queue_and_objects(scope, queue_extra=create, dlq=create)
    protection = f"arn:{scope.partition}:ecs:{scope.region}:{scope.account}:task/{cluster}/*"
    statements.append(
        _statement("ProtectItsTasks", ["ecs:GetTaskProtection", "ecs:UpdateTaskProtection"], [protection])
    )
    return {"Version": POLICY_VERSION, "Statement": statements}


def ecs_logs_policy(scope: WorkerScope, *, log_group: str) -> dict[str, Any]:
    """What the ECS execution role needs to write the workers' logs (``awslogs``, group created)."""
    actions = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
    return {
        "Version": POLICY_VERSION,
        "Statement": [_statement("WriteItsLogs", actions, scope.log_group_arns(log_group))],
    }


def policy_allows(policy: Mapping[str, Any], action: str, resource: str) -> bool:
    """Whether an Allow statement of ``policy`` grants ``action`` on ``resource`` (``*``/``?`` patterns).

    A reviewer's check (and the tests'), not IAM's evaluator: no conditions, no Deny.
    """
    for statement in policy.get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        actions, resources = _listed(statement.get("Action")), _listed(statement.get("Resource"))
        if any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions) and any(
            fnmatch.fnmatchcase(resource, r) for r in resources
        ):
            return True
    return False


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value or []]


# ------------------------------------------------------------------ the role in IAM


def ensure_role(iam: Any, role: WorkerRole, *, tags: Mapping[str, str] | None = None) -> str:
    """Create the role (or bring an existing one's trust and policy up to date); returns its ARN.

    Args:
        iam: A boto3 IAM client.
        role: The role to have.
        tags: More tags; ``io.tornado.managed=true`` is always set on a role created here.

    Raises:
        ClientError: IAM refused (the caller turns it into its own error).
    """
    trust = json.dumps(trust_policy(role.service))
    try:
        arn = str(iam.get_role(RoleName=role.name)["Role"]["Arn"])
        iam.update_assume_role_policy(RoleName=role.name, PolicyDocument=trust)
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
        every_tag = {**(tags or {}), MANAGED_TAG: "true"}
        answer = iam.create_role(
            RoleName=role.name,
            AssumeRolePolicyDocument=trust,
            Description="Tornado worker (least privilege, docs/iam.md)",
            Tags=[{"Key": k, "Value": v} for k, v in sorted(every_tag.items())],
        )
        arn = str(answer["Role"]["Arn"])
    iam.put_role_policy(RoleName=role.name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(role.policy))
    return arn


def delete_managed_role(iam: Any, name: str) -> bool:
    """Delete a role Tornado created (its tag says so) with its inline policy; False if none.

    Raises:
        ClientError: IAM refused.
    """
    try:
        tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=name).get("Tags", [])}
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return False
        raise
    if tags.get(MANAGED_TAG) != "true":
        return False
    for policy in iam.list_role_policies(RoleName=name).get("PolicyNames", []):
        iam.delete_role_policy(RoleName=name, PolicyName=policy)
    iam.delete_role(RoleName=name)
    return True


def role_propagating(exc: ClientError) -> bool:
    """Whether Lambda refused a role it cannot assume yet (IAM is eventually consistent)."""
    return error_code(exc) == "InvalidParameterValueException" and "cannot be assumed" in str(exc)


def account_of(sts: Any) -> str:
    """The account id of the caller's credentials."""
    return str(sts.get_caller_identity()["Account"])
