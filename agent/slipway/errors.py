"""One error hierarchy for slipway, mapped once to App Runner codes at the API edge.

    SlipwayError                      (InternalServiceErrorException, 500)
    ├── InvalidRequest                (InvalidRequestException, 400)
    ├── ResourceNotFound              (ResourceNotFoundException, 400)
    ├── InvalidState                  (InvalidStateException, 400)
    ├── QuotaExceeded                 (ServiceQuotaExceededException, 400)
    ├── AuthError                     (403; code chosen per case)
    │   ├── UnrecognizedClient        (UnrecognizedClientException)
    │   ├── InvalidSignature          (InvalidSignatureException)
    │   ├── MissingAuthenticationToken(MissingAuthenticationTokenException)
    │   └── AccessDenied              (AccessDeniedException: a policy does not allow it)
    ├── RegistryError                 (a registry answered badly or not at all)
    │   ├── ImageNotFound
    │   ├── RegistryAuthFailed
    │   └── RegistryUnreachable       (passing: retried)
    ├── BackendError                  (the container engine failed)
    ├── RouterError                   (Caddy's admin API failed)
    └── HealthCheckFailed             (new instances never became healthy)

Adapters (store, backends, router, sources) translate foreign exceptions into
these with ``raise ... from exc``; only ``api/`` renders them on the wire.
"""

from __future__ import annotations


class SlipwayError(Exception):
    code = "InternalServiceErrorException"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(SlipwayError):
    code = "InvalidRequestException"
    status = 400


class ResourceNotFound(SlipwayError):
    code = "ResourceNotFoundException"
    status = 400


class InvalidState(SlipwayError):
    code = "InvalidStateException"
    status = 400


class QuotaExceeded(SlipwayError):
    code = "ServiceQuotaExceededException"
    status = 400


class AuthError(SlipwayError):
    code = "AccessDeniedException"
    status = 403


class UnrecognizedClient(AuthError):
    code = "UnrecognizedClientException"


class InvalidSignature(AuthError):
    code = "InvalidSignatureException"


class MissingAuthenticationToken(AuthError):
    code = "MissingAuthenticationTokenException"


class AccessDenied(AuthError):
    """Signed by a known key, but its principal's policies do not allow the call."""

    code = "AccessDeniedException"


class RegistryError(SlipwayError):
    """A registry could not give us an image; ``terminal`` says whether retrying helps."""

    terminal = True


class ImageNotFound(RegistryError):
    pass


class RegistryAuthFailed(RegistryError):
    pass


class RegistryUnreachable(RegistryError):
    terminal = False


class BackendError(SlipwayError):
    pass


class RouterError(SlipwayError):
    pass


class HealthCheckFailed(SlipwayError):
    pass
