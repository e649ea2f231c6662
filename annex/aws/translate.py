"""botocore's errors, turned into the project's own one-line exceptions: the one place that does it."""

from __future__ import annotations

import contextlib

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError

from ..errors import AccessDenied, AwsError

DENIED = (
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthorizationError",
    "InvalidClientTokenId",
)


@contextlib.contextmanager
def translated(doing: str):
    """Run AWS calls, turning botocore's exceptions into one-line AnnexErrors that say what was being done."""
    try:
        yield
    except ClientError as error:
        info = error.response.get("Error", {})
        code, message = info.get("Code", "Error"), info.get("Message", str(error))
        kind = AccessDenied if code in DENIED else AwsError
        raise kind(f"{doing}: AWS said {code}: {message}") from error
    except ProfileNotFound as error:
        raise AwsError(f"{doing}: {error}; list your profiles with 'aws configure list-profiles'") from error
    except (NoCredentialsError, PartialCredentialsError) as error:
        raise AwsError(f"{doing}: no AWS credentials found; run 'aws configure' or set AWS_PROFILE") from error
    except NoRegionError as error:
        raise AwsError(f"{doing}: no AWS region; give --region or set AWS_REGION") from error
    except (EndpointConnectionError, ConnectTimeoutError) as error:
        raise AwsError(f"{doing}: cannot reach AWS ({error}); check the network or AWS_ENDPOINT_URL") from error
    except ReadTimeoutError as error:
        raise AwsError(f"{doing}: AWS did not answer in time ({error})") from error
    except ResponseParserError as error:
        raise AwsError(f"{doing}: AWS sent an answer that could not be read; try again") from error
    except BotoCoreError as error:
        raise AwsError(f"{doing}: {error}") from error
    except ValueError as error:  # botocore says "Invalid endpoint: ..." for a malformed AWS_ENDPOINT_URL
        if "endpoint" not in str(error).lower():
            raise
        raise AwsError(f"{doing}: {error}; AWS_ENDPOINT_URL must be a URL such as https://host:port") from error


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")
