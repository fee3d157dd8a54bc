"""Endpoints as the dashboard shows them: one card per endpoint (status, settings, cost), its
"try it" outcome, deploying a job's model and deleting; no widgets, the backend injected."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import traitlets as tl

from amc_widgets.backends.base import DeploysModels
from amc_widgets.core.endpoints import DELETING, IN_SERVICE, EndpointDescription, EndpointSpec, wait_until_settled
from amc_widgets.core.errors import AmcError, user_message

DEPLOY_TIMEOUT_SECONDS = 1800.0  # SageMaker takes minutes; this machine seconds


class TryIt(tl.HasTraits):
    """One image sent to an endpoint: the boxes drawn, the JSON answer and the round trip."""

    running = tl.Bool(False)
    error = tl.Unicode("")
    drawn = tl.Bytes(b"", help="the image with its boxes (PNG)")
    answer = tl.Unicode("", help="the JSON answer, one detection a line")
    seconds = tl.Float(0.0)


class EndpointCard(tl.HasTraits):
    name = tl.Unicode()
    description = tl.Instance(EndpointDescription, allow_none=True)
    error = tl.Unicode("")
    try_it = tl.Instance(TryIt)

    @tl.default("try_it")
    def _try_it(self) -> TryIt:
        return TryIt()

    def settings(self, now: float) -> dict[str, str]:
        """Label -> value rows for the card: where it runs, scaling, cost."""
        e = self.description
        if e is None:
            return {}
        rows = {"Job": e.job_name}
        if e.instance_type == "serverless":
            rows["Serverless"] = (f"{e.extra.get('serverless_memory_mb')} MB, "
                                  f"max concurrency {e.extra.get('serverless_max_concurrency')}")
        else:
            rows["Instances"] = f"{e.instance_count} x {e.instance_type}"
        if "max_instances" in e.extra:
            rows["Scaling"] = (f"{e.extra['min_instances']}-{e.extra['max_instances']} instances, target "
                               f"{e.extra['target_invocations']} invocations/instance/min")
        rows["Cost"] = f"${e.hourly_cost:.3f}/h, ${e.cost_so_far(now):.2f} so far"
        return rows


def pretty_answer(answer: dict) -> str:
    """The server's JSON answer, one detection a line."""
    rows = ",\n  ".join(json.dumps(d) for d in answer.get("detections", []))
    head = json.dumps({k: v for k, v in answer.items() if k != "detections"})[:-1]
    return f'{head}, "detections": [\n  {rows}\n]}}' if rows else json.dumps(answer)


def invoke_snippet(endpoint: EndpointDescription, region: str = "") -> str:
    """Python that sends an image to ``endpoint``: boto3 for SageMaker, urllib for this machine's."""
    if endpoint.url.startswith("http://"):
        return ("import json, urllib.request\n"
                f"request = urllib.request.Request({endpoint.url + '/invocations'!r}, "
                "data=open('board.jpg', 'rb').read(),\n"
                "                                 headers={'Content-Type': 'image/jpeg'})\n"
                "print(json.load(urllib.request.urlopen(request))['detections'])\n")
    return ("import json, boto3\n"
            f"runtime = boto3.client('sagemaker-runtime'{f', region_name={region!r}' if region else ''})\n"
            f"answer = runtime.invoke_endpoint(EndpointName={endpoint.name!r}, ContentType='image/jpeg',\n"
            "                                 Body=open('board.jpg', 'rb').read(), CustomAttributes='conf=0.25')\n"
            "print(json.loads(answer['Body'].read())['detections'])\n")


class EndpointsModel(tl.HasTraits):
    """The Endpoints tab: cards by name (in the order they came), the last action's message."""

    names = tl.List(tl.Unicode())
    message = tl.Unicode("")
    error = tl.Unicode("")

    def __init__(self, backend: Callable[[], object], clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, **kwargs):
        super().__init__(**kwargs)
        self._backend, self.clock, self.sleep = backend, clock, sleep
        self._cards: dict[str, EndpointCard] = {}

    def backend(self) -> DeploysModels:
        backend = self._backend()
        if not isinstance(backend, DeploysModels):
            raise AmcError("This backend cannot deploy models")
        return backend

    def card(self, name: str) -> EndpointCard:
        return self._cards[name]

    def _show(self, endpoint: EndpointDescription) -> EndpointCard:
        card = self._cards.get(endpoint.name)
        if card is None:
            card = self._cards[endpoint.name] = EndpointCard(name=endpoint.name)
            self.names = [*self.names, endpoint.name]
        card.description = endpoint
        return card

    def refresh(self) -> None:
        """Cards for the backend's endpoints; gone ones removed."""
        endpoints = self.backend().list_endpoints()
        for endpoint in reversed(endpoints):  # oldest first: the view shows the newest on top
            self._show(endpoint)
        found = {e.name for e in endpoints}
        for name in [n for n in self.names if n not in found]:
            del self._cards[name]
        self.names = [n for n in self.names if n in found]

    def clear(self) -> None:
        self._cards.clear()
        self.names = []

    def deploy(self, job_name: str) -> EndpointDescription | None:
        """Deploy a job's model and follow it until InService or Failed (runs in the caller's thread)."""
        self.error, self.message = "", f"Deploying {job_name}..."
        try:
            backend = self.backend()
            spec = EndpointSpec(job_name, instance_type="local" if backend.name == "local" else "ml.c5.large")
            endpoint = backend.deploy(spec.check())
            self._show(endpoint)
            endpoint = wait_until_settled(lambda: backend.describe_endpoint(endpoint.name), self._show,
                                          DEPLOY_TIMEOUT_SECONDS, sleep=self.sleep)
            self.message = f"Endpoint {endpoint.name}: {endpoint.status}"
            return endpoint
        except Exception as exc:  # noqa: BLE001 - shown in the tab
            self.error, self.message = f"Deploy failed: {user_message(exc)}", ""
            return None

    def try_image(self, name: str, body: bytes, content_type: str, conf: float = 0.25) -> None:
        """Send one image: the JSON answer (with its round trip) and the boxes drawn, kept in the card."""
        state = self.card(name).try_it
        with state.hold_trait_notifications():
            state.running, state.error = True, ""
        try:
            backend = self.backend()
            attributes = f"conf={conf}"
            answer = backend.invoke_endpoint(name, body, content_type, custom_attributes=attributes)
            drawn = backend.invoke_endpoint(name, body, content_type, accept="image/png", custom_attributes=attributes)
            with state.hold_trait_notifications():
                state.answer = pretty_answer(json.loads(answer.body))
                state.seconds, state.drawn = answer.seconds, drawn.body
        except Exception as exc:  # noqa: BLE001 - shown on the card
            state.error = user_message(exc)
        finally:
            state.running = False

    def delete(self, name: str) -> None:
        card = self.card(name)
        if card.description is not None:
            card.description = EndpointDescription(**{**card.description.__dict__, "status": DELETING})
        try:
            self.backend().delete_endpoint(name)
        except Exception as exc:  # noqa: BLE001 - shown on the card
            card.error = "Delete failed: " + user_message(exc)
            return
        del self._cards[name]
        self.names = [n for n in self.names if n != name]
        self.message = f"Deleted endpoint {name}"

    def ready(self, name: str) -> bool:
        card = self._cards.get(name)
        return card is not None and card.description is not None and card.description.status == IN_SERVICE
