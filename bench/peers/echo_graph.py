"""The graph `langgraph dev` serves for bench/peers.py: a chat that echoes, no model and no network.

One node answers the last user message with `You said: "<it>"`, as the runtime's scripted model does; the
thread's state is its list of messages, which LangGraph's checkpointer keeps per thread.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def echo(state: State) -> dict[str, Any]:
    said = state["messages"][-1].content if state["messages"] else ""
    return {"messages": [AIMessage(content=f'You said: "{said}"')]}


builder = StateGraph(State)
builder.add_node("echo", echo)
builder.add_edge(START, "echo")
builder.add_edge("echo", END)
graph = builder.compile()
