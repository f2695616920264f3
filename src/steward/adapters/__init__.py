"""Agents written with other frameworks, served as Steward agents with Steward's durability,
gateway, tracing, caps and tool policy. Each adapter is its own module and optional extra:

- `steward.adapters.openai_agents` (`steward[openai-agents]`): the OpenAI Agents SDK.
- `steward.adapters.pydantic_ai` (`steward[pydantic-ai]`): Pydantic AI.
"""
