"""Least-privilege IAM policies for the SageMaker backend, for a team that shares one AWS account:
one user policy for everyone (each user gets their own space through the ``${aws:userid}`` policy
variable), and one execution role per user, which SageMaker assumes to run that user's jobs: every
such role has the same policy, and reaches only the space named by its own tag
(``${aws:PrincipalTag/amc_user}``: a role session's principal tags include its role's tags).
Printed by ``amc iam-policy``.

Why these keys (AWS IAM User Guide and Service Authorization Reference):

- ``aws:userid`` is the caller's unique id, defined for every principal: an IAM user's id, and
  ``<role id>:<session name>`` for a role session (IAM Identity Center users, a notebook instance's
  role); ``aws:username`` exists for IAM users only.  STS GetCallerIdentity's ``UserId`` is the same
  value ("the values listed in the aws:userid column"), so the product's S3 prefix and the policy agree.
- A ListBucket request is matched on ``s3:prefix``: granting it for ``users/${aws:userid}/*`` lets a
  user list their own space only (a HeadBucket, which carries no prefix, would be refused).
- Jobs carry the tag ``amc_user=<key>``: CreateTrainingJob (and the AddTags SageMaker authorizes
  for tags given at creation, ``sagemaker:TaggingAction``) only with ``aws:RequestTag`` equal to the
  caller's key; Describe / Stop only with ``aws:ResourceTag`` equal to it.
- Tuning jobs the same way: CreateHyperParameterTuningJob (and its AddTags) only with the caller's
  tag, which SageMaker copies onto the training jobs it launches (allowed as the caller's own jobs
  above); Describe, ListTrainingJobsFor... and Stop only with that tag; passing the role as for a job.
- Listing jobs is SageMaker Search, which supports no resource type ("*"): it is allowed only with the
  visibility condition ``Tags.amc_user`` equal to the caller's key
  (``sagemaker:SearchVisibilityCondition/Tags.amc_user/EqualsIfExists``, SageMaker's documented form),
  so other users' AMC jobs stay out of the results (jobs without the tag, not AMC's, may show).
- ``iam:PassRole`` only for a role under ``/amc/`` tagged ``amc_user=<key>`` (``aws:ResourceTag``),
  only to SageMaker (``iam:PassedToService``).
- Endpoints: model, endpoint config and endpoint are created only tagged with the caller's key (a
  model only with network isolation); describe, invoke and delete only with that tag.  CreateEndpoint
  also authorizes the config it names (the caller's own).  Autoscaling targets are registered only
  tagged with the key and changed only with it, namespace ``sagemaker``; registering also needs
  DescribeEndpoint and UpdateEndpointWeightsAndCapacities on the (own) endpoint and, once per account,
  the Application Auto Scaling service-linked role; target tracking needs the CloudWatch alarms it
  makes (named ``TargetTracking-endpoint/...``: shared, as endpoint names do not carry the user).
"""

from __future__ import annotations

from typing import Any

from amc_widgets.core.container_contract import TRAINING_LOG_GROUP

USER_KEY_VARIABLE = "${aws:userid}"
# whose a job or an execution role is; letters and '_' only, as it sits inside an ARN in
# ${aws:PrincipalTag/...} (policy linters such as parliament read a ':' or '-' there as ARN syntax)
OWNER_TAG = "amc_user"
ROLE_OWNER_VARIABLE = "${aws:PrincipalTag/" + OWNER_TAG + "}"  # in a job: the key its execution role is tagged with
ROLE_PATH = "/amc/"  # execution roles live here; a user may pass only the one tagged with their key
SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"
SCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
SCALING_ROLE = f"aws-service-role/{SCALING_SERVICE}/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
DEFAULT_REPOSITORY = "amc-yolov5-training"


def space_prefix(user_key: str) -> str:
    """A user's space in the bucket: ``users/<key>/``, the key exactly as AWS gives it."""
    return f"users/{user_key}/"


def _log_group_arns(partition: str, region: str, account: str) -> list[str]:
    group = f"arn:{partition}:logs:{region}:{account}:log-group:{TRAINING_LOG_GROUP}"
    return [group, f"{group}:*"]  # the group itself, and its streams (log-group:NAME:log-stream:STREAM)


def user_policy(bucket: str, partition: str = "aws", region: str = "*", account: str = "*") -> dict[str, Any]:
    """What every AMC user needs, each in their own space: their prefix of the bucket, training and tuning jobs
    tagged with their key, the job logs, quota reads, and passing their own execution role."""
    prefix = space_prefix(USER_KEY_VARIABLE)
    jobs = f"arn:{partition}:sagemaker:{region}:{account}:training-job/*"
    tuning = f"arn:{partition}:sagemaker:{region}:{account}:hyper-parameter-tuning-job/*"
    hosting = {kind: f"arn:{partition}:sagemaker:{region}:{account}:{kind}/*"
               for kind in ("model", "endpoint-config", "endpoint")}
    targets = f"arn:{partition}:application-autoscaling:{region}:{account}:scalable-target/*"
    own_tag = {f"aws:RequestTag/{OWNER_TAG}": USER_KEY_VARIABLE}
    owned = {"StringEquals": {f"aws:ResourceTag/{OWNER_TAG}": USER_KEY_VARIABLE}}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "WhoAmI", "Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"},
            {"Sid": "ListOwnSpace", "Effect": "Allow", "Action": "s3:ListBucket",
             "Resource": f"arn:{partition}:s3:::{bucket}",
             "Condition": {"StringLike": {"s3:prefix": f"{prefix}*"}}},
            {"Sid": "OwnSpace", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
             "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*"},
            {"Sid": "StartOwnJobs", "Effect": "Allow", "Action": "sagemaker:CreateTrainingJob", "Resource": jobs,
             "Condition": {"StringEquals": {f"aws:RequestTag/{OWNER_TAG}": USER_KEY_VARIABLE}}},
            {"Sid": "TagOwnJobsAtCreation", "Effect": "Allow", "Action": "sagemaker:AddTags", "Resource": jobs,
             "Condition": {"StringEquals": {"sagemaker:TaggingAction": "CreateTrainingJob",
                                            f"aws:RequestTag/{OWNER_TAG}": USER_KEY_VARIABLE}}},
            {"Sid": "OwnJobs", "Effect": "Allow",
             "Action": ["sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob"],
             "Resource": jobs, "Condition": {"StringEquals": {f"aws:ResourceTag/{OWNER_TAG}": USER_KEY_VARIABLE}}},
            {"Sid": "StartOwnTuningJobs", "Effect": "Allow", "Action": "sagemaker:CreateHyperParameterTuningJob",
             "Resource": tuning, "Condition": {"StringEquals": own_tag}},
            {"Sid": "TagOwnTuningJobsAtCreation", "Effect": "Allow", "Action": "sagemaker:AddTags", "Resource": tuning,
             "Condition": {"StringEquals": {**own_tag, "sagemaker:TaggingAction": "CreateHyperParameterTuningJob"}}},
            {"Sid": "OwnTuningJobs", "Effect": "Allow",
             "Action": ["sagemaker:DescribeHyperParameterTuningJob",
                        "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
                        "sagemaker:StopHyperParameterTuningJob"], "Resource": tuning, "Condition": owned},
            {"Sid": "CreateOwnModels", "Effect": "Allow", "Action": "sagemaker:CreateModel",
             "Resource": hosting["model"],
             "Condition": {"StringEquals": own_tag, "Bool": {"sagemaker:NetworkIsolation": "true"}}},
            {"Sid": "CreateOwnEndpointConfigs", "Effect": "Allow", "Action": "sagemaker:CreateEndpointConfig",
             "Resource": hosting["endpoint-config"], "Condition": {"StringEquals": own_tag}},
            # on the endpoint only: the config it names must be the caller's own (OwnEndpointConfigsAndModels)
            {"Sid": "CreateOwnEndpoints", "Effect": "Allow", "Action": "sagemaker:CreateEndpoint",
             "Resource": hosting["endpoint"], "Condition": {"StringEquals": own_tag}},
            {"Sid": "TagOwnHostingAtCreation", "Effect": "Allow", "Action": "sagemaker:AddTags",
             "Resource": list(hosting.values()),
             "Condition": {"StringEquals": {**own_tag, "sagemaker:TaggingAction": [
                 "CreateModel", "CreateEndpointConfig", "CreateEndpoint"]}}},
            {"Sid": "OwnEndpoints", "Effect": "Allow",
             "Action": ["sagemaker:DescribeEndpoint", "sagemaker:InvokeEndpoint", "sagemaker:DeleteEndpoint",
                        "sagemaker:UpdateEndpointWeightsAndCapacities"],
             "Resource": hosting["endpoint"], "Condition": owned},
            {"Sid": "OwnEndpointConfigsAndModels", "Effect": "Allow",
             "Action": ["sagemaker:CreateEndpoint", "sagemaker:DeleteEndpointConfig", "sagemaker:DeleteModel"],
             "Resource": [hosting["endpoint-config"], hosting["model"]], "Condition": owned},
            {"Sid": "ScaleOwnEndpoints", "Effect": "Allow", "Action": "application-autoscaling:RegisterScalableTarget",
             "Resource": targets, "Condition": {"StringEquals": {
                 **own_tag, "application-autoscaling:service-namespace": "sagemaker"}}},
            {"Sid": "OwnScaling", "Effect": "Allow",
             "Action": ["application-autoscaling:PutScalingPolicy", "application-autoscaling:DeregisterScalableTarget"],
             "Resource": targets, "Condition": {"StringEquals": {
                 **owned["StringEquals"], "application-autoscaling:service-namespace": "sagemaker"}}},
            {"Sid": "ScalingAlarms", "Effect": "Allow",
             "Action": ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
             "Resource": f"arn:{partition}:cloudwatch:{region}:{account}:alarm:TargetTracking-endpoint/*"},
            {"Sid": "ScalingServiceRole", "Effect": "Allow", "Action": "iam:CreateServiceLinkedRole",
             "Resource": f"arn:{partition}:iam::{account}:role/{SCALING_ROLE}",
             "Condition": {"StringEquals": {"iam:AWSServiceName": SCALING_SERVICE}}},
            {"Sid": "SearchOwnJobs", "Effect": "Allow", "Action": "sagemaker:Search", "Resource": "*",
             "Condition": {"StringEquals": {
                 f"sagemaker:SearchVisibilityCondition/Tags.{OWNER_TAG}/EqualsIfExists": USER_KEY_VARIABLE}}},
            {"Sid": "JobLogs", "Effect": "Allow",
             "Action": ["logs:DescribeLogStreams", "logs:GetLogEvents", "logs:StartLiveTail"],
             "Resource": _log_group_arns(partition, region, account)},
            # quota values are the account's, readable by every user; parliament's action data knows
            # GetServiceQuota with Resource "*" only (the Service Authorization Reference: optionally a quota)
            {"Sid": "Quotas", "Effect": "Allow",
             "Action": ["servicequotas:ListServiceQuotas", "servicequotas:GetServiceQuota"], "Resource": "*"},
            {"Sid": "Prices", "Effect": "Allow", "Action": "pricing:GetProducts", "Resource": "*"},
            {"Sid": "FindRoles", "Effect": "Allow", "Action": "iam:ListRoles", "Resource": "*"},
            {"Sid": "FindOwnExecutionRole", "Effect": "Allow", "Action": "iam:ListRoleTags",
             "Resource": f"arn:{partition}:iam::{account}:role{ROLE_PATH}*"},
            {"Sid": "PassOwnExecutionRole", "Effect": "Allow", "Action": "iam:PassRole",
             "Resource": f"arn:{partition}:iam::{account}:role{ROLE_PATH}*",
             "Condition": {"StringEquals": {"iam:PassedToService": SAGEMAKER_SERVICE,
                                            f"aws:ResourceTag/{OWNER_TAG}": USER_KEY_VARIABLE}}},
        ],
    }


def execution_role_policy(bucket: str, partition: str = "aws", region: str = "*", account: str = "*",
                          repository: str = DEFAULT_REPOSITORY) -> dict[str, Any]:
    """What a user's jobs need, and no more: read that user's datasets and weights, write their outputs and
    checkpoints, pull the image, write logs and metrics.  The same for every user's role: the
    role's ``amc_user`` tag (:func:`execution_role_tags`) names whose space it reaches.  (The tests
    play SageMaker's S3 and log requests; the ECR pulls and metrics are SageMaker's own, as its
    execution-role documentation lists them.)"""
    prefix = space_prefix(ROLE_OWNER_VARIABLE)
    objects = f"arn:{partition}:s3:::{bucket}/{prefix}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ListOwnSpace", "Effect": "Allow", "Action": "s3:ListBucket",
             "Resource": f"arn:{partition}:s3:::{bucket}",
             "Condition": {"StringLike": {"s3:prefix": f"{prefix}*"}}},
            {"Sid": "ReadDatasetsAndWeights", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": [f"{objects}custom-uploads/*", f"{objects}weights/*"]},
            {"Sid": "OutputsAndCheckpoints", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
             "Resource": f"{objects}training-jobs/*"},
            {"Sid": "PullImage", "Effect": "Allow",
             "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
             "Resource": f"arn:{partition}:ecr:{region}:{account}:repository/{repository}"},
            {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Sid": "Logs", "Effect": "Allow",
             "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
             "Resource": _log_group_arns(partition, region, account)},
            {"Sid": "Metrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
             "Condition": {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}}},
        ],
    }


def execution_role_tags(user_key: str) -> list[dict[str, str]]:
    """The tags that make a role under ``/amc/`` the execution role of the user with ``user_key``."""
    return [{"Key": OWNER_TAG, "Value": user_key}]


def trust_policy() -> dict[str, Any]:
    """The execution role's trust: SageMaker may assume it."""
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
        "Service": SAGEMAKER_SERVICE}, "Action": "sts:AssumeRole"}]}
