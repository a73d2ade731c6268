"""Files over HTTP: `POST /api/uploads/`, and the downloads at an attachment's `url`."""

from __future__ import annotations

import functools
import unicodedata
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from messaging.domain.pictures import THUMBNAIL_CONTENT_TYPE
from messaging.domain.ratelimit import check_rate_sync
from messaging.domain.tokens import bearer_key, user_for_token
from messaging.domain.uploads import (
    UploadRefused,
    attachment_data,
    downloadable,
    store_upload,
    too_large_detail,
)
from messaging.models import Upload
from messaging.protocol import ChatError
from messaging.web.http import ApiError, api, bad_request, chat_error_response

# A multipart body holds the file and, around it, a boundary and a part's headers (with
# the file's name, up to a few kilobytes in UTF-8 percent-encoding).
MULTIPART_SLACK = 64 * 1024


def _too_large() -> JsonResponse:
    return JsonResponse({"detail": too_large_detail()}, status=413)


class _LimitedUploadHandler(FileUploadHandler):
    """Stop reading a request's files as soon as their bytes pass the limit.

    The size a client announces (Content-Length) is checked first; this catches a body
    sent in chunks, without a length, and a length that lies.
    """

    def __init__(self, request: HttpRequest, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.exceeded = True
            # connection_reset: read nothing more of the body.
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def _within_upload_limit(view):
    """Answer 413 to a body larger than a file may be, before anything reads it.

    Outside `api(...)`: its CSRF check reads a form's fields, which parses the whole body.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        limit = settings.CHAT_MAX_UPLOAD_BYTES
        try:
            announced = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            announced = 0
        if announced > limit + MULTIPART_SLACK:
            return _too_large()
        handler = _LimitedUploadHandler(request, limit)
        request.upload_handlers.insert(0, handler)
        try:
            response = view(request, *args, **kwargs)
        except RequestDataTooBig:
            return _too_large()
        except (MultiPartParserError, TooManyFilesSent):
            return bad_request("the body is no well-formed multipart/form-data").response()
        return _too_large() if handler.exceeded else response

    return wrapper


@_within_upload_limit
@api("POST", rate="write")
def upload_create(request: HttpRequest) -> JsonResponse:
    """Take in one file (multipart field `file`), unsent until a message carries it."""
    files = request.FILES.getlist("file")
    if len(files) != 1:
        detail = "send one file in the multipart/form-data field 'file'"
        raise bad_request(detail, {"file": [_("Send exactly one file.")]})
    try:
        upload = store_upload(request.user, files[0])
    except UploadRefused as refused:
        raise ApiError(refused.status, refused.detail, {"file": [refused.detail]}) from None
    return JsonResponse({"upload": attachment_data(upload)}, status=201)


@require_GET
def upload_file(request: HttpRequest, upload_id: str) -> HttpResponse:
    """Answer an attachment's bytes to whoever may see it; 404 to anyone else."""
    return _download(request, upload_id, thumbnail=False)


@require_GET
def upload_thumbnail(request: HttpRequest, upload_id: str) -> HttpResponse:
    """Answer a picture's thumbnail, under the same rule as the picture."""
    return _download(request, upload_id, thumbnail=True)


def _download(request: HttpRequest, upload_id: str, *, thumbnail: bool) -> HttpResponse:
    user_id = _viewer_id(request)
    if user_id is None:
        # Not even whether the file exists: the same 404 as for a stranger.
        raise Http404("no such file")
    try:
        check_rate_sync("download", user_id, settings.CHAT_DOWNLOAD_RATE)
    except ChatError as error:
        return chat_error_response(error)
    upload = downloadable(user_id=user_id, upload_id=upload_id)
    if upload is None or (thumbnail and not upload.thumbnail):
        raise Http404("no such file")
    return file_response(upload, thumbnail=thumbnail)


def _viewer_id(request: HttpRequest) -> int | None:
    """Return the id of the bearer token's user, or of the session's; None for nobody."""
    header = request.headers.get("Authorization")
    if header is not None:
        key = bearer_key(header)
        user = user_for_token(key) if key else None
        return user.pk if user is not None else None
    return request.user.pk if request.user.is_authenticated else None


def file_response(upload: Upload, *, thumbnail: bool = False) -> HttpResponse:
    """Answer an upload's bytes (or its thumbnail's) with the headers that keep them safe.

    Only a picture the server encoded itself is shown in the browser; anything else is a
    download, of the type the server found, never sniffed by the browser. With
    CHAT_UPLOADS_X_ACCEL set, nginx sends the bytes from its `internal` location.
    """
    field = upload.thumbnail if thumbnail else upload.file
    content_type = THUMBNAIL_CONTENT_TYPE if thumbnail else upload.content_type
    if settings.CHAT_UPLOADS_X_ACCEL:
        response = HttpResponse(content_type=content_type)
        location = settings.CHAT_UPLOADS_X_ACCEL.rstrip("/") + "/" + quote(field.name)
        response["X-Accel-Redirect"] = location
    else:
        try:
            handle = field.open("rb")
        except FileNotFoundError:
            raise Http404("no such file") from None
        response = FileResponse(handle, content_type=content_type)
    response["Content-Disposition"] = content_disposition(upload.name, inline=upload.inline)
    response["X-Content-Type-Options"] = "nosniff"
    # Never kept by a shared cache, nor by the browser once the page is gone: a file of a
    # deleted message must not outlive it on a shared computer.
    response["Cache-Control"] = "private, no-store"
    # Another site may not show it in its pages either, even with the member's cookies.
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


def content_disposition(name: str, *, inline: bool) -> str:
    """Build Content-Disposition: the name in UTF-8 (RFC 6266), with an ASCII fallback."""
    fallback = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    fallback = "".join("_" if ch in '"\\' or not ch.isprintable() else ch for ch in fallback)
    fallback = fallback.strip() or "file"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
