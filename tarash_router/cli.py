"""The `tarash-router` command: generate, models, dry runs, providers, validation, route plans, the job journal,
spec scaffolding, the gateway, the demo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, cast

import pydantic

from .console.generate import add_generate_command
from .console.inputs import load_json as _load_json
from .console.inputs import usage as _usage
from .console.models import add_models_command
from .errors import SpecError, TarashException

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def cmd_render(args: argparse.Namespace) -> int:
    from .api import render_request
    from .models import ImageGenerationConfig, ImageGenerationRequest, VideoGenerationConfig, VideoGenerationRequest
    from .specs.registry import get_registry

    if args.spec_dir:
        get_registry().load_paths(args.spec_dir)
    modality = args.modality or get_registry().modality_of(args.provider, args.model)
    data = _load_json(args.request)
    if not isinstance(data, dict):
        return _usage("the request file must hold a JSON object")
    video = modality == "video"
    config_cls = VideoGenerationConfig if video else ImageGenerationConfig
    request_cls = VideoGenerationRequest if video else ImageGenerationRequest
    config = config_cls(provider=args.provider, model=args.model, base_url=args.base_url)
    request = request_cls.model_validate(data)
    print(json.dumps(render_request(config, request), indent=2, ensure_ascii=False))
    return EXIT_OK


def cmd_providers(args: argparse.Namespace) -> int:
    from .specs.registry import get_registry

    registry = get_registry()
    if args.spec_dir:
        registry.load_paths(args.spec_dir)
    rows = []
    for family in sorted(registry.families(args.provider), key=lambda f: (f.provider.name, f.name)):
        spec = family.file
        for model in family.models:
            rows.append({"provider": family.provider.name, "model": model, "family": family.name,
                         "modality": family.modality, "capabilities": spec.capabilities,
                         # where the mapping comes from, and when it was last checked against it
                         "source": spec.docs, "checked": spec.checked.isoformat() if spec.checked else None,
                         "shutdown": spec.shutdown.isoformat() if spec.shutdown else None,
                         "successor": spec.successor, "file": family.source.file})
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            retired = f"  (shut down {row['shutdown']})" if row["shutdown"] else ""
            print(f"{row['provider']:<10} {row['modality']:<6} {row['model']:<55} {row['family']}{retired}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from .validate import format_findings, validate_paths

    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        return _usage(f"no such file or directory: {missing[0]}")
    notes: list[str] = []
    findings = validate_paths([Path(p) for p in args.paths], notes=notes)
    if findings:
        print(format_findings(findings, args.format))
    for note in notes:  # on stderr, like the count: stdout stays the findings alone (json, github)
        print(note, file=sys.stderr)
    errors = sum(f.severity == "error" for f in findings)
    print(f"{errors} error(s), {len(findings) - errors} warning(s)", file=sys.stderr)
    return EXIT_FINDINGS if errors else EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from .models import ImageGenerationRequest, VideoGenerationRequest
    from .routing import Router, get_router

    router = Router.from_dir(*args.routes) if args.routes else get_router()
    route = router.get(args.route)
    request_cls = VideoGenerationRequest if route.modality == "video" else ImageGenerationRequest
    data = _load_json(args.request)
    if not isinstance(data, dict):
        return _usage("the request file must hold a JSON object")
    print(router.explain(args.route, request_cls.model_validate(data), assume_keys=args.assume_keys).render())
    return EXIT_OK


def cmd_jobs(args: argparse.Namespace) -> int:
    import asyncio
    import time

    from .api import cancel_job_async, resume_async
    from .journal import get_journal, open_journal, set_journal

    if args.journal:
        set_journal(open_journal(args.journal))
    journal = get_journal()
    if args.action == "list":
        records = asyncio.run(journal.list(args.limit, state=args.state))
        for r in records:
            # A submitting intent: when and under which key, to match against the provider's own list.
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.created_at))
            since = f"  since {created} key={r.idempotency_key}" if r.state == "submitting" else ""
            print(f"{r.job_id:<40} {r.state:<10} {r.provider:<10} {r.model}{since}")
        return EXIT_OK
    if args.action == "reap":
        return _reap(journal, args)
    if not args.job_id:
        return _usage(f"jobs {args.action} needs a job id")
    if args.action == "show":
        record = asyncio.run(journal.get(args.job_id))
        if record is None:
            print(f"tarash-router: no journaled job {args.job_id!r}", file=sys.stderr)
            return EXIT_FINDINGS
        print(record.model_dump_json(indent=2))
        return EXIT_OK
    if args.action == "resume":
        response = asyncio.run(resume_async(args.job_id, base_url=args.base_url))
        print(response.model_dump_json(indent=2, exclude={"raw_response"}))
        return EXIT_OK
    cancelled = asyncio.run(cancel_job_async(args.job_id, base_url=args.base_url))
    print("cancelled" if cancelled else "not cancelled (finished already, or the provider refused)")
    return EXIT_OK if cancelled else EXIT_FINDINGS


def _reap(journal: Any, args: argparse.Namespace) -> int:
    """Jobs nobody is following any more (their owner died): every unfinished job not updated for
    `--older-than` gets one status request, which journals it finished if it has; with `--cancel`,
    one still running is cancelled. Submit intents that old are listed for reconciliation by hand."""
    import asyncio
    import time

    from .api import cancel_job_async, get_job_async
    from .errors import TarashException

    older_than = _seconds(args.older_than)

    async def reap() -> int:
        now, stuck = time.time(), 0
        for record in await journal.list(args.limit):
            if record.state in ("completed", "failed", "cancelled") or now - record.updated_at < older_than:
                continue
            if record.state == "submitting":
                stuck += 1
                print(f"{record.job_id:<40} unknown    {record.provider:<10} {record.model}  a submit that never "
                      "recorded its outcome: check with the provider")
                continue
            try:
                job = await get_job_async(record.job_id, base_url=args.base_url)
                outcome: str = job.state
                if not job.done and args.cancel:
                    outcome = "cancelled" if await cancel_job_async(record.job_id, base_url=args.base_url) else \
                        f"{job.state} (cancel refused)"
            except TarashException as exc:
                stuck += 1
                outcome = f"unreachable ({type(exc).__name__}: {exc.message[:80]})"
            print(f"{record.job_id:<40} {outcome:<10} {record.provider:<10} {record.model}")
        return stuck

    return EXIT_FINDINGS if asyncio.run(reap()) else EXIT_OK


def _seconds(text: str) -> float:
    from .routing.policy import parse_duration

    try:
        return float(parse_duration(text))
    except (TypeError, ValueError) as exc:
        raise SystemExit(_usage(f"--older-than: {exc}")) from None


def cmd_schema(args: argparse.Namespace) -> int:
    from .tools.schemas import json_schema

    print(json.dumps(json_schema(args.kind), indent=2))
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve
    from .server.settings import ServerSettings

    if not ServerSettings().server_keys:
        return _usage("set TARASH_SERVER_KEYS (comma-separated bearer keys callers must present)")
    serve(host=args.host, port=args.port)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(poll_interval=args.poll_interval)


def cmd_spec_show(args: argparse.Namespace) -> int:
    """Print a family as the engine uses it: `extends` merged in and defaults written out."""
    import difflib

    from .specs.registry import get_registry

    registry = get_registry()
    if args.spec_dir:
        registry.load_paths(args.spec_dir)
    if not args.resolved:
        return _usage("spec show prints the resolved family; pass --resolved")
    provider, _, name = args.family.rpartition("/")
    families = {f"{f.provider.name}/{f.name}": f for f in registry.families()}
    found = [f for key, f in families.items()
             if key == args.family or (not provider and key.rpartition("/")[2] == name)]
    if len(found) != 1:
        names = sorted(families) if provider or len(found) > 1 else sorted({k.rpartition("/")[2] for k in families})
        hint = difflib.get_close_matches(args.family, names, n=3)
        why = f"{args.family!r} is ambiguous: {', '.join(sorted(f'{f.provider.name}/{f.name}' for f in found))}" \
            if found else f"unknown family {args.family!r}" + (f"; did you mean {' or '.join(map(repr, hint))}?" if hint else "")
        return _usage(f"{why} (name it as provider/family; `tarash-router providers` lists them)")
    family = found[0]
    data = family.file.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"examples"})
    data = {k: v for k, v in data.items() if v not in ({}, [], False) or k in ("models",)}
    data["family"] = family.name
    print(f"# {family.provider.name}/{family.name} resolved from {family.source.file}"
          + (f" (extends {family.file.extends})" if family.file.extends else "")
          + f"; {len(family.file.examples)} example(s) not shown")
    print(_show_yaml(data), end="")
    return EXIT_OK


def _show_yaml(data: dict[str, Any]) -> str:
    """YAML as spec files write it: lists of scalars on one line (`allowed: [4, 6, 8]`)."""
    import yaml

    class Dumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML has no type stubs here
        def represent_list(self, items: list[Any]) -> Any:
            flow = all(not isinstance(item, (dict, list)) for item in items)
            return self.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)

    Dumper.add_representer(list, Dumper.represent_list)
    return cast(str, yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=110))


def _add_spec_show(actions: Any) -> None:
    """`spec show --resolved FAMILY`, beside `spec new` (registered by the scaffolder)."""
    show = actions.add_parser("show", help="print a family as loaded: `extends` merged in, defaults written out")
    show.add_argument("family", help="provider/family or a family name")
    show.add_argument("--resolved", action="store_true", help="print the effective family (required for now)")
    show.add_argument("--spec-dir", action="append", default=[], help="extra spec directory (repeatable)")
    show.set_defaults(func=cmd_spec_show)


def _add_spec_check(actions: Any) -> None:
    """`spec check --openapi DIR`: provider schemas against the families serving them (tools/drift.py)."""
    from .tools.drift import add_check_command

    add_check_command(actions)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tarash-router")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tarash-router", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_generate_command(sub)
    add_models_command(sub)

    render = sub.add_parser("render", help="print the first HTTP request a generation would send (no network)")
    render.add_argument("--provider", required=True)
    render.add_argument("--model", required=True)
    render.add_argument("--request", required=True, help="JSON file with the request fields ('-' for stdin)")
    render.add_argument("--modality", choices=["video", "image"], help="default: the modality of the model's spec")
    render.add_argument("--base-url", help="override the provider's base URL")
    render.add_argument("--spec-dir", action="append", default=[], help="extra spec directory (repeatable)")
    render.set_defaults(func=cmd_render)

    providers = sub.add_parser("providers", help="list providers and the models their specs serve")
    providers.add_argument("provider", nargs="?")
    providers.add_argument("--format", choices=["text", "json"], default="text")
    providers.add_argument("--spec-dir", action="append", default=[])
    providers.set_defaults(func=cmd_providers)

    validate = sub.add_parser("validate", help="check spec files offline: schema, templates, examples")
    validate.add_argument("paths", nargs="*", help="spec/routes files or directories (default: the built-in specs)")
    validate.add_argument("--format", choices=["text", "json", "github"], default="text")
    validate.set_defaults(func=cmd_validate)

    explain = sub.add_parser("explain", help="show how a route would serve a request: order, skips, policies")
    explain.add_argument("--route", required=True)
    explain.add_argument("--request", required=True, help="JSON file with the request fields ('-' for stdin)")
    explain.add_argument("--routes", action="append", default=[],
                         help="routes file or directory (repeatable; default: TARASH_ROUTE_DIRS)")
    explain.add_argument("--assume-keys", action="store_true",
                         help="plan as if every API key were set (CI); the missing ones are listed at the end")
    explain.set_defaults(func=cmd_explain)

    jobs = sub.add_parser("jobs", help="journaled provider jobs: list, show, resume, cancel, reap")
    jobs.add_argument("action", choices=["list", "show", "resume", "cancel", "reap"],
                      help="reap: finish (or with --cancel, cancel) unfinished jobs nobody has updated for --older-than")
    jobs.add_argument("job_id", nargs="?")
    jobs.add_argument("--journal", help="journal URL (default: TARASH_JOURNAL): sqlite:///path or redis://...")
    jobs.add_argument("--limit", type=int, default=50)
    jobs.add_argument("--state", choices=["submitting", "submitted", "queued", "processing", "completed", "failed",
                                          "cancelled"],
                      help="only jobs in this state (submitting: a crash while a job may have been accepted)")
    jobs.add_argument("--base-url", help="resume/cancel a job that was submitted through a custom base URL")
    jobs.add_argument("--older-than", default="1h", help="reap: jobs not updated for this long (default 1h)")
    jobs.add_argument("--cancel", action="store_true", help="reap: cancel jobs that are still running")
    jobs.set_defaults(func=cmd_jobs)

    schema = sub.add_parser("schema", help="print the JSON Schema of a spec file kind")
    schema.add_argument("kind", choices=["provider", "family", "routes"])
    schema.set_defaults(func=cmd_schema)

    serve = sub.add_parser("serve", help="run the HTTP gateway (jobs over HTTP; needs the `server` extra)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="generate a video and an image on the built-in fake Fal server")
    demo.add_argument("--poll-interval", type=float, default=0.2)
    demo.set_defaults(func=cmd_demo)

    from .tools.scaffold import add_command

    spec_actions = add_command(sub)
    _add_spec_show(spec_actions)
    _add_spec_check(spec_actions)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)  # each command's handler returns its exit code
        return code
    except SpecError as exc:
        for error in exc.all:  # every problem found in the file, not just the first
            print(f"{error.location}: error: {error.message}" + (f" [{error.key}]" if error.key else ""),
                  file=sys.stderr)
        return EXIT_FINDINGS
    except TarashException as exc:
        print(f"tarash-router: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return _usage(f"invalid request: {where}: {err['msg']}")
    except SystemExit as exc:
        return int(exc.code or 0)
    except BrokenPipeError:  # `tarash-router schema family | head`
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
