"""Endpoints on SageMaker: a completed job's model.tar.gz served by AMC's image (``serve``), with
CreateModel / CreateEndpointConfig / CreateEndpoint, invocations through ``sagemaker-runtime``,
autoscaling through Application Auto Scaling, and all three deleted together.

Model, config and endpoint share the endpoint's name and carry the tag ``amc_user=<key>``, so the
IAM policies (iam_policy.py) let only their owner describe, invoke or delete them.  The user's list
of endpoints is a marker in their space, ``users/<key>/endpoints/<name>.json``, written first (as
for jobs: ListEndpoints would name every user's endpoints).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import cached_property
from typing import Any

from botocore.exceptions import ClientError

from amc_widgets.backends.aws_session import AwsConnectionError, explain_client_error
from amc_widgets.backends.base import Prediction
from amc_widgets.backends.iam_policy import OWNER_TAG
from amc_widgets.core.endpoints import (
    EndpointDescription,
    EndpointNotFoundError,
    EndpointSpec,
    check_endpoint_name,
    hourly_cost,
    make_endpoint_name,
)
from amc_widgets.core.errors import AmcError

VARIANT = "AllTraffic"
SCALING_NAMESPACE = "sagemaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SCALING_METRIC = "SageMakerVariantInvocationsPerInstance"
SCALE_IN_COOLDOWN, SCALE_OUT_COOLDOWN = 300, 60


def _not_found(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code", "")
    return (code in ("AccessDenied", "AccessDeniedException", "ResourceNotFound", "ValidationException")
            or "not found" in str(exc).lower() or "could not find" in str(exc).lower())


class SageMakerEndpoints:
    """Deploy, describe, invoke and delete one user's endpoints."""

    def __init__(self, client: Callable[[str], Any], sm, s3, user: str, bucket: str, role_arn: str, image_uri: str,
                 model_data: Callable[[str], str], clock: Callable[[], float] = time.time):
        self.sm, self.s3 = sm, s3  # the backend's own clients
        self._client = client  # sagemaker-runtime and application-autoscaling are made when first needed
        self.user, self.bucket, self.role_arn, self.image_uri = user, bucket, role_arn, image_uri
        self.model_data, self.clock = model_data, clock  # model_data: job name -> its model.tar.gz's s3:// URI

    @cached_property
    def runtime(self):
        return self._client("sagemaker-runtime")

    @cached_property
    def scaling(self):
        return self._client("application-autoscaling")

    @property
    def prefix(self) -> str:
        return f"users/{self.user}/endpoints/"

    def _marker(self, name: str) -> dict:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=f"{self.prefix}{name}.json")["Body"].read()
        except ClientError:
            raise EndpointNotFoundError(f"No endpoint named '{name}'") from None
        return json.loads(body)

    def _tags(self, spec: EndpointSpec) -> list[dict[str, str]]:
        return [{"Key": OWNER_TAG, "Value": self.user}, {"Key": "amc_job", "Value": spec.job_name},
                {"Key": "amc_app", "Value": "amc"}]

    def requests(self, spec: EndpointSpec, name: str, model_data: str) -> dict[str, dict[str, Any]]:
        """The CreateModel, CreateEndpointConfig and CreateEndpoint requests for ``spec``."""
        tags = self._tags(spec)
        variant: dict[str, Any] = {"VariantName": VARIANT, "ModelName": name}
        if spec.serverless_memory_mb:
            variant["ServerlessConfig"] = {"MemorySizeInMB": spec.serverless_memory_mb,
                                           "MaxConcurrency": spec.serverless_max_concurrency}
        else:
            variant.update(InstanceType=spec.instance_type, InitialInstanceCount=spec.instance_count)
        return {
            "model": {"ModelName": name, "ExecutionRoleArn": self.role_arn, "EnableNetworkIsolation": True,
                      "PrimaryContainer": {"Image": self.image_uri, "ModelDataUrl": model_data}, "Tags": tags},
            "config": {"EndpointConfigName": name, "ProductionVariants": [variant], "Tags": tags},
            "endpoint": {"EndpointName": name, "EndpointConfigName": name, "Tags": tags},
        }

    def deploy(self, spec: EndpointSpec) -> EndpointDescription:
        spec.check()
        cost = 0.0 if spec.serverless_memory_mb else hourly_cost(spec.instance_type, spec.instance_count)
        model_data = self.model_data(spec.job_name)
        name = check_endpoint_name(spec.name) if spec.name else make_endpoint_name(spec.job_name, self.clock)
        key = f"{self.prefix}{name}.json"
        if self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1).get("Contents"):
            raise FileExistsError(f"An endpoint named '{name}' already exists")
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=json.dumps(
            {"spec": {**spec.__dict__, "name": name}, "hourly_cost": cost, "created": self.clock()}).encode())
        requests = self.requests(spec, name, model_data)
        try:
            self.sm.create_model(**requests["model"])
            self.sm.create_endpoint_config(**requests["config"])
            self.sm.create_endpoint(**requests["endpoint"])
        except ClientError as exc:
            self._delete_resources(name)
            self.s3.delete_object(Bucket=self.bucket, Key=key)
            if "already exist" in str(exc):
                raise FileExistsError(f"An endpoint named '{name}' already exists") from None
            raise AwsConnectionError(explain_client_error(exc, "create the endpoint")) from None
        return self.describe(name)

    def set_scaling(self, name: str) -> None:
        """Register the endpoint's variant with Application Auto Scaling and track invocations per
        instance, as its spec asks (once the endpoint is InService)."""
        spec = EndpointSpec(**self._marker(name)["spec"])
        if not spec.scales:
            return
        scaling = self.scaling
        resource = f"endpoint/{name}/variant/{VARIANT}"
        scaling.register_scalable_target(
            ServiceNamespace=SCALING_NAMESPACE, ResourceId=resource, ScalableDimension=SCALABLE_DIMENSION,
            MinCapacity=spec.min_instances, MaxCapacity=spec.max_instances,
            Tags={OWNER_TAG: self.user})
        scaling.put_scaling_policy(
            PolicyName=f"{name}-invocations", ServiceNamespace=SCALING_NAMESPACE, ResourceId=resource,
            ScalableDimension=SCALABLE_DIMENSION, PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": float(spec.target_invocations),
                "PredefinedMetricSpecification": {"PredefinedMetricType": SCALING_METRIC},
                "ScaleInCooldown": SCALE_IN_COOLDOWN, "ScaleOutCooldown": SCALE_OUT_COOLDOWN})

    def describe(self, name: str) -> EndpointDescription:
        marker = self._marker(name)
        spec = EndpointSpec(**marker["spec"])
        try:
            raw = self.sm.describe_endpoint(EndpointName=name)
        except ClientError as exc:
            if _not_found(exc):
                raise EndpointNotFoundError(f"No endpoint named '{name}'") from None
            raise AwsConnectionError(explain_client_error(exc, "read the endpoint's status")) from None
        settings: dict[str, Any] = ({"serverless_memory_mb": spec.serverless_memory_mb,
                                     "serverless_max_concurrency": spec.serverless_max_concurrency}
                                    if spec.serverless_memory_mb else {})
        if spec.scales:
            settings.update(min_instances=spec.min_instances, max_instances=spec.max_instances,
                            target_invocations=spec.target_invocations)
        variants = raw.get("ProductionVariants") or [{}]
        count = variants[0].get("CurrentInstanceCount") or spec.instance_count
        return EndpointDescription(
            name=name, status=raw["EndpointStatus"], job_name=spec.job_name,
            instance_type="serverless" if spec.serverless_memory_mb else spec.instance_type, instance_count=count,
            created=marker["created"], url=raw.get("EndpointArn", ""), failure_reason=raw.get("FailureReason") or "",
            hourly_cost=0.0 if spec.serverless_memory_mb else hourly_cost(spec.instance_type, count), extra=settings)

    def list(self) -> list[EndpointDescription]:
        endpoints = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                try:
                    endpoints.append(self.describe(item["Key"][len(self.prefix):].removesuffix(".json")))
                except EndpointNotFoundError:
                    continue  # a marker whose endpoint was never created
        return sorted(endpoints, key=lambda e: e.created, reverse=True)

    def invoke(self, name: str, body: bytes, content_type: str, accept: str = "application/json",
               custom_attributes: str = "") -> Prediction:
        kwargs = {"CustomAttributes": custom_attributes} if custom_attributes else {}
        started = time.perf_counter()
        try:
            answer = self.runtime.invoke_endpoint(EndpointName=name, Body=body, ContentType=content_type, Accept=accept,
                                             **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ModelError":  # the server's own 4xx, passed on with its one line
                original = exc.response.get("OriginalMessage") or error.get("Message", "")
                raise AmcError(f"Endpoint {name} refused the request "
                               f"({exc.response.get('OriginalStatusCode', '4xx')}): {original.strip()}") from None
            if _not_found(exc):
                raise EndpointNotFoundError(f"No endpoint named '{name}' in service") from None
            raise AwsConnectionError(explain_client_error(exc, "invoke the endpoint")) from None
        return Prediction(answer["Body"].read(), answer.get("ContentType", ""), time.perf_counter() - started)

    def delete(self, name: str) -> None:
        """Delete the scaling target, the endpoint, its config and its model, then the marker."""
        spec = EndpointSpec(**self._marker(name)["spec"])
        if spec.scales:
            try:
                self.scaling.deregister_scalable_target(
                    ServiceNamespace=SCALING_NAMESPACE, ResourceId=f"endpoint/{name}/variant/{VARIANT}",
                    ScalableDimension=SCALABLE_DIMENSION)
            except ClientError as exc:
                if not _not_found(exc):
                    raise
        self._delete_resources(name)
        self.s3.delete_object(Bucket=self.bucket, Key=f"{self.prefix}{name}.json")

    def _delete_resources(self, name: str) -> None:
        """Delete what exists of endpoint, config and model (each may be missing)."""
        for delete, key in ((self.sm.delete_endpoint, "EndpointName"),
                            (self.sm.delete_endpoint_config, "EndpointConfigName"),
                            (self.sm.delete_model, "ModelName")):
            try:
                delete(**{key: name})
            except ClientError as exc:
                if not _not_found(exc):
                    raise AwsConnectionError(explain_client_error(exc, "delete the endpoint")) from None
