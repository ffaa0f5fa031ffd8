"""Branch names become slugs: safe characters, bounded length, and no two branches sharing one."""

from __future__ import annotations

import re

import pytest

from flowops.render.branches import MAX_SLUG_LENGTH, branch_slug

SAFE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


@pytest.mark.parametrize("branch", ["main", "staging", "fix-123", "release-2026-11"])
def test_a_name_that_is_already_a_slug_stays_as_it_is(branch):
    assert branch_slug(branch) == branch


@pytest.mark.parametrize(
    "branch",
    ["feature/Foo_Bar", "a" * 120, 'x";touch${IFS}/tmp/pwned;#', "Main", "über/ñandú", "--", "ref@{1}", "é"],
)
def test_any_branch_name_becomes_a_bounded_slug_of_safe_characters(branch):
    slug = branch_slug(branch)
    assert SAFE.fullmatch(slug), slug
    assert len(slug) <= MAX_SLUG_LENGTH


def test_a_lossy_slug_keeps_a_readable_start_and_a_hash_of_the_full_name():
    assert branch_slug("feature/Foo_Bar").startswith("feature-foo-bar-")
    assert branch_slug("a" * 120) != branch_slug("a" * 119)


@pytest.mark.parametrize(
    ("one", "other"),
    [("feature/foo", "feature-foo"), ("Main", "main"), ("Staging", "staging"), ("a" * 120, "a" * 121)],
)
def test_branches_that_would_collapse_to_one_slug_get_different_slugs(one, other):
    assert branch_slug(one) != branch_slug(other)


@pytest.mark.parametrize("branch", ["Feature/Foo", "feature/Foo_Bar", "///", "a" * 120])
def test_a_branch_named_as_another_branchs_slug_gets_a_slug_of_its_own(branch):
    hashed = branch_slug(branch)
    assert branch_slug(hashed) != hashed


def test_the_slug_is_stable_for_a_branch():
    assert branch_slug("feature/Foo_Bar") == branch_slug("feature/Foo_Bar")


@pytest.mark.parametrize("branch", ["", " main", "main ", "a\nb"])
def test_unusable_names_are_refused(branch):
    with pytest.raises(ValueError, match="not a usable branch name"):
        branch_slug(branch)
