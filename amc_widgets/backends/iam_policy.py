"""Least-privilege IAM policies for the SageMaker backend: one for the user, one for the role
SageMaker assumes to run the training container.  Printed by ``amc iam-policy``."""

from __future__ import annotations

from typing import Any

from amc_widgets.core.container_contract import TRAINING_LOG_GROUP


def user_policy(bucket: str, user: str, role_arn: str, region: str = "*", account: str = "*") -> dict[str, Any]:
    """What an AMC user needs: their own prefix of the bucket, SageMaker training jobs, the job logs,
    quota reads, and passing the execution role to SageMaker (and nothing else)."""
    prefix = f"users/{user}/"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "WhoAmI", "Effect": "Allow", "Action": ["sts:GetCallerIdentity"], "Resource": "*"},
            {"Sid": "FindBucket", "Effect": "Allow", "Action": ["s3:ListBucket"],
             "Resource": f"arn:aws:s3:::{bucket}", "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*", prefix]}}},
            {"Sid": "HeadBucket", "Effect": "Allow", "Action": ["s3:GetBucketLocation"],
             "Resource": f"arn:aws:s3:::{bucket}"},
            {"Sid": "OwnPrefix", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                        "s3:ListMultipartUploadParts"],
             "Resource": f"arn:aws:s3:::{bucket}/{prefix}*"},
            {"Sid": "TrainingJobs", "Effect": "Allow",
             "Action": ["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob",
                        "sagemaker:StopTrainingJob", "sagemaker:AddTags"],
             "Resource": f"arn:aws:sagemaker:{region}:{account}:training-job/*"},
            {"Sid": "ListJobs", "Effect": "Allow", "Action": ["sagemaker:ListTrainingJobs", "sagemaker:ListTags"],
             "Resource": "*"},
            {"Sid": "JobLogs", "Effect": "Allow",
             "Action": ["logs:DescribeLogStreams", "logs:GetLogEvents", "logs:StartLiveTail"],
             "Resource": f"arn:aws:logs:{region}:{account}:log-group:{TRAINING_LOG_GROUP}*"},
            {"Sid": "Quotas", "Effect": "Allow", "Action": ["servicequotas:ListServiceQuotas",
                                                             "servicequotas:GetServiceQuota"], "Resource": "*"},
            {"Sid": "FindRoles", "Effect": "Allow", "Action": ["iam:ListRoles"], "Resource": "*"},
            {"Sid": "PassExecutionRole", "Effect": "Allow", "Action": ["iam:PassRole"], "Resource": role_arn,
             "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}},
        ],
    }


def execution_role_policy(bucket: str, region: str = "*", account: str = "*",
                          repository: str = "amc-yolov5-training") -> dict[str, Any]:
    """What the training container's role needs: read datasets, write outputs and checkpoints,
    pull the image, write logs and metrics."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Datasets", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": f"arn:aws:s3:::{bucket}/users/*/custom-uploads/*"},
            {"Sid": "OutputsAndCheckpoints", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
             "Resource": f"arn:aws:s3:::{bucket}/users/*/training-jobs/*"},
            {"Sid": "ListBucket", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": f"arn:aws:s3:::{bucket}"},
            {"Sid": "PullImage", "Effect": "Allow",
             "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
             "Resource": f"arn:aws:ecr:{region}:{account}:repository/{repository}"},
            {"Sid": "EcrLogin", "Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
            {"Sid": "Logs", "Effect": "Allow",
             "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
             "Resource": f"arn:aws:logs:{region}:{account}:log-group:{TRAINING_LOG_GROUP}*"},
            {"Sid": "Metrics", "Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": "*",
             "Condition": {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}}},
        ],
    }


def trust_policy() -> dict[str, Any]:
    """The execution role's trust: SageMaker may assume it."""
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
        "Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
