"""Costs from the versioned price table: cached input priced apart, unknown models flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from steward.errors import ConfigError
from steward.models.pricing import Cost, PriceTable, cost_usd, default_price_table, load_prices
from steward.models.types import Usage


def test_shipped_table_is_versioned_and_prices_the_documented_models() -> None:
    table = default_price_table()

    assert table.version
    for provider, model in [
        ("openai", "gpt-4.1"),
        ("openai", "gpt-4.1-mini"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5"),
        ("anthropic", "claude-haiku-4-5"),
        ("steward.local", "dev"),
    ]:
        assert table.price_for(provider, model) is not None, (provider, model)


def test_openai_cached_tokens_are_priced_at_the_cached_rate_and_the_rest_at_input() -> None:
    # gpt-4.1-mini: input 0.40, cached 0.10, output 1.60 USD per million tokens.
    usage = Usage(input_tokens=1_000_000, cache_read_tokens=400_000, output_tokens=100_000)

    cost = cost_usd("openai", "gpt-4.1-mini", usage)

    assert cost.usd == pytest.approx(0.6 * 0.40 + 0.4 * 0.10 + 0.1 * 1.60)
    assert cost.known is True
    assert cost.price_version == default_price_table().version


def test_anthropic_cache_reads_and_writes_are_priced_apart() -> None:
    # claude-sonnet-4-5: input 3, cache read 0.30, cache write 3.75, output 15 per million.
    usage = Usage(
        input_tokens=1300, cache_read_tokens=1000, cache_write_tokens=200, output_tokens=50
    )

    cost = cost_usd("anthropic", "claude-sonnet-4-5", usage)

    expected = (100 * 3.0 + 1000 * 0.30 + 200 * 3.75 + 50 * 15.0) / 1_000_000
    assert cost.usd == pytest.approx(expected)
    assert cost.known is True


def test_dated_snapshots_cost_what_their_alias_costs() -> None:
    usage = Usage(input_tokens=1000, output_tokens=1000)

    assert cost_usd("openai", "gpt-4.1-2025-04-14", usage) == cost_usd("openai", "gpt-4.1", usage)
    assert cost_usd("anthropic", "claude-haiku-4-5-20251001", usage) == cost_usd(
        "anthropic", "claude-haiku-4-5", usage
    )
    assert cost_usd("openai", "gpt-4.1-mini-2025-04-14", usage) != cost_usd(
        "openai", "gpt-4.1", usage
    )


def test_unknown_model_costs_nothing_and_is_flagged_unknown() -> None:
    cost = cost_usd("openai", "gpt-99", Usage(input_tokens=10, output_tokens=10))

    assert (cost.usd, cost.known) == (0.0, False)
    assert cost.price_version == default_price_table().version


def test_unknown_provider_is_unknown_even_for_a_known_model_name() -> None:
    cost = cost_usd("openai-compatible", "gpt-4.1", Usage(input_tokens=10))

    assert cost.known is False


def test_local_development_model_is_known_and_free() -> None:
    cost = cost_usd("steward.local", "dev", Usage(input_tokens=500, output_tokens=500))

    assert (cost.usd, cost.known) == (0.0, True)


def test_cache_counts_larger_than_input_never_price_negative_input() -> None:
    usage = Usage(input_tokens=10, cache_read_tokens=50)

    cost = cost_usd("openai", "gpt-4.1", usage)

    assert cost.usd == pytest.approx(50 * 0.5 / 1_000_000)


def test_a_custom_table_loads_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    entry = {"input": 1.0, "cached_input": 0.5, "cache_write": 2.0, "output": 4.0}
    path.write_text(json.dumps({"version": "test-1", "models": {"acme": {"m": entry}}}))

    table = PriceTable.load(path)
    cost = cost_usd("acme", "m", Usage(input_tokens=1_000_000, output_tokens=1_000_000), table)

    assert cost == Cost(usd=5.0, known=True, price_version="test-1")


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"models": {}}',
        '{"version": "1", "models": {"acme": {"m": {"input": 1}}}}',
        '{"version": "1", "models": {"acme": {"m": {"input": "x", "cached_input": 0,'
        ' "cache_write": 0, "output": 0}}}}',
    ],
)
def test_malformed_tables_raise_config_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)

    with pytest.raises(ConfigError):
        PriceTable.load(path)


def test_one_hour_cache_writes_reasoning_and_long_context_are_priced_apart() -> None:
    table = PriceTable.from_json(
        {
            "version": "t",
            "models": {
                "p": {
                    "m": {
                        "input": 1.0,
                        "cached_input": 0.1,
                        "cache_write": 1.25,
                        "cache_write_1h": 2.0,
                        "output": 5.0,
                        "reasoning": 10.0,
                        "long_context": {
                            "threshold_tokens": 1000,
                            "input": 2.0,
                            "cached_input": 0.2,
                            "cache_write": 2.5,
                            "output": 7.5,
                        },
                    }
                }
            },
        }
    )
    usage = Usage(
        input_tokens=900,
        cache_write_tokens=300,
        cache_write_1h_tokens=100,
        output_tokens=50,
        reasoning_tokens=20,
    )
    cost = table.cost("p", "m", usage)
    expected = (600 * 1.0 + 200 * 1.25 + 100 * 2.0 + 30 * 5.0 + 20 * 10.0) / 1e6
    assert cost.usd == pytest.approx(expected)

    long = table.cost("p", "m", Usage(input_tokens=2000, output_tokens=10))
    assert long.usd == pytest.approx((2000 * 2.0 + 10 * 7.5) / 1e6)
    # The reservation bound prices every token at the dearest rate of the dearest tier.
    assert table.upper_bound_usd("p", "m", input_tokens=10, output_tokens=10) == pytest.approx(
        (10 * 2.5 + 10 * 10.0) / 1e6
    )


def test_a_config_price_table_overrides_and_extends_the_shipped_one(tmp_path: Path) -> None:
    override = tmp_path / "prices.json"
    override.write_text(
        json.dumps(
            {
                "version": "ours",
                "models": {
                    "openai": {
                        "gpt-4.1-mini": {
                            "input": 9.0,
                            "cached_input": 0,
                            "cache_write": 0,
                            "output": 9.0,
                        },
                        "in-house": {
                            "input": 1.0,
                            "cached_input": 0,
                            "cache_write": 0,
                            "output": 1.0,
                        },
                    }
                },
            }
        )
    )

    table = load_prices(override)

    assert table.version == f"{default_price_table().version}+ours"
    assert table.price_for("openai", "gpt-4.1-mini").input == 9.0  # type: ignore[union-attr]
    assert table.price_for("openai", "in-house") is not None
    assert table.price_for("anthropic", "claude-haiku-4-5") is not None


def test_usage_that_was_estimated_marks_the_cost_estimated() -> None:
    assert cost_usd("openai", "gpt-4.1", Usage(input_tokens=5, estimated=True)).estimated


def test_each_shipped_chat_model_has_the_longest_answer_it_can_give() -> None:
    table = default_price_table()
    for provider, model, longest in (
        ("openai", "gpt-4.1-mini", 32_768),
        ("openai", "gpt-4o-mini-2024-07-18", 16_384),
        ("anthropic", "claude-sonnet-4-5", 64_000),
    ):
        price = table.price_for(provider, model)
        assert price is not None and price.max_output_tokens == longest
    local = table.price_for("steward.local", "dev")
    assert local is not None and local.max_output_tokens is None  # the gateway's default applies
