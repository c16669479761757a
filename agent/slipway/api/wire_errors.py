"""Errors as each App Runner operation may answer them.

botocore's model lists, per operation, the error codes it may answer; a client
(Terraform's provider, a script's ``except client.exceptions.X``) is written against that
list. The rules raise from one tree (``errors.py``) whatever the operation, so the edge
maps each error onto the operation's list here, in one place:

* a code the operation lists goes out as it is;
* AWS's common errors (authentication, throttling, an oversized body, an unknown
  target), which any operation of any AWS service may answer, go out as they are;
* any other client error becomes ``InvalidRequestException``, which every App Runner
  operation lists and which the guide gives for a request that cannot be carried out as
  asked: StartDeployment of a paused service (``InvalidStateException`` elsewhere),
  CreateService naming an auto scaling configuration that does not exist
  (``ResourceNotFoundException`` elsewhere), AssociateCustomDomain of a missing service;
  the message still says what is wrong;
* anything else is ``InternalServiceErrorException`` (500), which every operation lists
  (as is a failure that is no ``SlipwayError`` at all: ``edge.py`` answers that one).
"""

from __future__ import annotations

from ..edgelimits import RequestTooLarge, Throttled
from ..errors import (
    AccessDenied,
    InvalidRequest,
    InvalidSignature,
    MissingAuthenticationToken,
    SlipwayError,
    UnrecognizedClient,
)
from .validate import operation_errors

INTERNAL = SlipwayError.code


class UnknownOperation(SlipwayError):
    code = "UnknownOperationException"
    status = 400


#: Codes any operation may answer: AWS's common errors, answered before an operation's
#: own rules run (who signed, may they, how often, how big, which operation).
COMMON: frozenset[str] = frozenset(
    cls.code
    for cls in (
        AccessDenied,
        UnrecognizedClient,
        InvalidSignature,
        MissingAuthenticationToken,
        Throttled,
        RequestTooLarge,
        UnknownOperation,
    )
)


def for_operation(operation: str, exc: SlipwayError) -> SlipwayError:
    """``exc`` as ``operation`` may answer it (``exc`` itself when it may)."""
    if exc.code in COMMON or exc.code in operation_errors(operation):
        return exc
    if exc.status < 500:
        return InvalidRequest(exc.message)
    return SlipwayError(exc.message)
