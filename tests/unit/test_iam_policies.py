"""The least-privilege roles of AWS workers: what each policy grants, on which ARNs, and nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tornado_core.adapters.runtimes.iam import (
    ECS_TASKS_SERVICE,
    LAMBDA_SERVICE,
    WorkerRole,
    WorkerScope,
    bounded_name,
    ecs_logs_policy,
    ecs_task_policy,
    lambda_policy,
    partition_of,
    policy_allows,
)

ACCOUNT = "123456789012"
QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:tornado-nfe-emit-v2_0_0"
DLQ = f"{QUEUE}-dlq"
OTHER_QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:tornado-nfe-emit-v1_0_0"
FUNCTION_LOGS = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/lambda/tornado-nfe-emit-2-0-0"


def scope(**overrides: Any) -> WorkerScope:
    values: dict[str, Any] = {
        "region": "us-east-1", "account": ACCOUNT, "queue_prefix": "tornado", "bucket": "erp-jobs",
        "task": "nfe.emit", "version": "2.0.0", **overrides,
    }  # fmt: skip
    return WorkerScope(**values)


def grants(policy: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (action, resource) pair the policy lists."""
    return {
        (action, resource)
        for statement in policy["Statement"]
        for action in statement["Action"]
        for resource in statement["Resource"]
    }


def test_a_lambda_worker_gets_its_queue_its_dlq_its_objects_and_its_logs_only() -> None:
    policy = lambda_policy(scope(), function_name="tornado-nfe-emit-2-0-0", vpc=False)
    consume = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"}
    expected = {
        *((action, QUEUE) for action in (*consume, "sqs:GetQueueAttributes", "sqs:GetQueueUrl")),
        ("sqs:SendMessage", DLQ),
        ("sqs:GetQueueUrl", DLQ),
        ("s3:GetObject", "arn:aws:s3:::erp-jobs/payloads/nfe.emit/*.json"),
        ("s3:PutObject", "arn:aws:s3:::erp-jobs/results/nfe.emit/*.json"),
        *(
            (action, resource)
            for action in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
            for resource in (FUNCTION_LOGS, f"{FUNCTION_LOGS}:*")
        ),
    }
    assert grants(policy) == expected
    assert policy["Version"] == "2012-10-17"
    assert json.loads(json.dumps(policy)) == policy  # a plain JSON document, as IAM takes it


def test_the_policy_refuses_what_the_worker_never_does() -> None:
    policy = lambda_policy(scope(), function_name="tornado-nfe-emit-2-0-0", vpc=False)
    assert policy_allows(policy, "sqs:ChangeMessageVisibility", QUEUE)
    assert not policy_allows(policy, "sqs:ReceiveMessage", OTHER_QUEUE)  # another version's queue
    assert not policy_allows(policy, "sqs:ReceiveMessage", DLQ)  # the DLQ is only sent to
    assert not policy_allows(policy, "sqs:SendMessage", QUEUE)  # no per-key limits: no requeue
    assert not policy_allows(policy, "sqs:DeleteQueue", QUEUE)
    assert not policy_allows(policy, "s3:GetObject", "arn:aws:s3:::erp-jobs/payloads/nfe.cancel/j1.json")
    assert not policy_allows(policy, "s3:PutObject", "arn:aws:s3:::erp-jobs/payloads/nfe.emit/j1.json")
    assert policy_allows(policy, "s3:GetObject", "arn:aws:s3:::erp-jobs/payloads/nfe.emit/j1.json")
    assert not any(resource == "*" for _, resource in grants(policy))


def test_a_task_with_per_key_limits_may_send_back_to_its_own_queue() -> None:
    policy = lambda_policy(scope(requeues=True), function_name="f", vpc=False)
    assert policy_allows(policy, "sqs:SendMessage", QUEUE)
    assert not policy_allows(policy, "sqs:SendMessage", OTHER_QUEUE)


def test_a_function_in_a_vpc_also_manages_its_network_interfaces() -> None:
    inside = grants(lambda_policy(scope(), function_name="f", vpc=True))
    outside = grants(lambda_policy(scope(), function_name="f", vpc=False))
    assert inside - outside == {
        (action, "*")
        for action in (
            "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface",
            "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
        )
    }  # fmt: skip


def test_an_ecs_worker_also_makes_sure_of_its_queues_and_protects_its_task() -> None:
    policy = ecs_task_policy(scope(), cluster="tornado")
    for queue in (QUEUE, DLQ):
        assert policy_allows(policy, "sqs:CreateQueue", queue)
        assert policy_allows(policy, "sqs:GetQueueAttributes", queue)
    assert policy_allows(policy, "sqs:ReceiveMessage", QUEUE)
    assert not policy_allows(policy, "sqs:ReceiveMessage", DLQ)
    assert not policy_allows(policy, "sqs:SetQueueAttributes", QUEUE)
    task_arn = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/tornado/0b69d5c0d6e14b7a"
    assert policy_allows(policy, "ecs:UpdateTaskProtection", task_arn)
    assert not policy_allows(policy, "ecs:UpdateTaskProtection", task_arn.replace("/tornado/", "/other/"))
    assert not any(action.startswith("logs:") for action, _ in grants(policy))  # the execution role's


def test_the_ecs_execution_role_writes_the_workers_log_group_only() -> None:
    policy = ecs_logs_policy(scope(), log_group="/tornado/workers")
    group = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/tornado/workers"
    assert policy_allows(policy, "logs:PutLogEvents", f"{group}:log-stream:tornado/worker/abc")
    assert not policy_allows(policy, "logs:PutLogEvents", group.replace("/tornado/workers", "/other"))


def test_a_role_prints_with_its_trust_and_policies() -> None:
    role = WorkerRole(
        name="r", service=ECS_TASKS_SERVICE, policy={"Statement": []}, execution_policy={"Statement": [1]}
    )
    printed = role.to_json()
    assert printed["assume_role_policy"]["Statement"][0]["Principal"] == {
        "Service": "ecs-tasks.amazonaws.com"
    }
    assert printed["execution_role_policy"] == {"Statement": [1]}
    lambda_role = WorkerRole(name="r", service=LAMBDA_SERVICE, policy={}).to_json()
    assert "execution_role_policy" not in lambda_role


@pytest.mark.parametrize(
    ("region", "partition"), [("us-east-1", "aws"), ("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")]
)
def test_arns_carry_the_region_s_partition(region: str, partition: str) -> None:
    assert partition_of(region) == partition
    assert scope(region=region, partition=partition).queue_arn.startswith(f"arn:{partition}:sqs:{region}:")


def test_long_names_are_cut_to_iam_s_limit_and_stay_apart() -> None:
    long_a, long_b = "tornado-" + "a" * 70 + "-1", "tornado-" + "a" * 70 + "-2"
    assert bounded_name("short") == "short"
    cut_a, cut_b = bounded_name(long_a), bounded_name(long_b)
    assert len(cut_a) == len(cut_b) == 64 and cut_a != cut_b
