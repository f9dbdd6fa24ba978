import json
from datetime import timedelta

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from djsite import tasks


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<!doctype html><title>Home</title><h1>Home</h1>")


def enqueue(request: HttpRequest, name: str) -> JsonResponse:
    body = json.loads(request.body or b"{}")
    task = getattr(tasks, name)
    if body.get("in_an_hour"):
        task = task.using(run_after=timezone.now() + timedelta(hours=1))
    result = task.enqueue(*body.get("args", []))
    return JsonResponse({"id": result.id, "status": str(result.status)})


async def aenqueue(request: HttpRequest) -> JsonResponse:
    result = await tasks.double_later.aenqueue(21)
    return JsonResponse({"id": result.id})


def rollback(request: HttpRequest) -> JsonResponse:
    try:
        with transaction.atomic():
            result = tasks.add.enqueue(40, 2)
            raise RuntimeError("the order failed")
    except RuntimeError:
        pass
    return JsonResponse({"id": result.id})


def commit(request: HttpRequest) -> JsonResponse:
    with transaction.atomic():
        result = tasks.add.enqueue(20, 22)
    return JsonResponse({"id": result.id})
