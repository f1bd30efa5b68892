"""`tarash-router generate`: one generation from the command line, shown live, saved to a file.

    tarash-router generate --provider fal --model fal-ai/veo3/fast --prompt "a red fox" --duration 8 --out fox.mp4
    tarash-router generate --route video-default --prompt "a red fox" --json

The request is checked before anything is sent; Ctrl-C stops the job at the provider as well (one
cancel request) so an abandoned generation is not billed to the end. Keys come from the
environment only: a key on the command line would land in shell history and `ps`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mimetypes
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..models import ImageGenerationConfig, ImageGenerationRequest, VideoGenerationConfig, VideoGenerationRequest
from ..specs.pricing import format_money
from .inputs import load_json
from .inputs import usage as _usage
from .progress import Display, open_display

if TYPE_CHECKING:
    from ..engine.download import Downloaded

EXIT_INTERRUPTED = 130  # the shell's code for a process stopped by SIGINT
DOWNLOAD_TIMEOUT = 3600.0
DOWNLOAD_MAX_BYTES = 8 * 1024**3
IMAGE_ROLES = ("first_frame", "last_frame", "reference", "asset", "style")


def add_generate_command(sub: Any) -> None:
    gen = sub.add_parser("generate", help="generate a video or image, show its progress and save it",
                         description=__doc__.split("\n\n")[0])
    target = gen.add_argument_group("what serves it (a provider and model, or a route)")
    target.add_argument("--provider")
    target.add_argument("--model")
    target.add_argument("--route", help="a route from the routes files (TARASH_ROUTE_DIRS or --routes)")
    target.add_argument("--routes", action="append", default=[], help="routes file or directory (repeatable)")
    target.add_argument("--base-url", help="the provider's base URL (a gateway, a local fake)")
    target.add_argument("--modality", choices=["video", "image"], help="default: the model's or route's")
    req = gen.add_argument_group("the request")
    req.add_argument("--prompt", required=True)
    req.add_argument("--request", help="JSON file with more request fields ('-' for stdin); flags win")
    req.add_argument("--duration", type=int, dest="duration_seconds", help="seconds of video")
    req.add_argument("--aspect-ratio")
    req.add_argument("--resolution")
    req.add_argument("--negative-prompt")
    req.add_argument("--seed", type=int)
    req.add_argument("--audio", dest="generate_audio", action=argparse.BooleanOptionalAction, default=None)
    req.add_argument("--n", type=int, help="images to generate")
    req.add_argument("--size", help="image size, e.g. 1024x1024")
    req.add_argument("--image", action="append", default=[], metavar="ROLE=PATH|URL",
                     help=f"an input image; ROLE is one of {', '.join(IMAGE_ROLES)} (repeatable)")
    req.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="a provider field sent as is (extra_params); VALUE is read as JSON when it parses")
    out = gen.add_argument_group("the result")
    out.add_argument("--out", type=Path, help="save the result here (images: NAME-1.png, NAME-2.png, ...)")
    out.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    out.add_argument("--timeout", type=float, help="give up (and cancel the job) after this many seconds")
    out.add_argument("--poll-interval", type=float)
    gen.set_defaults(func=cmd_generate)


def run(argv: list[str]) -> int:
    """`tarash-router generate ARGV...` in this process (the demo runs it this way)."""
    parser = argparse.ArgumentParser(prog="tarash-router")
    add_generate_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["generate", *argv])
    return int(args.func(args))


def cmd_generate(args: argparse.Namespace) -> int:
    from ..api import default_client

    client = default_client()
    if bool(args.route) == bool(args.provider or args.model):
        return _usage("name either --route, or --provider and --model")
    if args.route:
        if args.base_url:  # a route's targets carry their own base URLs, from its routes file
            return _usage("--base-url goes with --provider and --model; a route's targets set their own")
        if args.routes:
            client.load_routes(*args.routes)
        modality = args.modality or client.router.get(args.route).modality
        config: Any = args.route
    else:
        if not (args.provider and args.model):
            return _usage("--provider and --model go together")
        modality = args.modality or client.registry.modality_of(args.provider, args.model)
        config = _config(args, modality)
    request = _request(args, modality)  # a bad field fails here, before anything is sent
    display = open_display(fancy=None if not args.json else False)
    started = time.monotonic()
    seen: dict[str, Any] = {}

    def on_progress(update: Any) -> None:
        seen["job"] = update.request_id or seen.get("job")
        seen["done"] = update.status in ("completed", "failed")
        display.job(update)

    generate = client.generate_video_async if modality == "video" else client.generate_image_async
    try:
        response, saved = asyncio.run(_run(generate(config, request, on_progress=on_progress), args, display))
    except KeyboardInterrupt:
        display.close()
        if seen.get("done"):  # the job had finished: only the download was stopped
            print(f"tarash-router: interrupted; job {seen['job']} had finished, its file was not saved",
                  file=sys.stderr)
        elif seen.get("job"):
            print(f"tarash-router: interrupted: the provider was asked to cancel the job (job {seen['job']})",
                  file=sys.stderr)
        else:
            print("tarash-router: interrupted before the provider accepted a job", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        display.close()
    _report(response, saved, time.monotonic() - started, args.json)
    return 0


async def _run(generation: Any, args: argparse.Namespace, display: Display) -> tuple[Any, list[Downloaded]]:
    from ..engine.url_safety import origin_of

    response = await generation
    saved: list[Downloaded] = []
    if args.out is not None:
        trusted = frozenset(o for o in [origin_of(args.base_url or "")] if o is not None)
        for media, dest in zip(_media(response), _destinations(args.out, len(_media(response)))):
            saved.append(await _save(media, dest, trusted, display))
    return response, saved


def _media(response: Any) -> list[Any]:
    return [response.video] if hasattr(response, "video") else list(response.images)


def _destinations(out: Path, count: int) -> list[Path]:
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(1, count + 1)]


async def _save(media: Any, dest: Path, trusted: frozenset[Any], display: Display) -> Downloaded:
    from ..engine.download import Downloaded, download  # httpx: loaded when a file is saved, not at start-up

    if isinstance(media, dict) and "content" in media:  # a provider that answers with the bytes
        await asyncio.to_thread(dest.write_bytes, media["content"])
        return Downloaded(dest, len(media["content"]), media.get("content_type"))
    if isinstance(media, str) and media.startswith("data:"):
        import base64

        header, _, data = media.partition(",")
        content = base64.b64decode(data) if header.endswith(";base64") else data.encode()
        await asyncio.to_thread(dest.write_bytes, content)
        return Downloaded(dest, len(content), header[5:].split(";")[0] or None)
    return await download(str(media), dest, max_bytes=DOWNLOAD_MAX_BYTES, timeout=DOWNLOAD_TIMEOUT,
                          trusted=trusted, on_progress=display.download)


def _report(response: Any, saved: list[Downloaded], elapsed: float, as_json: bool) -> None:
    media = _media(response)
    result: dict[str, Any] = {
        "job_id": response.request_id, "provider": response.provider, "model": response.model,
        "elapsed_s": round(elapsed, 2),
        "urls": [m if isinstance(m, str) and not m.startswith("data:") else None for m in media],
        "files": [{"path": str(s.path), "bytes": s.size, "content_type": s.content_type} for s in saved],
        "cost": cost.model_dump(mode="json") if (cost := getattr(response, "cost", None)) is not None else None,
    }
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for item in saved or []:
        print(f"saved {item.path} ({item.size:,} bytes)")
    if not saved:
        for url in result["urls"]:
            print(url if url else "(the result came as bytes: pass --out to save it)")
    print(f"job {response.request_id} on {response.provider} / {response.model} in {elapsed:.1f}s")
    print(_cost_line(getattr(response, "cost", None)))


def _cost_line(cost: Any) -> str:
    if cost is None:
        return "cost: unknown (no published price for this model and request)"
    amount = format_money(cost.amount, cost.currency)
    return f"cost: ~{amount}, estimated: {cost.basis}" if cost.estimated else f"cost: {amount}, {cost.basis}"


def _config(args: argparse.Namespace, modality: str) -> Any:
    cls = VideoGenerationConfig if modality == "video" else ImageGenerationConfig
    fields: dict[str, Any] = {"provider": args.provider, "model": args.model, "base_url": args.base_url}
    if args.timeout is not None:
        fields["timeout"] = args.timeout
    if args.poll_interval is not None:
        fields["poll_interval"] = args.poll_interval
    return cls(**{k: v for k, v in fields.items() if v is not None})


def _request(args: argparse.Namespace, modality: str) -> Any:
    data: dict[str, Any] = {}
    if args.request:
        loaded = load_json(args.request)
        if not isinstance(loaded, dict):
            raise SystemExit(_usage("the request file must hold a JSON object"))
        data.update(loaded)
    data["prompt"] = args.prompt
    names = ["negative_prompt", "seed", "aspect_ratio"]
    names += ["duration_seconds", "resolution", "generate_audio"] if modality == "video" else ["n", "size"]
    data.update({n: getattr(args, n) for n in names if getattr(args, n) is not None})
    wrong = [flag for flag, n in (("--duration", "duration_seconds"), ("--resolution", "resolution"),
                                  ("--audio", "generate_audio"), ("--n", "n"), ("--size", "size"))
             if n not in names and getattr(args, n) is not None]
    if wrong:
        raise SystemExit(_usage(f"{', '.join(wrong)} do not apply to {modality} generation"))
    if args.image:
        data["image_list"] = [*data.get("image_list", []), *map(_image, args.image)]
    if args.param:
        data["extra_params"] = {**data.get("extra_params", {}), **dict(map(_param, args.param))}
    cls = VideoGenerationRequest if modality == "video" else ImageGenerationRequest
    return cls.model_validate(data)


def _image(text: str) -> dict[str, Any]:
    role, sep, where = text.partition("=")
    if not sep or role not in IMAGE_ROLES:
        raise SystemExit(_usage(f"--image takes ROLE=PATH or ROLE=URL with ROLE one of {', '.join(IMAGE_ROLES)}; "
                                f"got {text!r}"))
    if "://" in where or where.startswith("data:"):
        return {"image": where, "type": role}
    path = Path(where)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise SystemExit(_usage(f"cannot read {where}: {exc.strerror}")) from None
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return {"image": {"content": content, "content_type": content_type}, "type": role}


def _param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise SystemExit(_usage(f"--param takes KEY=VALUE; got {text!r}"))
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw




__all__ = ["add_generate_command", "cmd_generate", "run"]
