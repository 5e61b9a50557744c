"""Models: the protocol the run loop needs, clients, reply parsing, the embedded model,
test doubles.

* :mod:`.messages` — the conversation as typed records (one serialiser);
* :mod:`.base` — the :class:`Model` protocol, :class:`ModelReply`, :class:`TurnGuide`;
* :mod:`.client` — any OpenAI-compatible endpoint;
* :mod:`.parsing` — tool calls recovered from replies (structured or written as text);
* :mod:`.embedded` — the local model shipped in PyPI data wheels, served by llama.cpp;
* :mod:`.testing` — scripted and function models, and a guard against real requests.
"""

from .base import Model, ModelReply, TurnGuide
from .client import OpenAIModel, endpoint_from_env
from .messages import (
    MESSAGES,
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    Usage,
    UserMessage,
)

__all__ = ["MESSAGES", "AssistantMessage", "Message", "Model", "ModelReply", "OpenAIModel",
           "SystemMessage", "ToolCall", "ToolMessage", "TurnGuide", "Usage", "UserMessage",
           "endpoint_from_env"]
