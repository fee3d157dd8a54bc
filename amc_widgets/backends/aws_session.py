"""AWS connection: credentials held in memory only, boto3 clients with botocore's retries, and
who the caller is (account, partition, readable name, the key of their space ``users/<key>/``,
bucket, the execution roles SageMaker may assume)."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound
from botocore.parsers import ResponseParserError

from amc_widgets.backends.iam_policy import OWNER_TAG, ROLE_PATH, space_prefix
from amc_widgets.core.errors import AmcError, register_explainer

# Everything botocore raises for a request that went wrong.  ResponseParserError (an answer that is
# not AWS's: a proxy's or a web server's page) derives from neither of the other two.
AWS_ERRORS = (ClientError, BotoCoreError, ResponseParserError)

# Throttling and 5xx are retried with backoff by botocore itself ("adaptive" adds client-side rate limiting).
RETRY_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 8}, connect_timeout=10, read_timeout=60,
                      max_pool_connections=48)  # a dataset upload: 32 small files and 10 parts of big ones at once

PRICING_CONFIG = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=3, read_timeout=10)

ClientFactory = Callable[[str], Any]


class AwsError(AmcError):
    """Something on the AWS side the user must fix; the message says what."""


class AwsConnectionError(AwsError):
    """The AWS account cannot be reached or used as configured."""


@dataclass(frozen=True)
class AwsCredentials:
    """How to reach AWS: keys, a named profile, or (neither) the default chain — environment, SSO,
    or the role of a SageMaker notebook instance.  Secrets never appear in repr or str."""

    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    region: str = "us-east-1"
    endpoint_url: str | None = None  # every service (a local emulator)
    s3_endpoint_url: str | None = None  # S3 only (an S3-compatible store); defaults to endpoint_url

    def session(self) -> boto3.Session:
        try:
            if self.access_key_id or self.secret_access_key:
                if not (self.access_key_id and self.secret_access_key):
                    raise AwsConnectionError("Give both the access key ID and the secret access key")
                return boto3.Session(aws_access_key_id=self.access_key_id,
                                     aws_secret_access_key=self.secret_access_key,
                                     aws_session_token=self.session_token or None, region_name=self.region)
            return boto3.Session(profile_name=self.profile or None, region_name=self.region)
        except ProfileNotFound:
            raise AwsConnectionError(f"No AWS profile named '{self.profile}' in ~/.aws/config") from None

    def client_factory(self) -> ClientFactory:
        session = self.session()

        def client(service: str):
            endpoint = (self.s3_endpoint_url or self.endpoint_url) if service == "s3" else self.endpoint_url
            config, region = RETRY_CONFIG, self.region
            if service == "s3" and endpoint:  # S3-compatible stores and emulators want path-style URLs
                config = config.merge(Config(s3={"addressing_style": "path"}))
            if service == "pricing":  # answers in one region per partition; a price is not worth a long wait
                region = "cn-northwest-1" if self.region.startswith("cn-") else "us-east-1"
                config = config.merge(PRICING_CONFIG)
            return session.client(service, region_name=region, endpoint_url=endpoint, config=config)

        return client


@dataclass(frozen=True)
class ConnectionInfo:
    account: str
    arn: str
    user_name: str  # readable: the IAM user, the role session (an SSO user's name), or 'root'
    user_key: str  # STS UserId, the same value as IAM's aws:userid: the user's space is users/<key>/
    region: str
    bucket: str
    bucket_exists: bool
    roles: list[str]  # the execution roles tagged with this user's key first, then other roles SageMaker may assume
    partition: str = "aws"

    @property
    def space(self) -> str:
        return space_prefix(self.user_key)


def user_name_from_arn(arn: str) -> str:
    """A readable name for the caller: the IAM user, the role session, or 'root' (shown, never a key)."""
    resource = arn.split(":", 5)[-1]
    if resource == "root":
        return "root"
    return resource.split("/")[-1] or "user"


def partition_from_arn(arn: str) -> str:
    """``aws``, ``aws-cn``, ``aws-us-gov``, ...: the second field of any ARN."""
    parts = arn.split(":")
    return parts[1] if len(parts) > 2 and parts[0] == "arn" and parts[1] else "aws"


def dns_suffix(partition: str) -> str:
    """The domain of a partition's endpoints (``amazonaws.com``, ``amazonaws.com.cn``), from botocore's data."""
    from botocore.loaders import create_loader

    for entry in create_loader().load_data("partitions")["partitions"]:
        if entry["id"] == partition:
            return entry["outputs"]["dnsSuffix"]
    return "amazonaws.com"


def default_bucket(region: str, account: str) -> str:
    """SageMaker's default bucket name, which the seed app looked for too."""
    return f"sagemaker-{region}-{account}"


def explain_client_error(exc: Exception, action: str) -> str:
    """One sentence for the user from a botocore error."""
    if isinstance(exc, NoCredentialsError):
        return "No AWS credentials found: enter an access key, choose a profile, or run where a role is attached"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        hints = {
            "InvalidClientTokenId": "the access key ID is not valid (check it, and the region)",
            "SignatureDoesNotMatch": "the secret access key does not match the access key ID",
            "ExpiredToken": "the session token has expired; get new credentials",
            "AccessDenied": "you lack a permission (see `amc iam-policy`)",
            "AccessDeniedException": "you lack a permission (see `amc iam-policy`)",
            "UnrecognizedClientException": "the credentials are not valid in this region",
        }
        return f"Could not {action}: {hints.get(code, f'{code}: {message}')}"
    if isinstance(exc, ResponseParserError):  # its text carries the whole page that came back
        return (f"Could not {action}: the endpoint answered with something that is not an AWS response "
                "(check the endpoint URL, the region, or a proxy in between)")
    return f"Could not {action}: {exc}"


def _explain_aws_error(exc: BaseException) -> str | None:
    """botocore's errors for :func:`amc_widgets.core.errors.user_message`."""
    return explain_client_error(exc, "complete the request") if isinstance(exc, AWS_ERRORS) else None


register_explainer(_explain_aws_error)


def _trusts_sagemaker(document: Any) -> bool:
    if isinstance(document, str):
        document = json.loads(urllib.parse.unquote(document))
    for statement in document.get("Statement", []):
        services = statement.get("Principal", {}).get("Service", [])
        services = [services] if isinstance(services, str) else services
        if "sagemaker.amazonaws.com" in services:
            return True
    return False


def _status(exc: ClientError) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def bucket_exists(s3, bucket: str, prefix: str) -> bool:
    """Whether the bucket is there and the caller may list their own prefix of it: ListObjectsV2 with
    that prefix (what the user policy grants; HeadBucket needs ListBucket with no prefix)."""
    try:
        s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket" or _status(exc) == 404:
            return False
        if _status(exc) == 403:
            raise AwsConnectionError(f"The bucket {bucket} exists but you may not use your space {prefix} in it: "
                                     "ask your administrator for the AMC user policy (`amc iam-policy`)") from None
        raise AwsConnectionError(explain_client_error(exc, f"check the bucket {bucket}")) from None


def find_roles(iam, user_key: str) -> list[str]:
    """Roles SageMaker may assume; first the execution roles under /amc/ tagged with this user's key."""
    own: list[str] = []
    others: list[str] = []
    try:
        for page in iam.get_paginator("list_roles").paginate():
            for role in page["Roles"]:
                if not _trusts_sagemaker(role.get("AssumeRolePolicyDocument", {})):
                    continue
                if role.get("Path") == ROLE_PATH:
                    tags = iam.list_role_tags(RoleName=role["RoleName"]).get("Tags", [])
                    if {"Key": OWNER_TAG, "Value": user_key} in tags:
                        own.append(role["Arn"])
                    continue  # another user's execution role: passing it would be refused
                others.append(role["Arn"])
    except ClientError:
        pass  # listing roles needs iam:ListRoles; the user can still type the role ARN
    return own + others


def describe_connection(client: ClientFactory, region: str) -> ConnectionInfo:
    """Who is calling (STS), whether the default bucket is there, and which roles SageMaker may assume."""
    try:
        identity = client("sts").get_caller_identity()
    except AWS_ERRORS as exc:
        raise AwsConnectionError(explain_client_error(exc, "reach AWS")) from None
    account, arn, key = identity["Account"], identity["Arn"], identity["UserId"]
    bucket = default_bucket(region, account)
    exists = bucket_exists(client("s3"), bucket, space_prefix(key))
    return ConnectionInfo(account=account, arn=arn, user_name=user_name_from_arn(arn), region=region,
                          bucket=bucket, bucket_exists=exists, roles=find_roles(client("iam"), key), user_key=key,
                          partition=partition_from_arn(arn))
