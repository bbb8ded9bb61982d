"""Prints, as JSON, the SSE events SGLang writes for one streamed chat completion, built by SGLang's own
code: srt/entrypoints/openai/sse_utils.py build_sse_content (the role, content and finish chunks, as
serving_chat.py OpenAIServingChat._generate_chat_stream calls it), protocol.py ChatCompletionStreamResponse
with UsageInfo (the usage chunk), serving_base.py create_streaming_error_response (an in-stream error).

    python sse_chunks.py  < {"id", "created", "model", "prompt_tokens", "completion_tokens", "error"}
"""

import json
import sys
from http import HTTPStatus

from sglang.srt.entrypoints.openai.protocol import ChatCompletionStreamResponse, UsageInfo
from sglang.srt.entrypoints.openai.serving_base import OpenAIServingBase
from sglang.srt.entrypoints.openai.sse_utils import build_sse_content

spec = json.load(sys.stdin)
common = {"chunk_id": spec["id"], "created": spec["created"], "model": spec["model"], "index": 0}
usage = UsageInfo(
    prompt_tokens=spec["prompt_tokens"],
    completion_tokens=spec["completion_tokens"],
    total_tokens=spec["prompt_tokens"] + spec["completion_tokens"],
)
usage_chunk = ChatCompletionStreamResponse(
    id=spec["id"], created=spec["created"], choices=[], model=spec["model"], usage=usage
)
code = HTTPStatus.INTERNAL_SERVER_ERROR
# The serving layer is called unbound: create_streaming_error_response does not use `self`.
error = OpenAIServingBase.create_streaming_error_response(None, spec["error"], code.name, code.value)
events = {
    "role": build_sse_content(**common, role="assistant", content="", reasoning_content=None),
    "content": build_sse_content(**common, content=" sim"),
    "finish": build_sse_content(**common, finish_reason="length", matched_stop=None),
    "usage": f"data: {usage_chunk.model_dump_json()}\n\n",
    "error": f"data: {error}\n\n",
}
json.dump(events, sys.stdout)
