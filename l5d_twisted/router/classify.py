"""The response classifier a request was routed with.

Stats at the server and client layers are shared by many logical services, each of which
may have its own classifier (``service.responseClassifier`` per prefix).  The service
layer puts its classifier in ``request.ctx[CLASSIFIER]``; the shared layers classify through
:class:`ContextClassifier`, which reads it back.
"""

from __future__ import annotations

from l5d_twisted.http.message import Request, Response
from l5d_twisted.request_context import CLASSIFIER
from l5d_twisted.resilience.classifier import ResponseClass, ResponseClassifier

CLASSIFIER_KEY = CLASSIFIER


class ContextClassifier:
    def __init__(self, fallback: ResponseClassifier) -> None:
        self.fallback = fallback

    def classify(self, request: Request, outcome: Response | BaseException) -> ResponseClass:
        classifier = request.ctx.get(CLASSIFIER, self.fallback)
        return classifier.classify(request, outcome)
