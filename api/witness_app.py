"""A witness's HTTP face: C2SP tlog-witness ``POST /add-checkpoint``."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledger.log.cosigner import Witness

MAX_BODY = 64 * 1024  # 63 proof lines and a checkpoint with its signatures fit easily


def create_witness_app(witness: Witness) -> Starlette:
    async def add_checkpoint(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return Response("request body too large\n", status_code=413)
        try:
            text = body.decode()
        except UnicodeDecodeError:
            return Response("request body is not UTF-8\n", status_code=400)
        answer = witness.add_checkpoint(text)
        return Response(answer.body, status_code=answer.status, media_type=answer.content_type)

    return Starlette(routes=[Route("/add-checkpoint", add_checkpoint, methods=["POST"])])
