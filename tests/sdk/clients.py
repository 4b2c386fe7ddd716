"""The official provider SDKs, unmodified, as users call them through Envoy + Tollgate.

Run by tests/tests/e2e/llm/sdk.rs with the interpreter of .venv (make setup pins openai, anthropic and
google-genai there). Each scenario prints one JSON object on stdout: what the client saw. An
exception the SDK raised that the scenario does not expect ends the run with a traceback and
exit status 1, which the test reports.

    python clients.py SCENARIO --base-url http://127.0.0.1:PORT --key KEY
"""

import argparse
import json
import sys
import time

import anthropic
import openai
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

MESSAGES = [{"role": "user", "content": "Say hello"}]


def openai_client(args, **kw):
    return openai.OpenAI(base_url=args.base_url + "/v1", api_key=args.key, **kw)


def anthropic_client(args, **kw):
    return anthropic.Anthropic(base_url=args.base_url, api_key=args.key, **kw)


def genai_client(args, retry=None):
    options = genai_types.HttpOptions(base_url=args.base_url, retry_options=retry)
    return genai.Client(api_key=args.key, http_options=options)


def openai_stream_loop(args):
    """The classic loop of the OpenAI docs: every chunk has a first choice."""
    stream = openai_client(args).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=args.max_tokens, stream=True
    )
    text, chunks = "", 0
    for chunk in stream:
        text += chunk.choices[0].delta.content or ""
        chunks += 1
    return {"text": text, "chunks": chunks}


def openai_stream_with_usage(args):
    """A client that asks for usage itself gets the usage chunk."""
    stream = openai_client(args).chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        max_tokens=args.max_tokens,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
    return {"text": text, "usage": usage}


def openai_rate_limited(args):
    """The second call is over the limit: RateLimitError, with Tollgate's body readable."""
    client = openai_client(args, max_retries=0)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=args.max_tokens)
    try:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=args.max_tokens)
    except openai.RateLimitError as e:
        return {
            "error": type(e).__name__,
            "status": e.status_code,
            "code": e.code,
            "type": e.type,
            "body": e.body,
            "retry_after": e.response.headers.get("retry-after"),
        }
    return {"error": None}


def openai_retry(args):
    """The SDK's own retry (max_retries=2, the default) waits Retry-After and succeeds."""
    client = openai_client(args)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=args.max_tokens)
    started = time.monotonic()
    r = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=args.max_tokens)
    return {"text": r.choices[0].message.content, "waited_s": time.monotonic() - started}


def anthropic_stream(args):
    """messages.stream(...).get_final_message(), the SDK's streaming helper."""
    client = anthropic_client(args)
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=args.max_tokens, messages=MESSAGES) as s:
        events = sum(1 for _ in s)
        final = s.get_final_message()
    return {"text": final.content[0].text, "usage": final.usage.model_dump(), "events": events}


def anthropic_rate_limited(args):
    client = anthropic_client(args, max_retries=0)
    client.messages.create(model="claude-sonnet-4-5", max_tokens=args.max_tokens, messages=MESSAGES)
    try:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=args.max_tokens, messages=MESSAGES)
    except anthropic.RateLimitError as e:
        return {
            "error": type(e).__name__,
            "status": e.status_code,
            "body": e.body,
            "retry_after": e.response.headers.get("retry-after"),
            "ratelimit_reset": e.response.headers.get("anthropic-ratelimit-requests-reset"),
        }
    return {"error": None}


def anthropic_retry(args):
    client = anthropic_client(args)
    client.messages.create(model="claude-sonnet-4-5", max_tokens=args.max_tokens, messages=MESSAGES)
    started = time.monotonic()
    r = client.messages.create(model="claude-sonnet-4-5", max_tokens=args.max_tokens, messages=MESSAGES)
    return {"text": r.content[0].text, "waited_s": time.monotonic() - started}


def gemini_generate(args):
    client = genai_client(args)
    config = genai_types.GenerateContentConfig(max_output_tokens=args.max_tokens)
    r = client.models.generate_content(model="gemini-2.0-flash", contents="Say hello", config=config)
    text = ""
    for chunk in client.models.generate_content_stream(model="gemini-2.0-flash", contents="Say hello", config=config):
        text += chunk.text or ""
    return {"text": r.text, "stream_text": text, "usage": r.usage_metadata.model_dump(exclude_none=True)}


def gemini_rate_limited(args):
    client = genai_client(args)
    config = genai_types.GenerateContentConfig(max_output_tokens=args.max_tokens)
    client.models.generate_content(model="gemini-2.0-flash", contents="Say hello", config=config)
    try:
        client.models.generate_content(model="gemini-2.0-flash", contents="Say hello", config=config)
    except genai_errors.ClientError as e:
        return {"error": type(e).__name__, "code": e.code, "status": e.status, "message": e.message,
                "details": e.details}
    return {"error": None}


def gemini_retry(args):
    """google-genai retries only when asked (HttpRetryOptions), with its own backoff: here
    starting at the Retry-After Tollgate sends for this rule."""
    retry = genai_types.HttpRetryOptions(attempts=3, initial_delay=args.retry_delay, jitter=0)
    client = genai_client(args, retry=retry)
    config = genai_types.GenerateContentConfig(max_output_tokens=args.max_tokens)
    client.models.generate_content(model="gemini-2.0-flash", contents="Say hello", config=config)
    r = client.models.generate_content(model="gemini-2.0-flash", contents="Say hello", config=config)
    return {"text": r.text}


SCENARIOS = {f.__name__: f for f in [
    openai_stream_loop, openai_stream_with_usage, openai_rate_limited, openai_retry,
    anthropic_stream, anthropic_rate_limited, anthropic_retry,
    gemini_generate, gemini_rate_limited, gemini_retry,
]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--base-url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--max-tokens", type=int, default=5)
    p.add_argument("--retry-delay", type=float, default=1.0)
    args = p.parse_args()
    print(json.dumps(SCENARIOS[args.scenario](args), default=str))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
