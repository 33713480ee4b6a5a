"""The agent `adk api_server` serves for bench/peers.py: an LlmAgent whose model echoes, no network.

`Echo` is a local BaseLlm: it answers the last user text with `You said: "<it>"`, as the runtime's scripted
model does, in one response.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.genai import types


class Echo(BaseLlm):
    model: str = "echo"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        said = ""
        for content in reversed(llm_request.contents):
            if content.role == "user" and content.parts:
                said = "".join(part.text or "" for part in content.parts)
                break
        yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text=f'You said: "{said}"')]))


root_agent = LlmAgent(name="echo", model=Echo(), instruction="Echo the user.")
