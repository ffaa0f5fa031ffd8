"""`{{ … }}` placeholders, read by Prefect's own templating (what `prefect deploy` and the workers resolve), so that
flowops sees exactly the placeholders Prefect will: `{{ $VAR }}`, `{{ prefect.blocks.TYPE.NAME }}`,
`{{ prefect.variables.NAME }}` and step outputs such as `{{ clone.directory }}`."""

from __future__ import annotations

from typing import Any


def _placeholders(value: Any) -> set[Any]:
    from prefect.utilities.templating import find_placeholders

    return find_placeholders(value) if isinstance(value, str) else set()


def is_template(value: Any) -> bool:
    """Whether Prefect would fill `value` in (at deploy or at run time) rather than take it as it is."""
    return bool(_placeholders(value))


def env_variables(value: Any) -> list[str]:
    """The environment variables `prefect deploy` substitutes into `value`, sorted."""
    from prefect.utilities.templating import ENV_VAR_PLACEHOLDER_PREFIX, PlaceholderType

    names = (p.name for p in _placeholders(value) if p.type is PlaceholderType.ENV_VAR)
    return sorted(name.removeprefix(ENV_VAR_PLACEHOLDER_PREFIX) for name in names)


def block_references(value: Any) -> list[tuple[str, str]]:
    """The blocks `value` refers to, as (block type slug, block name), sorted."""
    from prefect.utilities.templating import BLOCK_DOCUMENT_PLACEHOLDER_PREFIX, PlaceholderType

    references = []
    for placeholder in _placeholders(value):
        if placeholder.type is PlaceholderType.BLOCK_DOCUMENT:
            block_type, _, rest = placeholder.name.removeprefix(BLOCK_DOCUMENT_PLACEHOLDER_PREFIX).partition(".")
            references.append((block_type, rest.split(".", 1)[0]))
    return sorted(references)


def template_names(value: Any) -> set[str]:
    """The names of every placeholder in `value` (`flowops.environment`, `$HOME`, `clone.directory`)."""
    return {placeholder.name for placeholder in _placeholders(value)}
